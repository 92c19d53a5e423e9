"""`loopcompat check`: the project's configuration planned on every platform it claims, as one matrix.

Exit 0 when every declared need is met on every target, 1 when one is not,
2 for bad input (arguments, configuration, or a setting that cannot apply to a
target). Output: a text matrix, JSON for tools, or GitHub workflow annotations
that point at the line of pyproject.toml declaring the need.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ._config import key_lines
from ._errors import ConfigError
from ._plan import FALLBACK, NATIVE, Plan
from ._project import (
    Configuration,
    configuration,
    origin_line,
    plan_configured,
    read_toml,
    short_origin,
    system_table_problems,
)
from ._startup import find_pyproject
from ._targets import Target, resolve_targets, span

EXIT_OK, EXIT_UNMET, EXIT_USAGE = 0, 1, 2


class Outcome:
    """One target's plan under its system's configuration, or the error planning it met."""

    __slots__ = ("target", "config", "plan", "error")

    def __init__(self, target: Target, config: Configuration, plan: Optional[Plan], error: Optional[ConfigError]):
        self.target, self.config, self.plan, self.error = target, config, plan, error

    def cells(self, needs: Sequence[str]) -> Tuple[Tuple[str, str, str, str], ...]:
        """(level, fallback, reason, remedy) per need; ("", ...) where this system does not declare it."""
        result = []
        for need in needs:
            declared = need in self.config.needs or (need == "max_sockets" and self.config.options.get("max_sockets"))
            if self.plan is None or not declared:
                result.append(("", "", "", ""))
                continue
            support = self.plan.features[need]
            result.append((support.level, support.fallback or "", support.reason, support.remedy))
        return tuple(result)

    def error_text(self) -> str:
        """The error without the Python version, so that targets differing only in it share a row."""
        if self.error is None:
            return ""
        platform = str(self.target.platform())  # "Linux 6.1, CPython 3.11"
        return str(self.error).replace(platform, platform.rsplit(",", 1)[0])

    def signature(self, needs: Sequence[str]) -> Tuple[Any, ...]:
        loop = (self.plan.loop, self.plan.selector) if self.plan else None
        return (self.target.system, self.target.release, loop, self.error_text(), self.cells(needs))


def locate(project: str) -> Tuple[str, Optional[str]]:
    """(folder the configuration is searched from, the pyproject.toml holding the project's metadata)."""
    path = os.path.abspath(project)
    if os.path.isfile(path):
        return os.path.dirname(path), path
    if not os.path.isdir(path):
        raise ConfigError(f"{project}: no such file or folder")
    return path, find_pyproject(path)


def plan_all(targets: Sequence[Target], start_dir: str) -> List[Outcome]:
    configs: Dict[str, Configuration] = {}
    outcomes = []
    for target in targets:
        if target.system not in configs:
            configs[target.system] = configuration(target.system, start_dir=start_dir)
        config = configs[target.system]
        try:
            outcomes.append(Outcome(target, config, plan_configured(target.platform(), config), None))
        except ConfigError as exc:
            outcomes.append(Outcome(target, config, None, exc))
    return outcomes


def columns(outcomes: Sequence[Outcome]) -> List[str]:
    """Every need some target's system declares, then max_sockets when one sets it."""
    needs: Dict[str, None] = {}
    for outcome in outcomes:
        needs.update(dict.fromkeys(outcome.config.needs))
    if any(outcome.config.options.get("max_sockets") for outcome in outcomes):
        needs["max_sockets"] = None
    return list(needs)


class Row:
    """Consecutive targets of one system and release whose outcome is the same, shown once."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcomes = [outcome]

    @property
    def first(self) -> Outcome:
        return self.outcomes[0]

    def label(self) -> str:
        platform = str(self.first.target.platform())  # "Windows 10, CPython 3.8"
        return platform.rsplit(" ", 1)[0] + " " + span([o.target.python for o in self.outcomes])


def rows(outcomes: Sequence[Outcome], needs: Sequence[str]) -> List[Row]:
    grouped: List[Row] = []
    for outcome in outcomes:
        if grouped and grouped[-1].first.signature(needs) == outcome.signature(needs):
            grouped[-1].outcomes.append(outcome)
        else:
            grouped.append(Row(outcome))
    return grouped


class Footnote:
    """A need unsupported somewhere (or a target that cannot be planned), with every row it concerns."""

    def __init__(self, need: str, reason: str, remedy: str, origin: str) -> None:
        self.need, self.reason, self.remedy, self.origin = need, reason, remedy, origin
        self.labels: List[str] = []


def footnotes(grouped: Sequence[Row], needs: Sequence[str]) -> List[Footnote]:
    found: Dict[Tuple[str, str, str], Footnote] = {}
    for row in grouped:
        outcome = row.first
        if outcome.error is not None:
            key = ("", outcome.error_text(), "")
            origin = getattr(outcome.error, "origin", "")
            found.setdefault(key, Footnote("", outcome.error_text(), "", origin)).labels.append(row.label())
            continue
        for need, (level, _, reason, remedy) in zip(needs, outcome.cells(needs)):
            if level == "unsupported":
                origin = outcome.config.needs.get(need) or outcome.config.settings["max_sockets"].origin
                found.setdefault((need, reason, remedy), Footnote(need, reason, remedy, origin)).labels.append(
                    row.label())
    return list(found.values())


def _cell(cell: Tuple[str, str, str, str], number: Optional[int], markdown: bool = False) -> str:
    level, fallback = cell[0], cell[1]
    if not level:
        return "-"
    if level == NATIVE:
        return "native"
    if level == FALLBACK:
        return f"fallback: {fallback}" if markdown else fallback
    return f"**unsupported** [{number}]" if markdown else f"UNSUPPORTED [{number}]"


def matrix(outcomes: Sequence[Outcome], markdown: bool = False) -> Tuple[List[List[str]], List[Footnote]]:
    """The table (a header row, then one row per group of targets) and the findings it numbers."""
    needs = columns(outcomes)
    grouped = rows(outcomes, needs)
    found = footnotes(grouped, needs)
    number = {(f.need, f.reason, f.remedy): index for index, f in enumerate(found, 1)}
    table = [["target", "loop", *needs]]
    for row in grouped:
        outcome = row.first
        if outcome.error is not None:
            table.append([row.label(), f"ERROR [{number[('', outcome.error_text(), '')]}]"] + [""] * len(needs))
            continue
        assert outcome.plan is not None
        loop = outcome.plan.loop + (f"/{outcome.plan.selector}" if outcome.plan.selector else "")
        cells = [_cell(c, number.get((need, c[2], c[3])), markdown) for need, c in zip(needs, outcome.cells(needs))]
        table.append([row.label(), loop, *cells])
    return table, found


def _header(path: Optional[str], outcomes: Sequence[Outcome], notes: Sequence[str]) -> List[str]:
    lines = [f"loopcompat check: {short_origin(path) if path else '(no pyproject.toml: --target only)'}"]
    needs_by_origin: Dict[str, List[str]] = {}
    for outcome in outcomes:
        for need, origin in outcome.config.needs.items():
            if need not in needs_by_origin.setdefault(short_origin(origin), []):
                needs_by_origin[short_origin(origin)].append(need)
    declared = "; ".join(f"{', '.join(n)} ({origin})" for origin, n in needs_by_origin.items())
    lines.append(f"  needs:   {declared or 'none declared (loopcompat scan infers them from the source)'}")
    from ._startup import is_disabled

    if is_disabled():
        lines.append("  note:    LOOPCOMPAT_DISABLE is set: no configuration file or variable was read")
    return lines + [f"  targets: {note}" for note in notes]


def text_report(path: Optional[str], outcomes: Sequence[Outcome], notes: Sequence[str], problems: Sequence[str]) -> str:
    table, found = matrix(outcomes)
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines = _header(path, outcomes, notes) + [""]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in table]
    lines += _finding_lines(found) + [f"problem: {problem}" for problem in problems]
    return "\n".join(lines + ["", summary(outcomes, problems)])


def markdown_report(path: Optional[str], outcomes: Sequence[Outcome], notes: Sequence[str],
                    problems: Sequence[str]) -> str:
    """The matrix as a Markdown table, with the findings as a numbered list (docs, CI job summaries)."""
    table, found = matrix(outcomes, markdown=True)
    lines = [f"**loopcompat check**: {summary(outcomes, problems)}", ""]
    lines.append("| " + " | ".join(table[0]) + " |")
    lines.append("|" + "---|" * len(table[0]))
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in r) + " |" for r in table[1:]]
    lines.append("")
    for index, finding in enumerate(found, 1):
        where = "; ".join(finding.labels)
        if finding.need:
            lines.append(f"{index}. `{finding.need}` on {where} (declared at `{short_origin(finding.origin)}`): "
                         f"{finding.reason}. Fix: {finding.remedy}")
        else:
            lines.append(f"{index}. cannot plan {where}: {finding.reason}")
    lines += [f"- problem: {problem}" for problem in problems]
    return "\n".join(lines).rstrip() + "\n"


def _finding_lines(found: Sequence[Footnote]) -> List[str]:
    lines = []
    for index, finding in enumerate(found, 1):
        lines.append("")
        where = "; ".join(finding.labels)
        if finding.need:
            declared = short_origin(finding.origin)
            lines.append(f"[{index}] {finding.need} is unsupported on {where} (declared at {declared})")
            lines.append(f"    why: {finding.reason}")
            if finding.remedy:
                lines.append(f"    fix: {finding.remedy}")
        else:
            lines.append(f"[{index}] cannot plan {where}: {finding.reason}")
    return lines


def summary(outcomes: Sequence[Outcome], problems: Sequence[str]) -> str:
    errors = sum(o.error is not None for o in outcomes) + len(problems)
    unmet = [o for o in outcomes if o.plan is not None and o.plan.unmet]
    planned = f"{len(outcomes)} platform{'s' if len(outcomes) != 1 else ''} planned"
    if errors:
        return f"ERROR: the configuration cannot be planned for every target ({planned}); see above."
    if unmet:
        return f"FAILED: a declared need is unmet on {len(unmet)} of the {planned}."
    if not any(o.config.needs or o.config.options.get("max_sockets") for o in outcomes):
        return f"OK, vacuously: no need is declared ({planned}); `loopcompat scan` infers them from the source."
    return f"OK: every declared need is met on every target ({planned})."


def exit_code(outcomes: Sequence[Outcome], problems: Sequence[str]) -> int:
    if problems or any(o.error is not None for o in outcomes):
        return EXIT_USAGE
    return EXIT_UNMET if any(o.plan is not None and o.plan.unmet for o in outcomes) else EXIT_OK


def json_report(path: Optional[str], outcomes: Sequence[Outcome], notes: Sequence[str],
                problems: Sequence[str]) -> str:
    targets = []
    for outcome in outcomes:
        entry: Dict[str, Any] = {**outcome.target.platform().to_dict(), "needs": dict(outcome.config.needs)}
        plan = outcome.plan
        if plan is not None:
            features = {n: {**plan.features[n].to_dict(), "fallback": plan.features[n].fallback}
                        for n in columns([outcome])}
            entry.update(loop=plan.loop, selector=plan.selector, fallbacks=sorted(plan.fallbacks),
                         unmet=list(plan.unmet), features=features)
        entry["error"] = str(outcome.error) if outcome.error else None
        targets.append(entry)
    code = exit_code(outcomes, problems)
    return json.dumps({"project": path, "sources": list(notes), "targets": targets, "problems": list(problems),
                       "ok": code == EXIT_OK, "exit_code": code}, indent=2)


def _escape(text: str, property_value: bool = False) -> str:
    """GitHub workflow-command escaping: %, CR and LF always; ':' and ',' in properties too."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if property_value else text


def annotation(origin: str, title: str, message: str) -> str:
    """``::error file=...,line=N,title=...::message``, the file relative to the workspace GitHub checked out."""
    path, line = origin_line(origin)
    props = []
    if path:
        workspace = os.environ.get("GITHUB_WORKSPACE") or os.getcwd()
        try:
            path = os.path.relpath(path, workspace)
        except ValueError:  # another drive, on Windows
            pass
        props.append(f"file={_escape(path.replace(os.sep, '/'), True)}")
        if line:
            props.append(f"line={line}")
    props.append(f"title={_escape(title, True)}")
    return f"::error {','.join(props)}::{_escape(message)}"


def github_report(path: Optional[str], outcomes: Sequence[Outcome], notes: Sequence[str],
                  problems: Sequence[str]) -> str:
    lines = [text_report(path, outcomes, notes, problems)]
    job_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if job_summary:  # the matrix as a table on the workflow run's page
        with open(job_summary, "a", encoding="utf-8") as f:
            f.write(markdown_report(path, outcomes, notes, problems))
    needs = columns(outcomes)
    for finding in footnotes(rows(outcomes, needs), needs):
        where = "; ".join(finding.labels)
        if finding.need:
            message = f"{finding.need} is unsupported on {where}: {finding.reason}. Fix: {finding.remedy}"
            lines.append(annotation(finding.origin, f"loopcompat: {finding.need} unsupported", message))
        else:
            lines.append(annotation(finding.origin, "loopcompat: cannot plan", f"{where}: {finding.reason}"))
    lines += [annotation("", "loopcompat: configuration", problem) for problem in problems]
    return "\n".join(lines)


def check(project: str, arguments: Sequence[str], *, old_releases: bool, output: str) -> int:
    """Plan the project on every target and print the matrix; the exit code says whether all needs are met."""
    start_dir, path = locate(project)
    document: Dict[str, Any] = {}
    lines: Dict[str, int] = {}
    if path is not None:
        document, text = read_toml(path)
        lines = key_lines(text)
    elif not arguments:
        raise ConfigError(f"no pyproject.toml in {start_dir} or above: give the project, or --target SYSTEM[:RELEASE"
                          "[:PYTHON]]")
    targets, notes = resolve_targets(document, lines, path, arguments, old_releases)
    outcomes = plan_all(targets, start_dir)
    python = targets[0].python if targets else "3.13"
    problems = system_table_problems(start_dir, python, skip={t.system for t in targets})
    render = {"text": text_report, "json": json_report, "github": github_report, "markdown": markdown_report}[output]
    text = render(path, outcomes, notes, problems)
    print(text, end="" if text.endswith("\n") else "\n")
    return exit_code(outcomes, problems)
