"""Command line: ``loopcompat VERB ...`` and ``python -m loopcompat VERB ...``: the parser and dispatch.

Each verb's work lives in its own module (_explain, _check, _scan, _record,
_doctor, _matrix, _hook); this one turns arguments into calls.

Exit codes: 0 success; 1 a declared need is unmet (explain, doctor, check) or
inferred but not declared (scan); 2 bad arguments or configuration (with a
message saying which). ``run`` exits with the application's own status, as
python would.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Dict, List, Optional, Sequence

from ._errors import LoopCompatError
from ._vocab import FALLBACKS, LOOPS, NEEDS, SELECTORS

EXIT_OK, EXIT_UNMET, EXIT_USAGE = 0, 1, 2


def version() -> str:
    """The installed distribution's version when this is the package it installed, else __version__."""
    from . import __version__

    try:
        from importlib import metadata

        dist = metadata.distribution("loopcompat")
        located = os.path.realpath(str(dist.locate_file(os.path.join("loopcompat", "__init__.py"))))
    except Exception:  # not installed (a source checkout), or metadata this Python cannot read
        return __version__
    here = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "__init__.py"))
    return str(dist.version) if located == here else __version__


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
    from ._explain import explain
    from ._project import platform_for

    platform = platform_for(args.system, args.release, args.python, args.implementation)
    return explain(platform, _options_from(args), args.needs, read_config=not args.no_config, as_json=args.json)


def cmd_config(args: argparse.Namespace) -> int:
    from ._explain import show_config

    return show_config(args.system, args.release, args.python, args.json)


def cmd_matrix(args: argparse.Namespace) -> int:
    import json

    from ._matrix import matrix_markdown, matrix_rows

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
    if args.write and not args.record:
        print("loopcompat run: error: --write goes with --record", file=sys.stderr)
        return EXIT_USAGE

    def run() -> int:
        return run_application(args.target, args.app_args, module=args.is_module, needs=args.needs,
                               options=_options_from(args), config=not args.no_config)

    if not args.record:
        return run()
    from ._record import record_run

    start_dir = os.getcwd() if args.is_module else os.path.dirname(os.path.abspath(args.target))
    return record_run(run, start_dir=start_dir, write=args.write)


def cmd_doctor(args: argparse.Namespace) -> int:
    from ._doctor import doctor

    return doctor(args.needs, read_config=not args.no_config, as_json=args.json)


def cmd_check(args: argparse.Namespace) -> int:
    from ._check import check

    output = "json" if args.json else args.format
    if output is None:
        output = "github" if os.environ.get("GITHUB_ACTIONS", "").lower() == "true" else "text"
    return check(args.project, args.target, old_releases=args.old_releases, output=output)


def cmd_scan(args: argparse.Namespace) -> int:
    from ._scan import scan_command

    return scan_command(args.paths or ["."], write=args.write, as_json=args.json, tests=args.tests)


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


def _platform_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--system", help="windows, macos, linux, freebsd ... (default: this machine)")
    parser.add_argument("--release", help="OS release, e.g. 10 or 11 (Windows), 10.8 or 14 (macOS)")
    parser.add_argument("--python", help="Python version, e.g. 3.7 or 3.13")


def _option_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--needs", type=_names(NEEDS), default=[], help=f"comma-separated needs: {', '.join(NEEDS)}")
    parser.add_argument("--loop", help=f"force a loop: {', '.join(LOOPS)}")
    parser.add_argument("--selector", help=f"force a selector: {', '.join(SELECTORS)}")
    parser.add_argument("--max-sockets", dest="max_sockets", type=int, help="sockets the app may hold open at once")


def _add_plan_verbs(verbs: Any) -> None:
    explain = verbs.add_parser(
        "explain", help="show the plan for any platform, with this project's configuration",
        description="Show which loop, selector and fallbacks loopcompat plans for a platform, and why. The "
        "project's configuration applies (with the per-system table of the system asked about) unless --no-config.")
    _platform_arguments(explain)
    explain.add_argument("--implementation", help="cpython (default) or pypy")
    _option_arguments(explain)
    explain.add_argument("--prefer", type=_names(LOOPS), default=[], help="loops to prefer, in order")
    explain.add_argument("--fallbacks", type=_fallbacks_arg,
                         help=f"true, false, or a comma-separated list: {', '.join(FALLBACKS)}")
    explain.add_argument("--no-config", action="store_true", help="the plan of the arguments alone")
    explain.add_argument("--json", action="store_true", help="print Plan.to_dict() (and the sources) as JSON")
    explain.set_defaults(handler=cmd_explain)

    check = verbs.add_parser(
        "check", help="the project's needs on every platform it claims: a matrix, and an exit code for CI",
        description="Plan the project's configuration for each target (requires-python and the Operating "
        "System classifiers of [project], the 'targets' key of [tool.loopcompat], or --target) and print "
        "targets x needs. Exit 0 when every declared need is met everywhere, 1 when one is not, 2 for bad input.")
    check.add_argument("project", nargs="?", default=".", help="the project folder or its pyproject.toml")
    check.add_argument("--target", action="append", default=[], metavar="SYSTEM[:RELEASE[:PYTHON]]",
                       help="a platform to check, e.g. windows:10:3.9 (repeatable; replaces the project's targets)")
    check.add_argument("--old-releases", action="store_true",
                       help="also the old OS releases the knowledge base has facts about (e.g. macOS 10.5, 10.8)")
    check.add_argument("--format", choices=("text", "json", "github", "markdown"),
                       help="text, json, markdown, or github: annotations on the pyproject.toml lines, and the "
                       "matrix in the job summary (the default when GITHUB_ACTIONS=true)")
    check.add_argument("--json", action="store_true", help="same as --format json")
    check.set_defaults(handler=cmd_check)

    scan = verbs.add_parser(
        "scan", help="infer needs from the source (no code runs), with file:line evidence",
        description="Read Python files with ast and report the needs their loop calls and libraries imply, "
        "with the [tool.loopcompat] snippet. Exit 1 when a need is found that the project does not declare.")
    scan.add_argument("paths", nargs="*", metavar="PATH", help="files or folders (default: the current folder)")
    scan.add_argument("--write", action="store_true", help="add the missing needs to pyproject.toml")
    scan.add_argument("--tests", action="store_true", help="also scan test folders (tests/, test/), skipped by default")
    scan.add_argument("--json", action="store_true")
    scan.set_defaults(handler=cmd_scan)

    config = verbs.add_parser(
        "config", help="show the effective configuration and where each value came from",
        description="The effective settings for this machine or another platform, each with its origin; "
        "every per-system table is checked against its own system.")
    _platform_arguments(config)
    config.add_argument("--json", action="store_true")
    config.set_defaults(handler=cmd_config)


