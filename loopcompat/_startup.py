"""The warm start: find what a plan depends on, and reuse the plan computed for it last time.

Start-up cost is the reason for this module. Importing tomllib costs ~3.7 ms
and platformdirs ~8 ms after asyncio (CPython 3.11, measured here), and the
planner with its knowledge base and the config validator ~1 ms more, against
a 2 ms budget for all of loopcompat. So one marshal file keeps, between
processes: the parsed config tables (keyed by each file's mtime and size), the
user-config path (keyed by the environment platformdirs reads), and each
computed plan, keyed by every input it came from -- the platform, the needs
and options passed in, the config files' stamps, the LOOPCOMPAT_* variables
and the stamps of loopcompat's own planning modules. On a warm start no TOML
is parsed, platformdirs is not imported, and neither the planner nor the
config validator is. Any cache problem falls back to computing afresh.
"""

from __future__ import annotations

import marshal
import os
import sys
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

from ._plan import Plan, plan_from_record, plan_to_record
from ._platform import Platform

ENV_VARS: Dict[str, str] = {
    "LOOPCOMPAT_NEEDS": "needs",
    "LOOPCOMPAT_LOOP": "loop",
    "LOOPCOMPAT_SELECTOR": "selector",
    "LOOPCOMPAT_ON_UNSUPPORTED": "on_unsupported",
}
DISABLE_VAR = "LOOPCOMPAT_DISABLE"
USER_CONFIG_VAR = "LOOPCOMPAT_USER_CONFIG"  # a user config file instead of platformdirs' location
CONFIG_VAR = "LOOPCOMPAT_CONFIG"
CACHE_VERSION = 2
MAX_CACHED_PLANS = 32  # distinct (platform, needs, options) a machine plans for; more means churn


def is_disabled(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get(DISABLE_VAR, "").strip().lower() in ("1", "true", "yes", "on")


def _cache_path() -> Optional[str]:
    """Where the start-up cache lives. Any writable place will do; it only saves work."""
    base = os.environ.get("LOOPCOMPAT_CACHE_DIR")
    if not base:
        if sys.platform == "win32":
            root = os.environ.get("LOCALAPPDATA")
            base = os.path.join(root, "loopcompat", "Cache") if root else None
        elif sys.platform == "darwin":
            base = os.path.expanduser("~/Library/Caches/loopcompat")
        else:
            base = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "loopcompat")
    if not base:
        return None
    return os.path.join(base, f"startup-cache-{sys.implementation.cache_tag}.marshal")


class StartupCache:
    """Parsed config tables, the user-config path and computed plans, kept between processes."""

    def __init__(self) -> None:
        self.path = _cache_path()
        self.data: Dict[str, Any] = {"v": CACHE_VERSION, "files": {}, "user_config": {}, "plans": {}}
        self.dirty = False
        if self.path:
            try:
                with open(self.path, "rb") as f:
                    data = marshal.load(f)
                if (
                    isinstance(data, dict)
                    and data.get("v") == CACHE_VERSION
                    and all(isinstance(data.get(part), dict) for part in ("files", "user_config", "plans"))
                ):
                    self.data = data
            except (OSError, EOFError, ValueError, TypeError):
                pass

    def save(self) -> None:
        if not (self.dirty and self.path):
            return
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            tmp = f"{self.path}.{os.getpid()}.tmp"
            with open(tmp, "wb") as f:
                marshal.dump(self.data, f)
            os.replace(tmp, self.path)
        except (OSError, ValueError):
            pass  # a read-only home still works, only slower


_USER_CONFIG_ENV = ("XDG_CONFIG_HOME", "HOME", "APPDATA", "LOCALAPPDATA", "USERPROFILE")


