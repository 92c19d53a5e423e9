"""`loopcompat explain` and `loopcompat config`: a plan, or the settings behind it, and where each came from."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence

from . import _knowledge as kb
from ._errors import ConfigError
from ._plan import Plan
from ._platform import Platform, detect
from ._project import (
    Configuration,
    config_file,
    configuration,
    human_value,
    plan_configured,
    platform_for,
    short_origin,
    system_table_problems,
)

EXIT_OK, EXIT_UNMET, EXIT_USAGE = 0, 1, 2

# A deprecation note is worth a person's attention when their application can be using the
# deprecated API. Child watchers (S11 on Windows, S16 from Python 3.12) exist only to reap child
# processes, so those notes go to applications that declare `subprocess`; the others (event loop
# policies, S15) concern every asyncio application on the Pythons they name. `--json` keeps all.
_DEPRECATION_CONCERNS = {"S11": "subprocess", "S16": "subprocess"}


def relevant_warnings(plan: Plan) -> List[str]:
    """The plan's warnings, less deprecation notes about APIs its needs do not involve."""
    hidden = [
        f"({rule.fact})"
        for rule in kb.rules_on(plan.platform, kb.DEPRECATED)
        if rule.fact in _DEPRECATION_CONCERNS and _DEPRECATION_CONCERNS[rule.fact] not in plan.needs
    ]
    return [w for w in plan.warnings if not any(mark in w for mark in hidden)]


def human_explain(plan: Plan) -> str:
    """Plan.explain(), with only the warnings that concern this application."""
    keep = set(relevant_warnings(plan))
    lines = plan.explain().splitlines()
    return "\n".join(
        line for line in lines if not line.startswith("Warning:") or line[len("Warning:"):].strip() in keep
    )


def source_lines(config: Configuration, indent: str = "  ") -> List[str]:
    """Each configured need and option with its value and origin (defaults left out)."""
    rows = []
    by_origin: Dict[str, List[str]] = {}
    for need, origin in config.needs.items():
        by_origin.setdefault(origin, []).append(need)
    for origin, needs in by_origin.items():
        rows.append(("needs", ", ".join(needs), short_origin(origin)))
    for name, setting in config.configured_options().items():
        rows.append((name, human_value(name, setting.value), short_origin(setting.origin)))
    width = max((len(value) for _, value, _ in rows), default=0)
    return [f"{indent}{name:<15} {value:<{width}}  {origin}" for name, value, origin in rows]


def configuration_header(system: str, read: bool, start_dir: Optional[str] = None) -> str:
    """One line saying which configuration a plan used."""
    from ._startup import is_disabled, user_config_file

    if not read:
        return "Configuration: not read (--no-config): the plan of the arguments alone"
    if is_disabled():
        return "Configuration: ignored (LOOPCOMPAT_DISABLE is set)"
    files = [path for path in (user_config_file(), config_file(start_dir or os.getcwd())) if path and
             os.path.isfile(path)]
    where = ", ".join(short_origin(path) for path in files) or "no configuration file found"
    return f"Configuration for {system} ({where}):"


def explain(platform: Platform, arguments: Mapping[str, Any], needs: Sequence[str], *, read_config: bool,
            as_json: bool) -> int:
    """Print the plan for ``platform`` with the project's configuration (unless ``read_config`` is false)."""
    from ._startup import installed_optional_loops

    config = configuration(platform.system, arguments=arguments, needs=needs, read_config=read_config)
    installed = installed_optional_loops(config.options) if platform == detect() else None
    plan = plan_configured(platform, config, installed)
    if as_json:
        data = plan.to_dict()
        data["sources"] = {
            "needs": dict(config.needs),
            "options": {name: {"value": s.value, "from": s.origin} for name, s in config.configured_options().items()},
        }
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(configuration_header(platform.system, read_config))
        if read_config:
            print("\n".join(source_lines(config) or ["  (nothing configured)"]))
        print()
        print(human_explain(plan))
    return EXIT_UNMET if plan.unmet else EXIT_OK


def show_config(system: Optional[str], release: Optional[str], python: Optional[str], as_json: bool) -> int:
    """`loopcompat config`: every effective setting with its origin, for this or another platform."""
    from ._startup import CONFIG_VAR, find_pyproject, is_disabled, user_config_file

    platform = platform_for(system, release, python)
    config = configuration(platform.system)
    problems = system_table_problems(None, platform.python)
    try:
        plan: Optional[Plan] = plan_configured(platform, config)
    except ConfigError as exc:
        plan, problems = None, [str(exc)] + problems
    explicit = os.environ.get(CONFIG_VAR, "").strip()
    data: Dict[str, Any] = {
        "platform": platform.to_dict(),
        "needs": [{"need": need, "from": origin} for need, origin in config.needs.items()],
        "options": {name: {"value": s.value, "from": s.origin} for name, s in config.settings.items()
                    if name != "needs"},
        "files": {"user_config": user_config_file(), "pyproject": find_pyproject(os.getcwd()),
                  "config": explicit or find_pyproject(os.getcwd()), "config_from": CONFIG_VAR if explicit else None},
        "disabled": is_disabled(),
        "loop": plan.describe_loop() if plan else None,
        "problems": problems,
    }
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        _print_config(platform, data, config)
    if problems:
        import sys

        listed = "\n  ".join(problems)
        print(f"loopcompat config: error: invalid loopcompat configuration:\n  {listed}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _print_config(platform: Platform, data: Dict[str, Any], config: Configuration) -> None:
    files = data["files"]
    print(f"Platform:          {platform}")
    if data["disabled"]:
        print("LOOPCOMPAT_DISABLE is set: configuration files and variables are ignored; install() does nothing")
    user = files["user_config"]
    print(f"User config file:  {user}{'' if os.path.isfile(user) else ' (none)'}")
    if files["config_from"]:
        print(f"Project config:    {files['config']} (from {files['config_from']}; pyproject.toml files are not read)")
    else:
        print(f"Project config:    {files['config'] or '(no pyproject.toml from the current directory up)'}")
    print("Needs:")
    for need, origin in config.needs.items():
        print(f"  {need:<15} {short_origin(origin)}")
    if not config.needs:
        print("  (none declared)")
    print("Options:")
    for name, setting in config.settings.items():
        if name != "needs":
            print(f"  {name:<15} {human_value(name, setting.value):<24} {short_origin(setting.origin)}")
    if data["loop"]:
        print(f"Loop on {platform}: {data['loop']}")
