"""Command line: ``loopcompat VERB ...`` and ``python -m loopcompat VERB ...``.

Exit codes: 0 success; 1 the plan leaves a declared need unmet; 2 bad
arguments or configuration (with a message saying which). ``run`` exits with
the application's own status, as python would.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List, Optional, Sequence

from . import _knowledge as kb
from ._errors import LoopCompatError
from ._planner import make_plan
from ._platform import Platform, detect
from ._vocab import FALLBACKS, LOOPS, NEEDS, SELECTORS

# A typical release for a system other than this machine's, when --release is not given.
_TYPICAL_RELEASE = {"windows": "10", "macos": "14", "linux": "6.1"}

EXIT_OK, EXIT_UNMET, EXIT_USAGE = 0, 1, 2


def _platform_from(args: argparse.Namespace) -> Platform:
    here = detect()
    if args.system is None and args.release is None and args.python is None:
        return here
    system = args.system or here.system
    probe = Platform(system, "0", here.python)  # normalizes the system name
    release = args.release or (here.release if probe.system == here.system else _TYPICAL_RELEASE.get(probe.system, "0"))
    return Platform(system, release, args.python or here.python, args.implementation or here.implementation)


def _options_from(args: argparse.Namespace) -> Dict[str, Any]:
    options: Dict[str, Any] = {}
    for name in ("loop", "selector", "max_sockets", "on_unsupported"):
        value = getattr(args, name, None)
        if value is not None:
            options[name] = value
    if getattr(args, "prefer", None):
        options["prefer"] = args.prefer
    if getattr(args, "fallbacks", None) is not None:
        options["fallbacks"] = args.fallbacks
    return options


def cmd_explain(args: argparse.Namespace) -> int:
    plan = make_plan(args.needs, _platform_from(args), _options_from(args), raise_unmet=False)
    if args.json:
        print(json.dumps(plan.to_dict(), indent=2, sort_keys=True))
    else:
        print(plan.explain())
    return EXIT_UNMET if plan.unmet else EXIT_OK


def matrix_rows() -> List[Dict[str, Any]]:
    rows = []
    for rule in kb.RULES:
        rows.append(
            {
                "fact": rule.fact,
                "summary": rule.summary,
                "effect": rule.effect,
                "systems": list(rule.systems) or ["all"],
                "except_systems": list(rule.except_systems),
                "python": rule.python or "any",
                "release": rule.release or "any",
                "loops": list(rule.loops) or ["any"],
                "selectors": list(rule.selectors) or ["any"],
                "features": list(rule.features),
                "methods": list(rule.methods),
                "fallback": rule.fallback,
                "limit": rule.limit,
                "value": rule.value,
                "reason": rule.reason,
                "remedy": rule.remedy,
                "source": rule.source,
            }
        )
    return rows


def matrix_markdown() -> str:
    """The knowledge base as a Markdown table (docs/matrix.md is this output)."""
    lines = [
        "# Capability matrix",
        "",
        "Generated from the knowledge base (`loopcompat/_knowledge.py`) by",
        "`python -m loopcompat matrix > docs/matrix.md`; a test fails when this copy is stale.",
        "Facts S1-S16 are those of the product specification; X facts are further facts",
        "that plans and guards rely on.",
        "",
        "| fact | platform | Python | loop / selector | what | fallback | remedy | source |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in matrix_rows():
        systems = ", ".join(row["systems"])
        if row["except_systems"]:
            systems += " except " + ", ".join(row["except_systems"])
        if row["release"] != "any":
            systems += f" {row['release']}"
        where = ", ".join(row["loops"])
        if row["selectors"] != ["any"]:
            where += " / " + ", ".join(row["selectors"])
        cells = [row["fact"], systems, row["python"], where, row["summary"], row["fallback"] or "",
                 row["remedy"], row["source"]]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def cmd_matrix(args: argparse.Namespace) -> int:
    if args.format == "json":
        print(json.dumps(matrix_rows(), indent=2))
    else:
        sys.stdout.write(matrix_markdown())
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from ._wrap import run_application

    if not args.target:
        print("loopcompat run: error: give a script (loopcompat run app.py ...) or a module (-m module ...)",
              file=sys.stderr)
        return EXIT_USAGE
    return run_application(args.target, args.app_args, module=args.is_module, needs=args.needs,
                           options=_options_from(args), config=not args.no_config)


def cmd_doctor(args: argparse.Namespace) -> int:
    from . import _api
    from ._doctor import main_report

    needs = args.needs
    plan = _api.configured_plan(needs, {}, config=not args.no_config, raise_unmet=False)
    config_lines = [f"  needs: {', '.join(plan.needs) or '(none declared)'}"]
    for name in ("loop", "selector", "max_sockets", "fallbacks", "on_unsupported"):
        config_lines.append(f"  {name}: {plan.options.get(name)!r}")
    return main_report(plan, config_lines, args.json)


def cmd_hook(args: argparse.Namespace) -> int:
    from ._hook import hook_status, install_hook, remove_hook

    try:
        if args.action == "install":
            print(f"installed {install_hook(args.site)}: processes started with LOOPCOMPAT_AUTO=1 install loopcompat")
        elif args.action == "remove":
            path = remove_hook(args.site)
            print(f"removed {path}" if path else "no start-up hook was installed")
        else:
            path = hook_status(args.site)
            print(f"installed: {path}" if path else "not installed")
            return EXIT_OK if path else EXIT_UNMET
    except OSError as exc:
        print(f"loopcompat hook: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def cmd_config(args: argparse.Namespace) -> int:
    from ._config import effective
    from ._startup import find_pyproject, is_disabled, user_config_file

    here = detect()
    settings, needs = effective({}, system=here.system)
    data: Dict[str, Any] = {
        "needs": [{"need": need, "from": origin} for need, origin in needs.items()],
        "options": {name: {"value": s.value, "from": s.origin} for name, s in settings.items() if name != "needs"},
        "files": {"user_config": user_config_file(), "pyproject": find_pyproject(os.getcwd())},
        "disabled": is_disabled(),
    }
    if args.json:
        print(json.dumps(data, indent=2))
        return EXIT_OK
    print(f"Platform: {here}")
    if data["disabled"]:
        print("LOOPCOMPAT_DISABLE is set: configuration files and variables are ignored; install() does nothing")
    print(f"User config file: {data['files']['user_config']}"
          f"{'' if os.path.isfile(data['files']['user_config']) else ' (none)'}")
    print(f"pyproject.toml:   {data['files']['pyproject'] or '(none found from the current directory up)'}")
    print("Needs:")
    for item in data["needs"] or [{"need": "(none)", "from": ""}]:
        print(f"  {item['need']:<15} {item['from']}")
    print("Options:")
    for name, item in data["options"].items():
        print(f"  {name:<15} {item['value']!r:<24} {item['from']}")
    return EXIT_OK


def _names(allowed: Sequence[str]) -> Any:
    def parse(text: str) -> List[str]:
        return [part.strip() for part in text.split(",") if part.strip()]

    parse.__name__ = "list of " + "/".join(allowed[:3]) + ("..." if len(allowed) > 3 else "")
    return parse


def _fallbacks_arg(text: str) -> Any:
    lowered = text.strip().lower()
    if lowered in ("true", "all", "yes", "1"):
        return True
    if lowered in ("false", "none", "no", "0"):
        return False
    return [part.strip() for part in text.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loopcompat",
        description="Plan, build and explain asyncio event loops that behave the same on every platform.",
        epilog="Exit codes: 0 ok; 1 a declared need is unmet; 2 bad arguments or configuration.",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")

    explain = verbs.add_parser("explain", help="show the plan for a platform and needs (any platform)",
                               description="Show which loop, selector and fallbacks loopcompat plans, and why.")
    explain.add_argument("--system", help="windows, macos, linux, freebsd ... (default: this machine)")
    explain.add_argument("--release", help="OS release, e.g. 10 or 11 (Windows), 10.8 or 14 (macOS)")
    explain.add_argument("--python", help="Python version, e.g. 3.7 or 3.13")
    explain.add_argument("--implementation", help="cpython (default) or pypy")
    explain.add_argument("--needs", type=_names(NEEDS), default=[],
                         help=f"comma-separated needs: {', '.join(NEEDS)}")
    explain.add_argument("--loop", help=f"force a loop: {', '.join(LOOPS)}")
    explain.add_argument("--selector", help=f"force a selector: {', '.join(SELECTORS)}")
    explain.add_argument("--max-sockets", dest="max_sockets", type=int, help="sockets the app may hold open at once")
    explain.add_argument("--prefer", type=_names(LOOPS), default=[], help="loops to prefer, in order")
    explain.add_argument("--fallbacks", type=_fallbacks_arg,
                         help=f"true, false, or a comma-separated list: {', '.join(FALLBACKS)}")
    explain.add_argument("--json", action="store_true", help="print Plan.to_dict() as JSON")
    explain.set_defaults(handler=cmd_explain)

    doctor = verbs.add_parser(
        "doctor", help="this machine: facts, configuration, plan, and a live probe of every feature",
        description="Build the planned loop and exercise every feature on it for real.",
    )
    doctor.add_argument("--needs", type=_names(NEEDS), default=[], help="needs to add to the configured ones")
    doctor.add_argument("--no-config", action="store_true", help="ignore configuration files and variables")
    doctor.add_argument("--json", action="store_true")
    doctor.set_defaults(handler=cmd_doctor)

    run = verbs.add_parser(
        "run", help="run a script or module under loopcompat, unchanged (also: python -m loopcompat app.py)",
        description="Install loopcompat (needs from here and from the configuration found from the script's "
        "directory), then run the script or module as __main__, exactly as python would.",
    )
    run.add_argument("--needs", type=_names(NEEDS), default=[], help=f"comma-separated needs: {', '.join(NEEDS)}")
    run.add_argument("--loop", help=f"force a loop: {', '.join(LOOPS)}")
    run.add_argument("--selector", help=f"force a selector: {', '.join(SELECTORS)}")
    run.add_argument("--max-sockets", dest="max_sockets", type=int, help="sockets the app may hold open at once")
    run.add_argument("--on-unsupported", dest="on_unsupported", choices=("error", "warn"))
    run.add_argument("--no-config", action="store_true", help="ignore configuration files and LOOPCOMPAT_* variables")
    run.add_argument("-m", dest="module", metavar="MODULE", help="run a library module as a script, like python -m")
    run.add_argument("script", nargs="?", help="the script to run; its arguments follow it")
    run.set_defaults(handler=cmd_run)

    hook = verbs.add_parser(
        "hook", help="install/remove the opt-in start-up hook (a .pth file acting when LOOPCOMPAT_AUTO=1)",
        description="For applications whose command line cannot change: with the hook installed, any Python "
        "process started with LOOPCOMPAT_AUTO=1 installs loopcompat before the application runs.",
    )
    hook.add_argument("action", choices=("install", "remove", "status"))
    hook.add_argument("--site", help="the site-packages folder (default: this interpreter's)")
    hook.set_defaults(handler=cmd_hook)

    config = verbs.add_parser("config", help="show the effective configuration and where each value came from")
    config.add_argument("--json", action="store_true")
    config.set_defaults(handler=cmd_config)

    matrix = verbs.add_parser("matrix", help="print the knowledge base (every platform fact) as a table")
    matrix.add_argument("--format", choices=("md", "json"), default="md")
    matrix.set_defaults(handler=cmd_matrix)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    from ._wrap import split_run_arguments

    argv = list(sys.argv[1:] if argv is None else argv)
    argv = split_run_arguments(argv) or argv
    parser = build_parser()
    if argv and argv[0] == "run":
        from ._wrap import split_target

        own, target, is_module, app_args = split_target(argv[1:])
        args = parser.parse_args(["run", *own])
        args.target, args.is_module, args.app_args = target, is_module, app_args
    else:
        args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.handler(args))
    except LoopCompatError as exc:
        print(f"loopcompat {args.verb}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `loopcompat matrix | head`: the reader left, not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
