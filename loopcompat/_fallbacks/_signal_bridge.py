"""signal_bridge: loop.add_signal_handler()/remove_signal_handler() on Windows (fact S3).

Some facts about signals on Windows, which shape everything below:

* A Windows process receives only three signals it can handle: SIGINT
  (Ctrl-C), SIGBREAK (Ctrl-Break, and the console window being closed), and
  SIGTERM, which nothing outside the process ever sends (TerminateProcess
  cannot be caught) but ``signal.raise_signal`` can raise in-process. SIGABRT,
  SIGFPE, SIGILL and SIGSEGV are raised by the C runtime for a fault in the
  code that is running; there is nothing to defer to the event loop.
* The C runtime calls the signal handler in whichever thread raised the
  signal: a console control thread for Ctrl-C, the caller's for raise().
  CPython's C handler only notes the signal and writes its number to the
  wakeup fd (signal.set_wakeup_fd); the Python handler runs later, in the main
  thread, between two bytecodes.
* So a loop blocked in C (select() on the selector loop, the proactor's
  GetQueuedCompletionStatus) runs no Python handler until something else wakes
  it. The proactor loop points the wakeup fd at its self-pipe socket when it is
  built in the main thread (Python 3.8+), which is why Ctrl-C interrupts it;
  the selector loop does not, and sleeps through signals.

The bridge therefore points the wakeup fd at the loop's self-pipe socket (both
loops have one; the loop already drains it) so that any signal wakes the loop,
and installs a Python handler that queues the callback's Handle on the loop,
as call_soon_threadsafe() would. It runs in the main thread at a bytecode
boundary, which is the same as another thread running at that point, so this
is exactly as safe. Unlike the POSIX loop it does not read signal numbers from
the self-pipe: the proactor loop discards what it reads there, and its reader
(``_loop_self_reading``) is on the hot path, which loopcompat never overrides.

What was there before is put back: each signal's previous Python handler on
remove_signal_handler() and close(). The wakeup fd is one per process, so the
loops holding it are kept in one list, in the order they took it: when one lets
go, the newest other loop still bridging gets it back, and after the last one,
what was there before the first (unless someone else has replaced ours in the
meantime: then theirs stays). A loop never hands back the fd of a loop that has
let go: its number may belong to an application socket by then.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import signal
import sys
import threading
import warnings
import weakref
from types import FrameType
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from .._errors import UnsupportedError

# What signal.signal() accepts and signal.getsignal() returns: a callable, SIG_DFL
# or SIG_IGN, or None for a handler installed from outside Python.
SignalHandler = Union[Callable[[int, Optional[FrameType]], Any], int, None]

# The signals a Windows process can be sent, and how.
DELIVERABLE: Tuple[Tuple[str, str], ...] = (
    ("SIGINT", "Ctrl-C"),
    ("SIGBREAK", "Ctrl-Break or closing the console"),
    ("SIGTERM", "signal.raise_signal() in this process"),
)


def deliverable_signals() -> Dict[int, str]:
    """Signal number -> name, for the deliverable signals this platform's signal module defines."""
    return {int(getattr(signal, name)): name for name, _ in DELIVERABLE if hasattr(signal, name)}


def _default_handler(sig: int) -> SignalHandler:
    """What a fresh interpreter has for ``sig``: KeyboardInterrupt for SIGINT, else the OS default."""
    return signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL


def _finished_runner_handler(handler: SignalHandler) -> bool:
    """Whether ``handler`` is the SIGINT handler of an asyncio.Runner whose run() is over.

    asyncio.Runner (3.11+) installs ``functools.partial(runner._on_sigint,
    main_task=task)`` for the duration of run(), over default_int_handler
    only, and at the end puts default_int_handler back only if its own handler
    is still installed. When ours replaced it, the loop is closed after run()
    has ended; putting the runner's handler back then would leave a dead
    runner's handler installed, and the next Runner, seeing no
    default_int_handler, would not handle Ctrl-C at all.
    """
    runner_class = getattr(asyncio, "Runner", None)
    if runner_class is None or not isinstance(handler, functools.partial):
        return False
    method = handler.func
    if getattr(method, "__name__", None) != "_on_sigint":
        return False
    if not isinstance(getattr(method, "__self__", None), runner_class):
        return False
    task = handler.keywords.get("main_task")
    return task is None or bool(task.done())


def _handler_to_restore(sig: int, previous: SignalHandler) -> SignalHandler:
    if previous is None:  # installed outside Python: getsignal() cannot say what it was
        return _default_handler(sig)
    if _finished_runner_handler(previous):
        return signal.default_int_handler  # what that runner would have restored
    return previous