def user_config_file(cache: Optional[StartupCache] = None) -> str:
    """platformdirs.user_config_path("loopcompat") / "config.toml" (cached by the env it depends on).

    LOOPCOMPAT_USER_CONFIG names another file (containers, CI, tests: on
    Windows platformdirs asks the shell API, so no environment variable moves it).
    """
    override = os.environ.get(USER_CONFIG_VAR, "").strip()
    if override:
        return override
    key = "|".join([sys.platform] + [os.environ.get(name, "") for name in _USER_CONFIG_ENV])
    if cache is not None:
        path = cache.data["user_config"].get(key)
        if isinstance(path, str):
            return path
    import platformdirs

    path = os.path.join(str(platformdirs.user_config_path("loopcompat")), "config.toml")
    if cache is not None:
        cache.data["user_config"] = {key: path}
        cache.dirty = True
    return path


def find_pyproject(start: str) -> Optional[str]:
    """The nearest pyproject.toml at or above ``start``."""
    directory = os.path.abspath(start)
    while True:
        candidate = os.path.join(directory, "pyproject.toml")
        if os.path.isfile(candidate):
            return candidate
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


# The modules whose code decides a plan: an edited or upgraded loopcompat never reuses an old one.
_PLANNING_SOURCES = (
    "_planner.py",
    "_knowledge.py",
    "_vocab.py",
    "_plan.py",
    "_config.py",
    "_startup.py",
    os.path.join("_fallbacks", "__init__.py"),
)


def _stamp(path: Optional[str]) -> Tuple[Any, ...]:
    if not path:
        return ()
    path = os.path.abspath(path)  # a relative LOOPCOMPAT_CONFIG names another file in another directory
    try:
        info = os.stat(path)
    except OSError:
        return (path,)
    return (path, info.st_mtime_ns, info.st_size)


def plan_key(
    platform: Platform,
    needs: Iterable[str],
    options: Mapping[str, Any],
    *,
    config: bool,
    start_dir: Optional[str],
    cache: StartupCache,
) -> Optional[str]:
    """Every input of the plan these arguments lead to, as one string; None: do not cache."""
    package = os.path.dirname(os.path.abspath(__file__))
    sources = [_stamp(os.path.join(package, name)) for name in _PLANNING_SOURCES]
    if any(len(stamp) < 3 for stamp in sources):
        return None  # zipped or frozen: nothing to stamp, so nothing is cached
    inputs: Tuple[Any, ...] = ()
    if config:
        explicit = os.environ.get(CONFIG_VAR, "").strip()
        config_file = explicit or find_pyproject(start_dir or os.getcwd())
        inputs = (
            _stamp(user_config_file(cache)),
            _stamp(config_file),
            [os.environ.get(var, "") for var in ENV_VARS],
        )
    try:
        return repr((platform.to_dict(), list(needs), sorted(options.items()), inputs, sources))
    except TypeError:  # options that do not sort (bad input): the planner reports them
        return None


def cached_plan(key: str, cache: StartupCache, platform: Platform) -> Optional[Plan]:
    entry = cache.data["plans"].get(key)
    if not (isinstance(entry, tuple) and len(entry) == 2):
        return None
    record, installed = entry
    found = plan_from_record(record, platform)
    if found is None or installed != installed_optional_loops(found.options):
        return None  # uvloop or winloop was installed or removed since
    return found


def remember_plan(key: str, cache: StartupCache, plan: Plan, installed: frozenset) -> None:
    """Keep ``plan`` under ``key``, with the optional loops found installed when it was made."""
    plans = cache.data["plans"]
    if len(plans) >= MAX_CACHED_PLANS:
        plans.clear()
    plans[key] = (plan_to_record(plan), installed)
    cache.dirty = True


def installed_optional_loops(options: Mapping[str, Any]) -> frozenset:
    """Which of the optional loops the options ask for can be imported here (asks only for those)."""
    asked = list(options.get("prefer") or []) + [options.get("loop")]
    names = [n for n in asked if n in ("uvloop", "winloop")]
    if not names:
        return frozenset()
    import importlib.util

    return frozenset(n for n in names if importlib.util.find_spec(n) is not None)
