"""`loopcompat run --record`: the loop features an application uses in one run, observed rather than inferred.

While the application runs, every asyncio event loop it creates (however: the
installed plan, its own policy, a loop class called directly) gets a recording
layer: each loop method that is a feature (loopcompat._vocab.FEATURE_METHODS)
notes its need and the first frame of the caller outside asyncio and
loopcompat, then does what it always does. Third-party loops that are not
asyncio's (uvloop, winloop) cannot take the layer and are not observed.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from typing import Any, Callable, List, Optional, Set, Tuple

from ._findings import Declared, Evidence, report
from ._vocab import FEATURE_METHODS

METHOD_NEEDS = {method: need for need, methods in FEATURE_METHODS.items() for method in methods}
# asyncio's own modules call some feature methods for their own purposes: a child process's
# pipes are connected with connect_read_pipe/connect_write_pipe (asyncio.base_subprocess), which
# is part of `subprocess`, not a use of `pipes`. The helpers users call on purpose
# (create_subprocess_*, open_unix_connection, start_unix_server) live in these two modules.
# Frames are told apart by module name: file names differ between a checkout and a zipped
# standard library (Windows' embeddable Python), module names do not.
_ASYNCIO_USER_HELPERS = ("asyncio.subprocess", "asyncio.streams")


def _module(frame: Any) -> str:
    return str(frame.f_globals.get("__name__") or "")


def _in_asyncio(frame: Any) -> bool:
    return _module(frame) == "asyncio" or _module(frame).startswith("asyncio.")


def _is_internal(frame: Any) -> bool:
    module = _module(frame)
    if module == "loopcompat" or module.startswith("loopcompat."):
        return True  # a fallback doing its work
    return _in_asyncio(frame) and module not in _ASYNCIO_USER_HELPERS


def _is_char_device(target: Any) -> bool:
    """Whether ``target`` (a descriptor or an object with fileno()) is a terminal-like character device."""
    if sys.platform == "win32":
        return False
    try:
        fd = target if isinstance(target, int) else target.fileno()
        info = os.fstat(fd)
        return stat.S_ISCHR(info.st_mode) and info.st_rdev != os.stat(os.devnull).st_rdev
    except (AttributeError, OSError, ValueError, TypeError):
        return False


class Recorder:
    """Adds the recording layer to each asyncio loop created between start() and stop()."""

    def __init__(self) -> None:
        self.evidence: List[Evidence] = []
        self._seen: Set[Tuple[str, str, int]] = set()
        self._saved: Optional[Callable[..., None]] = None

    def start(self) -> None:
        original = asyncio.BaseEventLoop.__init__
        recorder = self

        def __init__(loop: asyncio.BaseEventLoop, *args: Any, **kwargs: Any) -> None:
            original(loop, *args, **kwargs)
            recorder.observe(loop)

        self._saved = original
        asyncio.BaseEventLoop.__init__ = __init__  # type: ignore[method-assign,assignment]

    def stop(self) -> None:
        if self._saved is not None:
            asyncio.BaseEventLoop.__init__ = self._saved  # type: ignore[method-assign]
            self._saved = None

    def observe(self, loop: asyncio.AbstractEventLoop) -> None:
        """Give ``loop`` the recording layer (instance attributes over its class's methods)."""
        for method, need in METHOD_NEEDS.items():
            if callable(getattr(type(loop), method, None)):
                setattr(loop, method, self._recording(loop, method, need))

    def _recording(self, loop: asyncio.AbstractEventLoop, method: str, need: str) -> Callable[..., Any]:
        def recorded(*args: Any, **kwargs: Any) -> Any:
            self.note(method, need, args)
            # Looked up on each call: adopting a loop changes its class (to add fallbacks).
            return getattr(type(loop), method)(loop, *args, **kwargs)

        recorded.__name__ = method
        return recorded

    def note(self, method: str, need: str, args: Tuple[Any, ...]) -> None:
        caller = sys._getframe(2)  # 0: here, 1: the recording layer, 2: whoever called the loop method
        if _is_internal(caller):
            return
        frame: Any = caller
        while frame.f_back is not None and _in_asyncio(frame):
            frame = frame.f_back  # from asyncio.create_subprocess_exec to the application's call
        path, line = frame.f_code.co_filename, frame.f_lineno
        self._add(need, path, line, f"loop.{method}() called")
        target = args[1] if need == "pipes" and len(args) > 1 else args[0] if need == "add_reader" and args else None
        if target is not None and _is_char_device(target):
            self._add("char_devices", path, line, f"loop.{method}() on a character device (a terminal)")

    def _add(self, need: str, path: str, line: int, what: str) -> None:
        if (need, path, line) not in self._seen:
            self._seen.add((need, path, line))
            self.evidence.append(Evidence(need, path, line, what))


def record_run(run: Callable[[], int], *, start_dir: str, write: bool) -> int:
    """Run the application with the recording layer; report (on stderr) what it used. Returns its exit code."""
    from ._startup import find_pyproject

    recorder = Recorder()
    recorder.start()
    try:
        return run()
    finally:
        recorder.stop()
        sys.stdout.flush()
        declared = Declared(find_pyproject(start_dir))
        hint = "Add it to pyproject.toml, or run again with `loopcompat run --record --write ...`."
        report("loopcompat run --record: loop features the application used", recorder.evidence, declared,
               write=write, as_json=False, write_hint=hint, out=sys.stderr)
