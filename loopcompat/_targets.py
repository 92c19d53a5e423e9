"""The platforms a project claims, for `loopcompat check`.

From, in order of precedence: ``--target`` arguments, the ``targets`` key of
``[tool.loopcompat]``, or the project's own metadata: the Python versions its
``requires-python`` allows and the systems its ``Operating System ::``
classifiers name. Python versions are bounded to those the knowledge base can
tell apart; OS releases are a typical current one per system, plus (on request)
one per release range the knowledge base has facts about.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from . import _knowledge as kb
from ._errors import ConfigError
from ._platform import Platform, version_tuple
from ._project import MAIN_SYSTEMS, parse_system, short_origin, typical_release


class Target:
    """One platform to plan for."""

    __slots__ = ("system", "release", "python")

    def __init__(self, system: str, release: str, python: str) -> None:
        self.system, self.release, self.python = system, release, python

    def platform(self) -> Platform:
        return Platform(self.system, self.release, self.python)

    def __repr__(self) -> str:
        return f"Target({self.system}:{self.release}:{self.python})"


def known_pythons() -> Tuple[str, ...]:
    """The CPython minor versions the knowledge base can tell apart.

    From one below its oldest Python boundary (the versions before it) to two
    above its newest: asyncio deprecates for at least two releases before it
    removes (PEP 387), so a fact dated 3.14 still describes 3.16.
    """
    minors = set()
    for rule in kb.RULES:
        for clause in filter(None, (part.strip() for part in rule.python.split(","))):
            bound = version_tuple(clause.lstrip("<>=!~ "))
            if bound[0] == 3 and len(bound) > 1:
                minors.add(bound[1])
    return tuple(f"3.{minor}" for minor in range(min(minors) - 1, max(minors) + 3))


def pythons_allowed(requires_python: Optional[str], origin: str) -> Tuple[Tuple[str, ...], str]:
    """(the known Python versions ``requires-python`` allows, a sentence saying how they were chosen).

    :raises ConfigError: for a specifier packaging cannot read.
    """
    known = known_pythons()
    if not requires_python:
        return known, f"no requires-python: every Python the knowledge base knows ({known[0]}-{known[-1]})"
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        spec = SpecifierSet(requires_python)
    except InvalidSpecifier as exc:
        raise ConfigError(f"{short_origin(origin)}: requires-python = {requires_python!r} is not a version "
                          f"specifier: {exc}") from None
    # A minor version is in when any of its releases is (">=3.8.1" still means Python 3.8).
    allowed = tuple(v for v in known if spec.contains(f"{v}.0") or spec.contains(f"{v}.999"))
    if not allowed:
        raise ConfigError(f"{short_origin(origin)}: requires-python = {requires_python!r} allows none of the Pythons "
                          f"the knowledge base knows ({known[0]}-{known[-1]})")
    return allowed, f"requires-python {requires_python!r} ({short_origin(origin)}): {span(allowed)}"


def span(versions: Sequence[str]) -> str:
    return versions[0] if len(versions) == 1 else f"{versions[0]}-{versions[-1]}"


# Trove classifiers -> systems. A general classifier (POSIX, Unix) counts only when no classifier
# of its family names a system more precisely: "POSIX" next to "POSIX :: Linux" means Linux.
_CLASSIFIERS: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ("Operating System :: OS Independent", MAIN_SYSTEMS),
    ("Operating System :: Microsoft :: Windows", ("windows",)),
    ("Operating System :: MacOS", ("macos",)),
    ("Operating System :: POSIX :: Linux", ("linux",)),
    ("Operating System :: POSIX :: BSD :: FreeBSD", ("freebsd",)),
    ("Operating System :: POSIX :: BSD :: OpenBSD", ("openbsd",)),
    ("Operating System :: POSIX :: BSD :: NetBSD", ("netbsd",)),
    ("Operating System :: POSIX :: SunOS/Solaris", ("sunos",)),
)
_GENERAL_CLASSIFIERS = {"Operating System :: POSIX": ("linux", "macos"), "Operating System :: Unix": ("linux", "macos")}
_WINDOWS_RELEASE = re.compile(r"Operating System :: Microsoft :: Windows :: Windows (\d+(?:\.\d+)?)$")


def classifier_systems(classifiers: Sequence[str]) -> Dict[str, List[str]]:
    """{system: [releases named by classifiers, or none]} in the order the classifiers give them."""
    found: Dict[str, List[str]] = {}
    for classifier in classifiers:
        classifier = " :: ".join(part.strip() for part in str(classifier).split("::"))
        for prefix, systems in _CLASSIFIERS:
            if classifier == prefix or classifier.startswith(prefix + " ::"):
                for system in systems:
                    found.setdefault(system, [])
        match = _WINDOWS_RELEASE.match(classifier)
        if match and match.group(1) not in found.setdefault("windows", []):
            found["windows"].append(match.group(1))
    if not found:
        for classifier in classifiers:
            for prefix, systems in _GENERAL_CLASSIFIERS.items():
                if classifier.strip() == prefix or classifier.strip().startswith(prefix + " ::"):
                    for system in systems:
                        found.setdefault(system, [])
    return found


def old_releases(system: str) -> List[str]:
    """One release per OS release range the knowledge base has facts about for ``system``, newest
    first within each, leaving out ranges that behave like the typical release (macOS: 10.5, 10.8)."""
    rules = [rule for rule in kb.RULES if rule.release and system in rule.systems]
    candidates = set()
    for rule in rules:
        for clause in rule.release.split(","):
            bound = version_tuple(clause.strip().lstrip("<>="))
            candidates.add(bound)
            if bound[-1] > 0:
                candidates.add(bound[:-1] + (bound[-1] - 1,))

    def facts(release: Tuple[int, ...]) -> Tuple[int, ...]:
        platform = Platform(system, ".".join(map(str, release)), "3.13")
        return tuple(index for index, rule in enumerate(rules) if rule.holds_on(platform))

    typical = facts(version_tuple(typical_release(system)))
    best: Dict[Tuple[int, ...], Tuple[int, ...]] = {}
    for release in candidates:
        signature = facts(release)
        if signature != typical and release > best.get(signature, ()):
            best[signature] = release
    return [".".join(map(str, release)) for release in sorted(best.values())]


def parse_target(text: str, source: str) -> Tuple[str, Optional[str], Optional[str]]:
    """(system, release or None, python or None) of "system[:release[:python]]".

    :raises ConfigError: for an unknown system or a part that is not a version.
    """
    parts = str(text).strip().split(":")
    if len(parts) > 3 or not parts[0]:
        raise ConfigError(f"{source}: target {text!r} is not system[:release[:python]] (e.g. windows:10:3.9)")
    system = parse_system(parts[0], f"{source}: target {text!r}")
    release = parts[1] if len(parts) > 1 and parts[1] else None
    python = parts[2] if len(parts) > 2 and parts[2] else None
    try:
        Platform(system, release or "0", python or "3.13")
    except ConfigError as exc:
        raise ConfigError(f"{source}: target {text!r}: {exc}") from None
    return system, release, python


def _expand(system: str, releases: Sequence[str], pythons: Sequence[str], old: bool) -> List[Target]:
    chosen = list(releases) or [typical_release(system)]
    if old:
        chosen = [r for r in old_releases(system) if r not in chosen] + chosen
    return [Target(system, release, python) for release in chosen for python in pythons]


def resolve_targets(
    document: Mapping[str, Any], lines: Mapping[str, int], path: Optional[str], arguments: Sequence[str], old: bool
) -> Tuple[List[Target], List[str]]:
    """(targets, sentences saying where they came from).

    :raises ConfigError: for a bad target, requires-python or classifier list.
    """
    project: Mapping[str, Any] = document["project"] if isinstance(document.get("project"), dict) else {}
    tool: Any = document["tool"].get("loopcompat", {}) if isinstance(document.get("tool"), dict) else {}

    def where(key: str) -> str:
        return f"{path}:{lines[key]}" if path and key in lines else (path or "pyproject.toml")

    pythons, python_note = pythons_allowed(project.get("requires-python"), where("project.requires-python"))
    written: Sequence[Any] = arguments
    source = "--target"
    if not arguments and isinstance(tool, dict) and tool.get("targets"):
        written, source = tool["targets"], f"{short_origin(where('tool.loopcompat.targets'))} targets"
    if written:
        targets = []
        for text in written:
            system, release, python = parse_target(text, source)
            targets += _expand(system, [release] if release else [], [python] if python else pythons, old)
        return targets, [f"targets from {source}: {', '.join(map(str, written))}", python_note]
    return _metadata_targets(project, where, pythons, python_note, old)


def _metadata_targets(project: Mapping[str, Any], where: Any, pythons: Sequence[str], python_note: str,
                      old: bool) -> Tuple[List[Target], List[str]]:
    classifiers = project.get("classifiers") or []
    if not isinstance(classifiers, list):
        raise ConfigError(f"{short_origin(where('project.classifiers'))}: classifiers must be a list of strings")
    systems = classifier_systems(classifiers)
    if systems:
        system_note = (f"Operating System classifiers ({short_origin(where('project.classifiers'))}): "
                       f"{', '.join(systems)}")
    elif "classifiers" in (project.get("dynamic") or []):
        systems = {name: [] for name in MAIN_SYSTEMS}
        system_note = f"classifiers are dynamic (not in pyproject.toml): checking {', '.join(MAIN_SYSTEMS)}"
    else:
        systems = {name: [] for name in MAIN_SYSTEMS}
        system_note = f"no Operating System classifier: checking {', '.join(MAIN_SYSTEMS)}"
    targets = [t for system, releases in systems.items() for t in _expand(system, releases, pythons, old)]
    return targets, [system_note, python_note]
