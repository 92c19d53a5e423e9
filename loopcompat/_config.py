"""Layered configuration: defaults < user config < pyproject.toml < environment < arguments.

Options follow "later layer wins"; needs are declarations of what the
application requires, so the layers' needs are added together (a plugin's
need declared in pyproject.toml is not lost because the code declares another).

Parsed tables and the user-config path are kept in the start-up cache
(loopcompat._startup), which also lets a warm start skip this module entirely.
"""

from __future__ import annotations

import marshal
import os
import sys
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from ._errors import ConfigError
from ._startup import CONFIG_VAR, ENV_VARS, StartupCache, find_pyproject, is_disabled, user_config_file
from ._vocab import (
    FALLBACKS,
    LOOPS,
    NEEDS,
    ON_UNSUPPORTED,
    SELECTORS,
    did_you_mean,
    parse_fallbacks,
    parse_max_sockets,
    parse_needs,
)

# TOML key -> option name. Files use kebab-case (as pyproject.toml does).
FILE_KEYS: Dict[str, str] = {
    "needs": "needs",
    "loop": "loop",
    "selector": "selector",
    "max-sockets": "max_sockets",
    "prefer": "prefer",
    "fallbacks": "fallbacks",
    "on-unsupported": "on_unsupported",
    "targets": "targets",  # top level only: what `loopcompat check` verifies (loopcompat._targets); no plan reads it
}
# A target is system[:release[:python]], e.g. "windows:10:3.9" or "macos:10.8" (config/loopcompat.schema.json).
TARGET_PATTERN = r"[A-Za-z][A-Za-z0-9_]*(:([0-9]+(\.[0-9]+)*)?(:[0-9]+\.[0-9]+)?)?"
SYSTEM_TABLES: Tuple[str, ...] = ("windows", "macos", "linux")
class Setting:
    """An effective value and where it came from ("default", "argument", a file:line, an env var)."""

    __slots__ = ("value", "origin")

    def __init__(self, value: Any, origin: str) -> None:
        self.value = value
        self.origin = origin

    def __repr__(self) -> str:
        return f"Setting({self.value!r}, from {self.origin})"


# --- validation ---------------------------------------------------------------------------------


def key_lines(text: str) -> Dict[str, int]:
    """{"table.key": line} for every ``key = ...`` line (tomllib keeps no positions)."""
    lines: Dict[str, int] = {}
    table = ""
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("[") and not stripped.startswith("[["):
            table = stripped.split("]", 1)[0].lstrip("[").replace(" ", "")
        elif "=" in stripped and not stripped.startswith("#"):
            key = stripped.split("=", 1)[0].strip().strip("\"'")
            lines.setdefault(f"{table}.{key}" if table else key, number)
    return lines


def validate_table(
    table: Mapping[str, Any],
    source: str,
    header: str,
    lines: Optional[Mapping[str, int]] = None,
    allow_systems: bool = True,
) -> Dict[str, Tuple[Any, str]]:
    """Validated options of one config table: {option: (value, origin)}. Reports every error at once.

    :raises ConfigError: listing each bad key with its line, value, allowed values and a did-you-mean.
    """
    problems: List[str] = []
    result: Dict[str, Tuple[Any, str]] = {}

    def where(key: str) -> str:
        line = (lines or {}).get(f"{header}.{key}" if header else key)
        return f"{source}:{line}" if line else source

    for key, value in table.items():
        label = f"[{header}] {key}" if header else key
        if allow_systems and key in SYSTEM_TABLES:
            if not isinstance(value, dict):
                problems.append(f"{where(key)}: {label} must be a table ([{header}.{key}]), got {value!r}")
            continue
        option = FILE_KEYS.get(key) if allow_systems or key != "targets" else None
        if option is None:
            allowed = [k for k in FILE_KEYS if allow_systems or k != "targets"]
            allowed += list(SYSTEM_TABLES) if allow_systems else []
            hint = did_you_mean(key.replace("_", "-"), allowed) or did_you_mean(key, allowed)
            table_name = f"[{header}]" if header else "the top level"
            problems.append(f"{where(key)}: unknown key {key!r} in {table_name}; allowed: {', '.join(allowed)}.{hint}")
            continue
        try:
            result[option] = (_validate_value(option, value, label), where(key))
        except ConfigError as exc:
            problems.append(f"{where(key)}: {exc}")
    if problems:
        raise ConfigError("invalid loopcompat configuration:\n  " + "\n  ".join(problems))
    return result