class _WakeupClaims:
    """The loops whose self-pipe may be the wakeup fd, oldest claim first (main thread only)."""

    def __init__(self) -> None:
        self.claims: "List[Tuple[weakref.ref[SignalBridgeMixin], int]]" = []  # (loop, its self-pipe fd)
        self.before = -1  # the wakeup fd in effect before the first claim

    def live(self) -> List[int]:
        """The self-pipe fds of the claiming loops still open, oldest claim first."""
        return [fd for ref, fd in self.claims
                if (loop := ref()) is not None and not loop.is_closed()]  # type: ignore[attr-defined]

    def take(self, loop: "SignalBridgeMixin", fd: int, replaced: int) -> None:
        if not self.live():
            # What a claimant left behind (a loop closed off the main thread cannot
            # let go) is no fd to hand back: its number may be anyone's by now.
            self.before = -1 if any(replaced == claimed for _, claimed in self.claims) else replaced
        self.drop(loop)
        self.claims.append((weakref.ref(loop), fd))

    def drop(self, loop: "SignalBridgeMixin") -> None:
        self.claims = [(ref, fd) for ref, fd in self.claims if ref() is not loop and ref() is not None]


_CLAIMS = _WakeupClaims()


class _Registration:
    """One bridged signal: the Handle to queue and the handler ours replaced."""

    __slots__ = ("handle", "previous")

    def __init__(self, handle: asyncio.Handle, previous: SignalHandler) -> None:
        self.handle = handle
        self.previous = previous


