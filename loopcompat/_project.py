"""The project a command runs in: its configuration, applied to any platform, with where each value came from.

`explain`, `config`, `check` and `doctor` plan with the same layered configuration
the application gets at run time (loopcompat._config.effective), taking the
per-system table of the system they are asked about, not of this machine's.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from . import _knowledge as kb
from ._errors import ConfigError
from ._plan import Plan
from ._platform import Platform, detect, normalize_system
from ._vocab import OPTION_NAMES, did_you_mean

# A release to plan for when a system other than this machine's is asked about without one:
# a current release of each. Other releases change a plan only where the knowledge base has a
# release range (old macOS), and `check --old-releases` picks those from the table itself.
TYPICAL_RELEASE = {
    "windows": "10",
    "macos": "14",
    "linux": "6.1",
    "freebsd": "14.0",
    "openbsd": "7.5",
    "netbsd": "10.0",
    "dragonfly": "6.4",
    "sunos": "5.11",
    "solaris": "11.4",
    "illumos": "5.11",
}
MAIN_SYSTEMS = ("windows", "macos", "linux")


def known_systems() -> Tuple[str, ...]:
    """The systems the knowledge base has facts about, the three main ones first."""
    names = dict.fromkeys(MAIN_SYSTEMS)
    for rule in kb.RULES:
        names.update(dict.fromkeys(rule.systems + rule.except_systems))
    return tuple(names)


def parse_system(text: str, source: str = "--system") -> str:
    """A system name the knowledge base knows ("win32" and "darwin" are aliases).

    :raises ConfigError: for any other name, with a did-you-mean.
    """
    name = normalize_system(text)
    known = known_systems()
    if name not in known:
        hint = did_you_mean(str(text).strip().lower(), known)
        raise ConfigError(f"{source}: unknown system {text!r}; known: {', '.join(known)}.{hint}")
    return name


def typical_release(system: str) -> str:
    return TYPICAL_RELEASE.get(system, "0")


def platform_for(
    system: Optional[str] = None,
    release: Optional[str] = None,
    python: Optional[str] = None,
    implementation: Optional[str] = None,
) -> Platform:
    """This machine's platform with the given parts replaced; a system other than this
    machine's gets its typical release unless one is given.

    :raises ConfigError: for an unknown system or a release or Python that is not a version.
    """
    here = detect()
    if system is None and release is None and python is None and implementation is None:
        return here
    name = parse_system(system) if system is not None else here.system
    if release is None:
        release = here.release if name == here.system else typical_release(name)
    return Platform(name, release, python or here.python, implementation or here.implementation)


def config_file(start_dir: str) -> Optional[str]:
    """The project configuration file the layers read: LOOPCOMPAT_CONFIG, or the nearest pyproject.toml."""
    from ._startup import CONFIG_VAR, find_pyproject

    explicit = os.environ.get(CONFIG_VAR, "").strip()
    return explicit or find_pyproject(start_dir)


class Configuration:
    """Effective settings for one system, each with its origin, and the needs with theirs."""

    def __init__(self, settings: Mapping[str, Any], needs: Mapping[str, str]) -> None:
        self.settings = settings  # option -> loopcompat._config.Setting (value, origin)
        self.needs = needs  # need -> origin

    @property
    def options(self) -> Dict[str, Any]:
        return {name: s.value for name, s in self.settings.items() if name in OPTION_NAMES}

    def configured_options(self) -> Dict[str, Any]:
        """The options that do not come from the defaults, as {name: Setting}."""
        return {name: s for name, s in self.settings.items() if name in OPTION_NAMES and s.origin != "default"}


def configuration(
    system: str,
    *,
    start_dir: Optional[str] = None,
    arguments: Optional[Mapping[str, Any]] = None,
    needs: Iterable[str] = (),
    read_config: bool = True,
    environ: Optional[Mapping[str, str]] = None,
) -> Configuration:
    """The configuration ``system`` gets: its per-system table applies.

    :raises ConfigError: for an invalid file, variable or argument.
    """
    from ._config import effective

    start = start_dir or os.getcwd()
    if environ is None:
        settings, need_origins = effective(dict(arguments or {}), list(needs), system=system, start_dir=start,
                                           read_config=read_config)
    else:
        settings, need_origins = effective(dict(arguments or {}), list(needs), system=system, start_dir=start,
                                           read_config=read_config, environ=environ)
    return Configuration(settings, need_origins)


def read_toml(path: str) -> Tuple[Dict[str, Any], str]:
    """(document, text) of a TOML file.

    :raises ConfigError: unreadable, not UTF-8, or malformed (with the parser's line and column).
    """
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); TOML files must be UTF-8") from None
    try:
        return parse_toml(text), text
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def parse_toml(text: str) -> Dict[str, Any]:
    """:raises ConfigError: for malformed TOML, with the parser's line and column."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.8-3.10
        import tomli as tomllib
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"malformed TOML: {exc}") from None