def _add_machine_verbs(verbs: Any) -> None:
    doctor = verbs.add_parser(
        "doctor", help="this machine: facts, configuration, plan, and a live probe of every feature",
        description="Build the planned loop and exercise every feature on it for real.")
    doctor.add_argument("--needs", type=_names(NEEDS), default=[], help="needs to add to the configured ones")
    doctor.add_argument("--no-config", action="store_true", help="ignore configuration files and variables")
    doctor.add_argument("--json", action="store_true")
    doctor.set_defaults(handler=cmd_doctor)

    run = verbs.add_parser(
        "run", help="run a script or module under loopcompat, unchanged (also: python -m loopcompat app.py)",
        description="Install loopcompat (needs from here and from the configuration found from the script's "
        "directory), then run the script or module as __main__, exactly as python would.")
    _option_arguments(run)
    run.add_argument("--on-unsupported", dest="on_unsupported", choices=("error", "warn"))
    run.add_argument("--no-config", action="store_true", help="ignore configuration files and LOOPCOMPAT_* variables")
    run.add_argument("--record", action="store_true",
                     help="observe which loop features the app uses and report them as needs (on stderr)")
    run.add_argument("--write", action="store_true", help="with --record: add the observed needs to pyproject.toml")
    run.add_argument("-m", dest="module", metavar="MODULE", help="run a library module as a script, like python -m")
    run.add_argument("script", nargs="?", help="the script to run; its arguments follow it")
    run.set_defaults(handler=cmd_run)

    hook = verbs.add_parser(
        "hook", help="install/remove the opt-in start-up hook (a .pth file acting when LOOPCOMPAT_AUTO=1)",
        description="For applications whose command line cannot change: with the hook installed, any Python "
        "process started with LOOPCOMPAT_AUTO=1 installs loopcompat before the application runs.")
    hook.add_argument("action", choices=("install", "remove", "status"))
    hook.add_argument("--site", help="the site-packages folder (default: this interpreter's)")
    hook.set_defaults(handler=cmd_hook)

    matrix = verbs.add_parser("matrix", help="print the knowledge base (every platform fact) as a table")
    matrix.add_argument("--format", choices=("md", "json"), default="md")
    matrix.set_defaults(handler=cmd_matrix)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loopcompat",
        description="Plan, build and explain asyncio event loops that behave the same on every platform.",
        epilog="Exit codes: 0 ok; 1 a declared need is unmet; 2 bad arguments or configuration.",
    )
    parser.add_argument("--version", action=_VersionAction, help="print loopcompat's version and exit")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    _add_plan_verbs(verbs)
    _add_machine_verbs(verbs)
    parser.set_defaults(verb_parsers=verbs.choices)
    return parser


class _VersionAction(argparse.Action):
    """--version, reading the version only when asked (package metadata costs milliseconds to find)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: Optional[str] = None) -> None:
        print(f"loopcompat {version()}")
        parser.exit()


def parse(argv: List[str]) -> argparse.Namespace:
    """Parse ``argv``; an unknown flag is reported with its own verb's usage, not the top-level one."""
    from ._wrap import split_run_arguments, split_target

    argv = split_run_arguments(argv) or argv
    parser = build_parser()
    if argv and argv[0] == "run":
        own, target, is_module, app_args = split_target(argv[1:])
        args, extra = parser.parse_known_args(["run", *own])
        args.target, args.is_module, args.app_args = target, is_module, app_args
    else:
        args, extra = parser.parse_known_args(argv)
    if extra:
        verb_parser = args.verb_parsers.get(getattr(args, "verb", None) or "", parser)
        verb_parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "handler", None) is None:
        parser.print_help()
        raise SystemExit(EXIT_USAGE)
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse(list(sys.argv[1:] if argv is None else argv))
    try:
        return int(args.handler(args))
    except LoopCompatError as exc:
        print(f"loopcompat {args.verb}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `loopcompat matrix | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