def _validate_value(option: str, value: Any, label: str) -> Any:
    if option == "needs":
        if not isinstance(value, list):
            raise ConfigError(f"{label} must be a list of needs ({', '.join(NEEDS)}), got {value!r}")
        for name in value:  # exact names only, as the JSON Schema says
            if not isinstance(name, str) or name not in NEEDS + ("add_writer",):
                hint = did_you_mean(name, NEEDS) if isinstance(name, str) else ""
                raise ConfigError(f"{label}: {name!r} is not a need; allowed: {', '.join(NEEDS)}.{hint}")
        return list(parse_needs(value, label))
    if option in ("loop", "selector", "on_unsupported"):
        allowed = {"loop": LOOPS, "selector": SELECTORS, "on_unsupported": ON_UNSUPPORTED}[option]
        if not isinstance(value, str) or value not in allowed:
            hint = did_you_mean(value, allowed) if isinstance(value, str) else ""
            raise ConfigError(f"{label} = {value!r} is not allowed; allowed: {', '.join(allowed)}.{hint}")
        return value
    if option == "max_sockets":
        if isinstance(value, str):
            raise ConfigError(f"{label} must be a whole number, got the string {value!r}")
        if isinstance(value, float) and value.is_integer():  # 2000.0 is a whole number (as in JSON Schema)
            value = int(value)
        return parse_max_sockets(value, label)
    if option == "prefer":
        if not isinstance(value, list):
            raise ConfigError(f"{label} must be a list of loops ({', '.join(LOOPS)}), got {value!r}")
        for name in value:
            if not isinstance(name, str) or name not in LOOPS:
                hint = did_you_mean(name, LOOPS) if isinstance(name, str) else ""
                raise ConfigError(f"{label}: {name!r} is not a loop; allowed: {', '.join(LOOPS)}.{hint}")
        return list(value)
    if option == "fallbacks":
        if not isinstance(value, (bool, list)):
            raise ConfigError(f"{label} must be true, false or a list of fallbacks ({', '.join(FALLBACKS)}), "
                              f"got {value!r}")
        return value if isinstance(value, bool) else list(parse_fallbacks(value, label))
    if option == "targets":
        import re

        if not isinstance(value, list) or not all(isinstance(t, str) and re.fullmatch(TARGET_PATTERN, t)
                                                  for t in value):
            raise ConfigError(f"{label} must be a list of targets such as \"windows:10:3.9\" or \"macos:10.8\" "
                              f"(system[:release[:python]]), got {value!r}")
        return list(value)
    raise AssertionError(option)  # pragma: no cover - FILE_KEYS and this function list the same options


# --- reading files, with the start-up cache -----------------------------------------------------


def _load_toml(path: str) -> Tuple[Dict[str, Any], str]:
    """(document, text) of a TOML file.

    :raises ConfigError: unreadable, not UTF-8, or malformed (with line and column).
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); TOML files must be UTF-8") from None
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.8-3.10
        import tomli as tomllib
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: malformed TOML: {exc}") from None


def _read_table(path: str, in_pyproject: bool, cache: StartupCache) -> Optional[Tuple[Dict[str, Any], Dict[str, int]]]:
    """The raw loopcompat table of ``path`` and its keys' line numbers, or None when it has none."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    stamp = (info.st_mtime_ns, info.st_size)
    key = os.path.abspath(path)  # a relative LOOPCOMPAT_CONFIG names another file in another directory
    cached = cache.data["files"].get(key)
    if isinstance(cached, tuple) and len(cached) == 4 and cached[:2] == stamp:
        return (cached[2], cached[3]) if cached[2] is not None else None
    document, text = _load_toml(path)
    table: Any = document
    if in_pyproject:
        table = document.get("tool", {})
        table = table.get("loopcompat") if isinstance(table, dict) else None
    if table is not None and not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.loopcompat] must be a table, got {table!r}")
    lines = key_lines(text) if table is not None else {}
    try:
        marshal.dumps(table)
        cache.data["files"][key] = (stamp[0], stamp[1], table, lines)
        cache.dirty = True
    except ValueError:
        pass  # dates or other TOML types marshal cannot hold: validation will reject them anyway
    return (table, lines) if table is not None else None


