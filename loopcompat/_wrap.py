"""Running an unchanged application under loopcompat (`loopcompat run`, `python -m loopcompat app.py`).

The application runs as ``__main__`` exactly as under ``python app.py`` or
``python -m module`` (sys.argv, sys.path[0], exit codes, tracebacks,
KeyboardInterrupt). Before it starts, loopcompat is installed with the needs
from the command line and the configuration found from the script's
directory. An application that then sets its own event loop policy still gets
loopcompat's fallbacks and clear errors: the loops its policy builds are
adopted. What cannot be covered: loops the app constructs by class
(``asyncio.SelectorEventLoop()``) or through its own loop_factory; those need
``loopcompat.adopt(loop)`` in the app.
"""

from __future__ import annotations

import asyncio
import os
import runpy
import sys
import traceback
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import _api


def _adopting(policy: Any) -> Any:
    """Make ``policy.new_event_loop()`` return adopted loops (idempotent)."""
    original = policy.new_event_loop
    if getattr(original, "_loopcompat_adopting", False):
        return policy

    def new_event_loop() -> asyncio.AbstractEventLoop:
        return _api.adopt(original())

    new_event_loop._loopcompat_adopting = True  # type: ignore[attr-defined]
    policy.new_event_loop = new_event_loop
    return policy


class _PolicyWatch:
    """Wraps asyncio.set_event_loop_policy so policies the app installs build adopted loops."""

    def __init__(self) -> None:
        self._saved: Optional[Callable[..., None]] = None

    def start(self) -> None:
        original = asyncio.events.set_event_loop_policy
        self._saved = original

        def set_event_loop_policy(policy: Any) -> None:
            original(_adopting(policy) if policy is not None else policy)

        asyncio.events.set_event_loop_policy = set_event_loop_policy
        asyncio.set_event_loop_policy = set_event_loop_policy

    def stop(self) -> None:
        if self._saved is not None:
            asyncio.events.set_event_loop_policy = asyncio.set_event_loop_policy = self._saved
            self._saved = None


def run_application(
    target: str,
    args: Sequence[str],
    *,
    module: bool,
    needs: Sequence[str] = (),
    options: Optional[Dict[str, Any]] = None,
    config: bool = True,
) -> int:
    """Run ``target`` (a script path, or a module name when ``module``) as __main__; return its exit code."""
    if module:
        start_dir = os.getcwd()
        sys.argv = [target, *args]  # runpy replaces argv[0] with the module's file
        sys.path.insert(0, os.getcwd())
    else:
        if not os.path.exists(target):
            print(f"loopcompat run: can't open file {target!r}: no such file", file=sys.stderr)
            return 2
        start_dir = os.path.dirname(os.path.abspath(target))
        sys.argv = [target, *args]
        sys.path.insert(0, start_dir if os.path.isfile(target) else os.path.abspath(target))

    plan = _api.configured_plan(needs, dict(options or {}), config=config, start_dir=start_dir)
    _api.install_plan(plan)
    watch = _PolicyWatch()
    watch.start()
    try:
        if module:
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(target, run_name="__main__")
    except SystemExit as exc:
        return _exit_code(exc.code)
    except KeyboardInterrupt:
        raise  # Python's own handling: traceback, then exit by SIGINT as plain python would
    except BaseException as exc:  # noqa: B902 - report like the interpreter, minus our frames
        _print_app_traceback(exc)
        return 1
    finally:
        watch.stop()
    return 0


def _exit_code(code: Any) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _print_app_traceback(exc: BaseException) -> None:
    tb = exc.__traceback__
    package = os.path.dirname(__file__)

    def ours(filename: str) -> bool:
        # runpy's frames read "<frozen runpy>" (3.11+), a full path, or "runpy.py" (Windows embeddable zip)
        return filename.startswith(package) or os.path.basename(filename) in ("runpy.py", "<frozen runpy>")

    # Skip loopcompat's and runpy's frames at the top: the app's frames are what the user wrote.
    while tb is not None and ours(tb.tb_frame.f_code.co_filename):
        if tb.tb_next is None:
            break
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb)


_RUN_VALUE_OPTIONS = ("--needs", "--loop", "--selector", "--max-sockets", "--on-unsupported")


def split_target(run_args: List[str]) -> Tuple[List[str], Optional[str], bool, List[str]]:
    """Split ``run``'s arguments: (loopcompat options, target, is_module, the app's arguments).

    Everything after the script or ``-m module`` belongs to the application,
    even ``--help`` (argparse alone would take it).
    """
    index = 0
    while index < len(run_args):
        arg = run_args[index]
        if arg == "-m":
            target = run_args[index + 1] if index + 1 < len(run_args) else None
            return run_args[:index], target, True, run_args[index + 2:]
        if arg == "--":
            rest = run_args[index + 1:]
            return run_args[:index], (rest[0] if rest else None), False, rest[1:]
        if not arg.startswith("-"):
            return run_args[:index], arg, False, run_args[index + 1:]
        if arg in _RUN_VALUE_OPTIONS:
            index += 1
        index += 1
    return run_args, None, False, []


def split_run_arguments(argv: List[str]) -> Optional[List[str]]:
    """``python -m loopcompat app.py ...`` / ``-m mod ...`` -> the same as ``run app.py ...``; else None."""
    if not argv:
        return None
    first = argv[0]
    if first == "-m" or (not first.startswith("-") and (first.endswith((".py", ".pyw")) or os.path.sep in first)):
        return ["run", *argv]
    return None
