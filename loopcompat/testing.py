"""Test helpers: the loops the Windows fallbacks run on, and their stand-ins elsewhere.

Shared by loopcompat's tests and benchmarks, and usable by applications that test
their own code against the Windows fallbacks on Linux.

On Windows each builder returns the loop loopcompat really builds. Elsewhere
it returns a stock selector loop whose native methods are switched off (they
raise NotImplementedError, as on Windows), given the fallbacks by loopcompat's
own class builder from a Windows plan: the fallbacks run, and are tested and
measured, on Linux too. No pytest here: the benchmarks import this module.
"""

from __future__ import annotations

import asyncio
import selectors
import sys
from typing import Any, Callable, Sequence

import loopcompat
from loopcompat import Platform
from loopcompat._build import loop_class
from loopcompat._guards import PLAN_ATTRIBUTE
from loopcompat._planner import make_plan

WINDOWS = sys.platform == "win32"


class NoReaderLoop(asyncio.SelectorEventLoop):  # type: ignore[misc,valid-type]
    """A real selector loop whose readiness methods are unavailable, as on Windows' proactor loop."""

    def add_reader(self, fd: Any, callback: Callable[..., Any], *args: Any) -> None:
        raise NotImplementedError

    def add_writer(self, fd: Any, callback: Callable[..., Any], *args: Any) -> None:
        raise NotImplementedError

    def remove_reader(self, fd: Any) -> bool:
        raise NotImplementedError

    def remove_writer(self, fd: Any) -> bool:
        raise NotImplementedError


class NoNativeSelectorLoop(asyncio.SelectorEventLoop):  # type: ignore[misc,valid-type]
    """A stock selector loop without its own subprocess and pipe transports (as on Windows)."""

    async def _make_subprocess_transport(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def _make_read_pipe_transport(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def _make_write_pipe_transport(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


def windows_plan(needs: Sequence[str], loop: str) -> loopcompat.Plan:
    """The plan Windows 10 with this Python would get for ``needs`` on ``loop``."""
    return make_plan(list(needs), Platform("windows", "10", loopcompat.detect().python), {"loop": loop})


def add_reader_loop() -> asyncio.AbstractEventLoop:
    """A proactor loop with the selector_thread fallback (Windows), or NoReaderLoop with it."""
    if WINDOWS:
        return loopcompat.new_event_loop(["add_reader"], max_sockets=2000, config=False)
    plan = windows_plan(["add_reader"], "proactor")
    loop = loop_class(NoReaderLoop, plan)()
    setattr(loop, PLAN_ATTRIBUTE, plan)
    return loop  # type: ignore[no-any-return]


def bare_add_reader_loop() -> asyncio.AbstractEventLoop:
    """The same loop without loopcompat: add_reader raises NotImplementedError."""
    return asyncio.ProactorEventLoop() if WINDOWS else NoReaderLoop()  # type: ignore[attr-defined,unused-ignore]


def threaded_io_loop(needs: Sequence[str]) -> asyncio.AbstractEventLoop:
    """The selector loop with the threaded fallbacks for ``needs``, as loopcompat builds it on Windows."""
    if WINDOWS:
        return loopcompat.new_event_loop(list(needs), loop="selector", config=False)
    plan = windows_plan(needs, "selector")
    return loop_class(NoNativeSelectorLoop, plan)(selectors.DefaultSelector())  # type: ignore[no-any-return]