class SignalBridgeMixin:
    """add_signal_handler()/remove_signal_handler() for the Windows selector and proactor loops.

    Mixed in before the stock loop class. It has no __init__ (loopcompat.adopt
    changes the class of a loop that already exists), so its state is made on
    first use, and it overrides nothing on the I/O hot path.
    """

    # sig -> registration; None until the first add_signal_handler()
    _loopcompat_signals: Optional[Dict[int, _Registration]] = None
    # our self-pipe's fd while this loop bridges signals (and so claims the wakeup fd)
    _loopcompat_wakeup: Optional[int] = None

    def add_signal_handler(self, sig: int, callback: Callable[..., object], *args: Any) -> None:
        """Run ``callback(*args)`` on this loop, in the caller's context, each time ``sig`` arrives.

        :raises TypeError: for a coroutine or coroutine function, or a ``sig`` that is not an int.
        :raises ValueError: for a number that is no signal at all.
        :raises UnsupportedError: for a signal Windows cannot deliver to a process.
        :raises RuntimeError: when the loop is closed, or off the main thread.
        """
        if asyncio.iscoroutine(callback) or inspect.iscoroutinefunction(callback):
            raise TypeError("coroutines cannot be used with add_signal_handler()")
        self._loopcompat_check_signal(sig, "add_signal_handler")
        self._check_closed()  # type: ignore[attr-defined]
        self._loopcompat_claim_wakeup_fd()  # first: it refuses off the main thread, as on POSIX
        handle = asyncio.Handle(callback, args, self, None)  # type: ignore[arg-type]
        registrations = self._loopcompat_signals
        if registrations is None:
            registrations = self._loopcompat_signals = {}
        # Registered before our handler is installed, as the POSIX loop does: a signal
        # arriving in between finds its callback rather than no registration.
        old = registrations.get(sig)
        registration = registrations[sig] = _Registration(
            handle, old.previous if old is not None else _default_handler(sig))
        try:
            replaced = signal.signal(sig, self._loopcompat_on_signal)
        except OSError as exc:
            if old is None:
                del registrations[sig]
            else:
                registrations[sig] = old
            if not registrations:
                self._loopcompat_release_wakeup_fd()
            raise RuntimeError(f"sig {sig} cannot be caught") from exc
        if replaced != self._loopcompat_on_signal:  # (else: a new callback for a bridged signal)
            registration.previous = replaced

    def remove_signal_handler(self, sig: int) -> bool:
        """Stop handling ``sig``, putting back the handler it had before; False if it had none here.

        :raises TypeError, ValueError, UnsupportedError: for ``sig``, as add_signal_handler() does.
        :raises ValueError: off the main thread, as on POSIX (from signal.signal()).
        """
        self._loopcompat_check_signal(sig, "remove_signal_handler")
        registrations = self._loopcompat_signals
        if not registrations or sig not in registrations:
            return False
        if threading.current_thread() is not threading.main_thread():
            raise ValueError("signal only works in main thread of the main interpreter")
        if signal.getsignal(sig) == self._loopcompat_on_signal:
            signal.signal(sig, _handler_to_restore(sig, registrations[sig].previous))
        # else someone installed a handler over ours since: theirs stays
        del registrations[sig]
        if not registrations:
            self._loopcompat_release_wakeup_fd()
        return True

    def close(self) -> None:
        is_running: Callable[[], bool] = self.is_running  # type: ignore[attr-defined]
        is_closed: Callable[[], bool] = self.is_closed  # type: ignore[attr-defined]
        if self._loopcompat_signals and not is_running() and not is_closed():
            if sys.is_finalizing():  # as the POSIX loop does
                warnings.warn(
                    f"Closing the loop {self!r} on interpreter shutdown stage, skipping signal handlers removal",
                    ResourceWarning,
                    stacklevel=2,
                    source=self,
                )
                self._loopcompat_signals.clear()
            elif threading.current_thread() is threading.main_thread():
                for sig in list(self._loopcompat_signals):
                    self.remove_signal_handler(sig)
            # Off the main thread no signal handler can be changed: each bridged
            # signal puts back its previous handler itself when it next arrives.
        super().close()  # type: ignore[misc]

    # --- internals ------------------------------------------------------------------------------

    def _loopcompat_on_signal(self, sig: int, frame: Optional[FrameType]) -> None:
        """The Python-level handler: runs in the main thread, between two bytecodes."""
        registrations = self._loopcompat_signals or {}
        is_closed: Callable[[], bool] = self.is_closed  # type: ignore[attr-defined]
        if sig in registrations and not is_closed():
            self._add_callback_signalsafe(registrations[sig].handle)  # type: ignore[attr-defined]
            return
        # A signal this loop can no longer take: it was closed off the main
        # thread, or someone put our handler back after it was removed. Restore
        # what was there before (this is the main thread) and raise the signal
        # again for it: a signal is never swallowed, Ctrl-C still interrupts.
        if sig in registrations:
            for bridged in list(registrations):
                self.remove_signal_handler(bridged)
        else:
            signal.signal(sig, _default_handler(sig))
        signal.raise_signal(sig)

    def _loopcompat_check_signal(self, sig: object, method: str) -> None:
        # The POSIX loop's checks and errors, plus one: a real signal number that
        # Windows cannot deliver is a platform gap, not a bad argument.
        if not isinstance(sig, int):
            raise TypeError(f"sig must be an int, not {sig!r}")
        working = deliverable_signals()
        if sig in working:
            return
        if not 1 <= sig < signal.NSIG:
            raise ValueError(f"invalid signal number {sig}")
        from .._platform import detect

        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        names = list(working.values())
        ways = "; ".join(f"{signame} ({way})" for signame, way in DELIVERABLE if signame in names)
        raise UnsupportedError(
            f"loop.{method}() is not supported for {name} by {type(self).__name__} on {detect()}: "
            f"a Windows process can handle only {', '.join(names)}; SIGABRT, SIGFPE, SIGILL and "
            f"SIGSEGV report a fault in the running code, and other POSIX signals do not exist there "
            f"(S3, signal_bridge). Remedy: handle {ways}; stop another process with "
            f"Process.terminate(), not a signal"
        )

    def _loopcompat_claim_wakeup_fd(self) -> None:
        """Point the wakeup fd at our self-pipe (again: the latest add_signal_handler() has it)."""
        ours: int = self._csock.fileno()  # type: ignore[attr-defined]
        try:
            replaced = signal.set_wakeup_fd(ours)
        except (ValueError, OSError) as exc:  # "set_wakeup_fd only works in main thread ..."
            raise RuntimeError(str(exc)) from exc
        _CLAIMS.take(self, ours, replaced)
        self._loopcompat_wakeup = ours

    def _loopcompat_release_wakeup_fd(self) -> None:
        ours, self._loopcompat_wakeup = self._loopcompat_wakeup, None
        if ours is None:
            return
        _CLAIMS.drop(self)
        others = _CLAIMS.live()
        if others:  # the newest other loop still bridging signals
            target = others[-1]
        else:
            target = _CLAIMS.before
            if target == ours:  # the proactor loop's own setting, which its close() resets
                is_closed: Callable[[], bool] = self.is_closed  # type: ignore[attr-defined]
                if not is_closed():
                    return
                target = -1
        try:
            current = signal.set_wakeup_fd(target)
        except (ValueError, OSError):  # the fd that was there before has been closed since
            current = signal.set_wakeup_fd(-1)
        if current != ours:  # someone pointed it elsewhere after us: theirs stays
            signal.set_wakeup_fd(current)