def plan_configured(platform: Platform, config: Configuration, installed: Optional[frozenset] = None) -> Plan:
    """The plan for ``platform`` under ``config``, never raising for unmet needs.

    :raises ConfigError: when a setting cannot apply to ``platform``, naming where it was set.
    """
    from ._planner import make_plan

    try:
        return make_plan(list(config.needs), platform, config.options, raise_unmet=False, installed=installed)
    except ConfigError as exc:
        raise blamed(exc, config.settings) from None


def blamed(exc: ConfigError, settings: Mapping[str, Any]) -> ConfigError:
    """``exc`` prefixed with the origin of the setting it is about (a file:line, a variable)."""
    message = str(exc)
    for name in OPTION_NAMES:
        setting = settings.get(name)
        if setting is not None and message.startswith((f"{name}=", f"{name}:")) and setting.origin != "default":
            error = ConfigError(f"{short_origin(setting.origin)}: {message}")
            error.origin = setting.origin  # type: ignore[attr-defined]  # for annotations (check --format github)
            return error
    return exc


def short_origin(origin: str) -> str:
    """A file (or file:line) origin relative to the current directory when it lies below it ("pyproject.toml:3")."""
    path, sep, line = origin.rpartition(":")
    if not (sep and line.isdigit() and os.path.isabs(path)):
        path, line = origin, ""
    if not os.path.isabs(path):
        return origin
    return f"{shown_path(path)}:{line}" if line else shown_path(path)


def shown_path(path: str) -> str:
    """``path`` relative to the current directory when it lies below it, else as given."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive, on Windows
        return path
    return path if relative.startswith("..") else relative


def origin_line(origin: str) -> Tuple[Optional[str], Optional[int]]:
    """(file, line) of a "file:line" origin; (None, None) for a variable, an argument or a default."""
    path, sep, line = origin.rpartition(":")
    if sep and line.isdigit() and os.path.isabs(path):
        return path, int(line)
    if os.path.isabs(origin):
        return origin, None
    return None, None


_UNSET_TEXT = {"loop": "auto", "selector": "auto", "max_sockets": "not set"}


def human_value(name: str, value: Any) -> str:
    """A setting as a person reads it: no Python reprs, None, tuples or quotes."""
    if value is None:
        return _UNSET_TEXT.get(name, "not set")
    if name == "fallbacks" and isinstance(value, bool):
        return "all" if value else "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, frozenset, set)):
        return ", ".join(str(item) for item in value) or "none"
    return str(value)


def system_table_problems(start_dir: Optional[str], python: str, skip: Iterable[str] = ()) -> List[str]:
    """Problems of per-system tables that only show on their own system (``[tool.loopcompat.macos]
    selector = "epoll"`` passes on Linux): each table is planned for a typical release of its system."""
    from ._config import SYSTEM_TABLES

    base = configuration("", start_dir=start_dir)  # no per-system table applies to ""
    problems: List[str] = []
    for system in [name for name in SYSTEM_TABLES if name not in skip]:
        config = configuration(system, start_dir=start_dir)
        own = {name for name, s in config.settings.items() if base.settings[name].origin != s.origin}
        try:
            plan_configured(Platform(system, typical_release(system), python), config)
        except ConfigError as exc:
            if any(short_origin(config.settings[name].origin) in str(exc) for name in own):
                problems.append(f"{exc} (the per-system table for {system})")
    return list(dict.fromkeys(problems))
