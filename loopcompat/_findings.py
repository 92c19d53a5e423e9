"""Needs found in an application (by `scan` in its source, by `run --record` in a run), reported and written.

Both report each need with its evidence (file:line and what was seen there),
compare them with what the project's pyproject.toml declares, print the
``[tool.loopcompat]`` snippet that would declare them all, and with ``--write``
add the missing ones to the file (loopcompat._toml_edit).
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Sequence, TextIO, Tuple

from ._errors import ConfigError
from ._vocab import NEEDS, parse_needs

EXIT_OK, EXIT_MISSING, EXIT_USAGE = 0, 1, 2
SHOWN_PER_NEED = 5


class Evidence:
    """Why a need was inferred: where (file, line), what was seen, and the library source that says so."""

    __slots__ = ("need", "path", "line", "what", "source", "value")

    def __init__(self, need: str, path: str, line: int, what: str, source: str = "", value: Optional[int] = None):
        self.need, self.path, self.line, self.what, self.source, self.value = need, path, line, what, source, value

    def where(self) -> str:
        from ._project import shown_path

        return f"{shown_path(self.path) if os.path.isabs(self.path) else self.path}:{self.line}"

    def to_dict(self) -> Dict[str, Any]:
        return {"file": self.path, "line": self.line, "what": self.what, "source": self.source or None}


class Declared:
    """What a pyproject.toml's [tool.loopcompat] table declares at its top level (the part --write edits)."""

    def __init__(self, path: Optional[str]) -> None:
        from ._project import read_toml

        self.path = path
        self.document: Dict[str, Any] = {}
        self.text = ""
        self.needs: Tuple[str, ...] = ()
        self.max_sockets: Optional[int] = None
        if path:
            self.document, self.text = read_toml(path)
            tool = self.document.get("tool")
            table = tool.get("loopcompat") if isinstance(tool, dict) else None
            if isinstance(table, dict):
                self.needs = parse_needs(table.get("needs") or [], f"{path}: [tool.loopcompat] needs")
                value = table.get("max-sockets")
                self.max_sockets = value if isinstance(value, int) and not isinstance(value, bool) else None


def by_need(evidence: Sequence[Evidence]) -> Dict[str, List[Evidence]]:
    """Evidence grouped by need, in the vocabulary's order, then max_sockets."""
    grouped: Dict[str, List[Evidence]] = {}
    for name in NEEDS + ("max_sockets",):
        found = sorted((e for e in evidence if e.need == name), key=lambda e: (e.path, e.line))
        if found:
            grouped[name] = found
    return grouped


def inferred_max_sockets(evidence: Sequence[Evidence]) -> Optional[int]:
    values = [e.value for e in evidence if e.need == "max_sockets" and e.value]
    return max(values) if values else None


def snippet(needs: Sequence[str], max_sockets: Optional[int]) -> str:
    lines = ["[tool.loopcompat]", "needs = [" + ", ".join(f'"{need}"' for need in needs) + "]"]
    if max_sockets:
        lines.append(f"max-sockets = {max_sockets}")
    return "\n".join(lines)


def _evidence_lines(grouped: Dict[str, List[Evidence]], inferred_sockets: Optional[int]) -> List[str]:
    lines: List[str] = []
    for need, found in grouped.items():
        lines.append(f"{need}: {inferred_sockets}" if need == "max_sockets" else need)
        width = max(len(e.where()) for e in found[:SHOWN_PER_NEED])
        for item in found[:SHOWN_PER_NEED]:
            lines.append(f"  {item.where():<{width}}  {item.what}")
            if item.source:
                lines.append(f"  {'':<{width}}  source: {item.source}")
        if len(found) > SHOWN_PER_NEED:
            lines.append(f"  ... and {len(found) - SHOWN_PER_NEED} more")
    return lines


def report(title: str, evidence: Sequence[Evidence], declared: Declared, *, write: bool, as_json: bool,
           write_hint: str, out: TextIO) -> int:
    """Print what was found against what is declared; write the missing needs when asked. Returns the exit code."""
    grouped = by_need(evidence)
    needs = [n for n in grouped if n != "max_sockets"]
    sockets = inferred_max_sockets(evidence)
    missing = [n for n in needs if n not in declared.needs]
    missing_sockets = sockets if sockets and declared.max_sockets is None else None
    written = False
    if write and (missing or missing_sockets):
        _write(declared, missing, missing_sockets)
        written = True
    if as_json:
        data = {"needs": {n: [e.to_dict() for e in found] for n, found in grouped.items()}, "max_sockets": sockets,
                "pyproject": declared.path, "declared": list(declared.needs), "missing": missing,
                "missing_max_sockets": missing_sockets, "written": written}
        print(json.dumps(data, indent=2), file=out)
        return EXIT_OK if written or not (missing or missing_sockets) else EXIT_MISSING
    lines = [title, ""] + (_evidence_lines(grouped, sockets) or ["no need found"])
    lines += [""] + _status_lines(declared, missing, missing_sockets, sockets, written)
    if (missing or missing_sockets) and not written:
        all_needs = list(declared.needs) + missing
        lines += ["", snippet(all_needs, declared.max_sockets or missing_sockets), "", write_hint]
    print("\n".join(lines), file=out)
    return EXIT_OK if written or not (missing or missing_sockets) else EXIT_MISSING


def _status_lines(declared: Declared, missing: Sequence[str], missing_sockets: Optional[int],
                  sockets: Optional[int], written: bool) -> List[str]:
    from ._project import shown_path

    where = shown_path(declared.path) if declared.path else "no pyproject.toml found"
    lines = [f"{where} declares: {', '.join(declared.needs) or 'no needs'}"]
    if written:
        added = list(missing) + ([f"max-sockets = {missing_sockets}"] if missing_sockets else [])
        return lines + [f"added to {where}: {', '.join(added)}"]
    if missing or missing_sockets:
        lines.append(f"missing: {', '.join(list(missing) + (['max-sockets'] if missing_sockets else []))}")
    else:
        lines.append("nothing missing")
    if sockets and declared.max_sockets is not None and declared.max_sockets < sockets:
        lines.append(f"note: max-sockets = {declared.max_sockets} is declared; the code suggests {sockets}")
    return lines


def _write(declared: Declared, missing: Sequence[str], max_sockets: Optional[int]) -> None:
    from ._toml_edit import verified_edit

    if not declared.path:
        raise ConfigError("no pyproject.toml to write to (none in the folder or above it): add the snippet to one")
    edited = verified_edit(declared.text, declared.document, missing, max_sockets)
    temporary = f"{declared.path}.loopcompat-{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8", newline="") as f:
        f.write(edited)
    try:
        import shutil

        shutil.copymode(declared.path, temporary)
        os.replace(temporary, declared.path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
