"""Adding needs to a pyproject.toml by hand, as a person would: every other byte stays where it was.

A TOML writer would reformat the file and drop its comments, so the edit is
textual: new names go into the existing ``needs`` array (on lines of their own
when the array spans lines, after the last value when it does not), or a
``needs`` line goes under the ``[tool.loopcompat]`` header, or that table is
appended. The result is parsed again and must hold exactly the old document
plus the new needs (and max-sockets), or nothing is written.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ._errors import ConfigError

_HEADER = re.compile(r"^[ \t]*\[\[?[ \t]*([A-Za-z0-9_.\"' -]+?)[ \t]*\]\]?[ \t]*(#.*)?$")
_NEEDS_KEY = re.compile(r"^[ \t]*(needs|\"needs\"|'needs')[ \t]*=[ \t]*", re.M)
_MAX_SOCKETS_KEY = re.compile(r"^[ \t]*(max-sockets|\"max-sockets\"|'max-sockets')[ \t]*=", re.M)


def _table_span(text: str) -> Optional[Tuple[int, int]]:
    """(start, end) offsets of the body of the ``[tool.loopcompat]`` table, or None when it has no header."""
    offset, start = 0, None
    for line in text.splitlines(keepends=True):
        match = _HEADER.match(line.rstrip("\r\n"))
        if match:
            name = re.sub(r"[ \t\"']", "", match.group(1))
            if start is not None:
                return start, offset
            if name == "tool.loopcompat" and not line.lstrip().startswith("[["):
                start = offset + len(line)
        offset += len(line)
    return (start, len(text)) if start is not None else None


def _skip_string(text: str, i: int) -> int:
    """The offset just past the TOML string starting at ``i``."""
    quote = text[i]
    triple = text.startswith(quote * 3, i)
    end_mark = quote * 3 if triple else quote
    j = i + len(end_mark)
    while j < len(text):
        if quote == '"' and text[j] == "\\":
            j += 2
            continue
        if text.startswith(end_mark, j):
            return j + len(end_mark)
        if text[j] == "\n" and not triple:
            break
        j += 1
    raise ConfigError("unterminated string in the needs array")


def _scan_array(text: str, opening: int) -> Tuple[int, Optional[int], str]:
    """(offset of the closing bracket, offset just past the last value or None, the quote its strings use)."""
    i, depth, last_end, quote = opening + 1, 1, None, '"'
    while i < len(text):
        char = text[i]
        if char == "#":
            newline = text.find("\n", i)
            i = len(text) if newline < 0 else newline
            continue
        if char in "\"'":
            if last_end is None:
                quote = char
            i = last_end = _skip_string(text, i)
            continue
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth == 0:
                return i, last_end, quote
        elif char not in " \t\r\n,":
            last_end = i + 1
        i += 1
    raise ConfigError("the needs array is not closed")


def _insert_into_array(text: str, opening: int, needs: Sequence[str], newline: str) -> str:
    closing, last_end, quote = _scan_array(text, opening)
    items = [f"{quote}{need}{quote}" for need in needs]
    if last_end is None:
        return text[:opening + 1] + ", ".join(items) + text[opening + 1:]
    if "\n" not in text[last_end:closing]:  # `["a", "b"]`, or a last value sharing its line with `]`
        return text[:last_end] + "".join(f", {item}" for item in items) + text[last_end:]
    line_start = text.rfind("\n", 0, last_end) + 1
    indent = re.match(r"[ \t]*", text[line_start:]).group(0)  # type: ignore[union-attr]
    line_end = text.find("\n", last_end) + 1
    rest = text[last_end:line_end]
    comma = "" if rest.lstrip().startswith(",") else ","
    added = "".join(f"{indent}{item},{newline}" for item in items)
    return text[:last_end] + comma + rest + added + text[line_end:]


def add_to_table(text: str, needs: Sequence[str], max_sockets: Optional[int] = None) -> str:
    """``text`` with ``needs`` added to ``[tool.loopcompat] needs`` (and ``max-sockets`` set when absent).

    :raises ConfigError: when the needs key is not an array.
    """
    newline = "\r\n" if "\r\n" in text else "\n"
    span = _table_span(text)
    if span is None:
        return _append_table(text, needs, max_sockets, newline)
    start, end = span
    body = text[start:end]
    lines: List[str] = []
    insert_at = start  # new key lines go right under the header, or under the needs array
    match = _NEEDS_KEY.search(body)
    if match:
        opening = start + match.end()
        if text[opening:opening + 1] != "[":
            raise ConfigError("[tool.loopcompat] needs is not written as an array here")
        if needs:
            text = _insert_into_array(text, opening, needs, newline)
        closing = _scan_array(text, opening)[0]
        line_end = text.find("\n", closing)
        insert_at = len(text) if line_end < 0 else line_end + 1
    elif needs:
        lines.append("needs = [" + ", ".join(f'"{need}"' for need in needs) + "]")
    if max_sockets is not None and not _MAX_SOCKETS_KEY.search(body):
        lines.append(f"max-sockets = {max_sockets}")
    if lines:
        if insert_at > 0 and not text[:insert_at].endswith("\n"):  # the line above is the file's last
            text, insert_at = text + newline, insert_at + len(newline)
        text = text[:insert_at] + "".join(line + newline for line in lines) + text[insert_at:]
    return text


def _append_table(text: str, needs: Sequence[str], max_sockets: Optional[int], newline: str) -> str:
    lines = ["[tool.loopcompat]"]
    if needs:
        lines.append("needs = [" + ", ".join(f'"{need}"' for need in needs) + "]")
    if max_sockets is not None:
        lines.append(f"max-sockets = {max_sockets}")
    if text and not text.endswith("\n"):
        text += newline
    separator = newline if text.strip() and not text.endswith(newline * 2) else ""
    return text + separator + "".join(line + newline for line in lines)


def _tool_table(document: Dict[str, Any]) -> Dict[str, Any]:
    tool = document.get("tool")
    table = tool.get("loopcompat") if isinstance(tool, dict) else None
    return table if isinstance(table, dict) else {}


def verified_edit(text: str, document: Dict[str, Any], needs: Sequence[str], max_sockets: Optional[int]) -> str:
    """:func:`add_to_table`, checked: the edited text parses to ``document`` plus exactly these changes.

    :raises ConfigError: when it would not.
    """
    from ._project import parse_toml

    table = _tool_table(document)
    if _table_span(text) is None and any(not isinstance(value, dict) for value in table.values()):
        raise ConfigError("[tool.loopcompat] is written without its own [tool.loopcompat] header (dotted keys or an "
                          "inline table): add the needs by hand")
    edited = add_to_table(text, needs, max_sockets)
    expected = copy.deepcopy(document)
    wanted = _tool_table(expected) if table else expected.setdefault("tool", {}).setdefault("loopcompat", {})
    if needs:
        wanted["needs"] = list(wanted.get("needs", [])) + list(needs)
    if max_sockets is not None and "max-sockets" not in wanted:
        wanted["max-sockets"] = max_sockets
    try:
        result = parse_toml(edited)
    except ConfigError:
        result = None
    if result != expected:
        raise ConfigError("the edit of pyproject.toml would not parse back as intended: nothing was written; "
                          "add the needs by hand")
    return edited