# --- layering -----------------------------------------------------------------------------------

DEFAULTS: Dict[str, Any] = {
    "needs": [],
    "loop": None,
    "selector": None,
    "max_sockets": None,
    "prefer": [],
    "fallbacks": True,
    "on_unsupported": "error",
}


def _apply(
    layer: Mapping[str, Tuple[Any, str]], settings: Dict[str, Setting], need_origins: Dict[str, str]
) -> None:
    for option, (value, origin) in layer.items():
        if option == "needs":
            for need in value:
                need_origins.setdefault(need, origin)
        elif option != "targets":  # no plan depends on them: `loopcompat check` reads them itself
            settings[option] = Setting(value, origin)


def _file_layers(path: str, header: str, system: str, in_pyproject: bool, cache: StartupCache) -> List[Dict[str, Tuple[Any, str]]]:
    found = _read_table(path, in_pyproject, cache)
    if found is None:
        return []
    table, lines = found
    layers = [validate_table(table, path, header, lines)]
    errors = []
    for name in SYSTEM_TABLES:
        nested = table.get(name)
        if isinstance(nested, dict):
            sub_header = f"{header}.{name}" if header else name
            try:
                validated = validate_table(nested, path, sub_header, lines, allow_systems=False)
            except ConfigError as exc:
                errors.append(str(exc).split("\n", 1)[1])
                continue
            if name == system:
                layers.append(validated)
    if errors:
        raise ConfigError("invalid loopcompat configuration:\n" + "\n".join(errors))
    return layers


def _env_layer(environ: Mapping[str, str]) -> Dict[str, Tuple[Any, str]]:
    layer: Dict[str, Tuple[Any, str]] = {}
    for var, option in ENV_VARS.items():
        raw = environ.get(var)
        if raw is None or not raw.strip():
            continue
        origin = f"environment {var}"
        if option == "needs":
            layer[option] = (list(parse_needs(raw, var)), origin)
        else:
            value = _validate_value(option, raw.strip().lower(), var)
            layer[option] = (value, origin)
    return layer


def effective(
    arguments: Mapping[str, Any],
    needs: Iterable[str] = (),
    *,
    system: str,
    start_dir: Optional[str] = None,
    read_config: bool = True,
    environ: Mapping[str, str] = os.environ,
    cache: Optional[StartupCache] = None,
) -> Tuple[Dict[str, Setting], Dict[str, str]]:
    """Effective options with their origins, and each need with the layer that declared it first.

    ``cache``: the caller's start-up cache (it saves it); by default one is read and saved here.

    :raises ConfigError: for any invalid file, variable or argument.
    """
    settings = {option: Setting(value, "default") for option, value in DEFAULTS.items()}
    need_origins: Dict[str, str] = {}
    if read_config and not is_disabled(environ):
        own_cache = cache is None
        if cache is None:
            cache = StartupCache()
        try:
            user_file = user_config_file(cache)
            if os.path.isfile(user_file):
                for layer in _file_layers(user_file, "", system, False, cache):
                    _apply(layer, settings, need_origins)
            explicit = environ.get(CONFIG_VAR, "").strip()
            if explicit:
                if not os.path.isfile(explicit):
                    raise ConfigError(f"{CONFIG_VAR}={explicit!r}: no such file")
                in_pyproject = os.path.basename(explicit) == "pyproject.toml"
                header = "tool.loopcompat" if in_pyproject else ""
                for layer in _file_layers(explicit, header, system, in_pyproject, cache):
                    _apply(layer, settings, need_origins)
            else:
                pyproject = find_pyproject(start_dir or os.getcwd())
                if pyproject:
                    for layer in _file_layers(pyproject, "tool.loopcompat", system, True, cache):
                        _apply(layer, settings, need_origins)
        finally:
            if own_cache:
                cache.save()
        _apply(_env_layer(environ), settings, need_origins)
    for need in parse_needs(list(needs), "needs"):
        need_origins.setdefault(need, "argument")
    for option, value in arguments.items():
        settings[option] = Setting(value, "argument")
    return settings, need_origins
