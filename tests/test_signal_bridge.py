"""The signal_bridge fallback: add_signal_handler()/remove_signal_handler() on Windows (fact S3).

On Windows (the test bed runs these under Wine) every test runs on both loops
loopcompat builds for needs=["signals"]: the proactor loop and the selector
loop. Elsewhere the same tests run the mixin on the class the Windows selector
loop really is, asyncio's BaseSelectorEventLoop (whose add_signal_handler
raises NotImplementedError on every platform), built through loopcompat's own
class builder from a Windows plan. Signals are raised in-process with
signal.raise_signal(): Wine cannot send console control events between
processes, and a helper thread raising the signal is exactly the case where
the loop's thread is blocked in C and must be woken.
"""

from __future__ import annotations

import asyncio
import contextvars
import selectors
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import pytest

import loopcompat
from loopcompat import Platform, UnsupportedError
from loopcompat._build import HOT_PATH_METHODS, loop_class
from loopcompat._fallbacks._signal_bridge import SignalBridgeMixin, deliverable_signals
from loopcompat._guards import PLAN_ATTRIBUTE
from loopcompat._planner import make_plan

from .conftest import IS_WINDOWS, windows_only

HERE = loopcompat.detect()
WINDOWS = Platform("windows", "10", HERE.python)
LONG = 10.0  # seconds a loop would sleep if no signal woke it
DELIVERABLE = deliverable_signals()  # SIGINT, SIGBREAK, SIGTERM on Windows; SIGINT, SIGTERM elsewhere
KINDS = ["proactor", "selector"] if IS_WINDOWS else ["simulated-windows-selector"]
MAIN_THREAD_ONLY = "signal handlers can only be set in the main thread"


def _wakeup_fd() -> int:
    fd = signal.set_wakeup_fd(-1)
    if fd != -1:
        signal.set_wakeup_fd(fd)
    return fd


@pytest.fixture(autouse=True)
def signal_state() -> Iterator[None]:
    """Whatever a test does, the next one starts with the handlers and wakeup fd this one found."""
    handlers = {sig: signal.getsignal(sig) for sig in DELIVERABLE}
    fd = _wakeup_fd()
    yield
    for sig, handler in handlers.items():
        signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
    try:
        signal.set_wakeup_fd(fd)
    except (ValueError, OSError):  # that fd belonged to a loop that is closed now
        signal.set_wakeup_fd(-1)


def _simulated_windows_selector_loop() -> asyncio.AbstractEventLoop:
    plan = make_plan(["signals"], WINDOWS, {"loop": "selector"})
    cls = loop_class(asyncio.selector_events.BaseSelectorEventLoop, plan)
    loop = cls(selectors.DefaultSelector())
    setattr(loop, PLAN_ATTRIBUTE, plan)
    return loop  # type: ignore[no-any-return]


def _bridged_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "proactor":
        loop = loopcompat.new_event_loop(["signals"])
        assert isinstance(loop, asyncio.ProactorEventLoop)
    elif kind == "selector":
        loop = loopcompat.new_event_loop(["signals"], loop="selector")
        assert isinstance(loop, asyncio.SelectorEventLoop)
    else:
        loop = _simulated_windows_selector_loop()
    assert isinstance(loop, SignalBridgeMixin)
    return loop


@pytest.fixture(params=KINDS)
def bridged(request: Any, signal_state: None) -> Iterator[asyncio.AbstractEventLoop]:
    loop = _bridged_loop(request.param)
    yield loop
    if not loop.is_closed():
        loop.close()


def _raise_later(sig: int, delay: float = 0.3) -> threading.Timer:
    """signal.raise_signal(sig) from a helper thread: the C handler runs there, the Python one in main."""
    timer = threading.Timer(delay, signal.raise_signal, (sig,))
    timer.daemon = True
    timer.start()
    return timer


def _in_thread(function: Callable[[], Any]) -> BaseException:
    errors: List[BaseException] = []

    def target() -> None:
        try:
            function()
        except BaseException as exc:  # handed back to the test
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(LONG)
    assert len(errors) == 1, errors
    return errors[0]


def callback(*args: Any) -> None:
    pass


# --- plans ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["proactor", "selector"])
def test_windows_plans_serve_declared_signals_with_the_bridge(kind):
    plan = loopcompat.plan(["signals"], platform=WINDOWS, loop=kind)
    support = plan.support("signals")
    assert (support.level, support.fallback) == ("fallback", "signal_bridge")
    assert "signal_bridge" in plan.fallbacks and not plan.unmet
    # fallbacks are explicit: without the declared need the feature stays unsupported
    undeclared = loopcompat.plan([], platform=WINDOWS, loop=kind).support("signals")
    assert undeclared.level == "unsupported" and "declare needs=['signals']" in undeclared.reason
    with pytest.raises(UnsupportedError, match=r"signals: .*\(S3\)"):
        loopcompat.plan(["signals"], platform=WINDOWS, loop=kind, fallbacks=False)


def test_the_default_windows_plan_for_signals_is_the_proactor_loop():
    plan = loopcompat.plan(["signals"], platform=WINDOWS)
    assert (plan.loop, sorted(plan.fallbacks)) == ("proactor", ["signal_bridge"])


def test_the_bridge_overrides_nothing_on_the_hot_path(bridged):
    assert not set(vars(SignalBridgeMixin)) & set(HOT_PATH_METHODS)
    base = type(bridged)._loopcompat_base
    for name in HOT_PATH_METHODS:
        if hasattr(base, name):
            assert getattr(type(bridged), name) is getattr(base, name), name


@windows_only
@pytest.mark.parametrize("kind", ["proactor", "selector"])
def test_only_a_declared_need_gets_the_bridge(kind):
    loop = loopcompat.new_event_loop(loop=kind)
    try:
        assert not isinstance(loop, SignalBridgeMixin)
        with pytest.raises(UnsupportedError, match=r"declare needs=\['signals'\]"):
            loop.add_signal_handler(signal.SIGINT, callback)
    finally:
        loop.close()


@windows_only
@pytest.mark.parametrize("kind", ["proactor", "selector"])
def test_adopt_gives_a_stock_loop_the_bridge(kind):
    loop = asyncio.ProactorEventLoop() if kind == "proactor" else asyncio.SelectorEventLoop()
    try:
        assert loopcompat.adopt(loop, needs=["signals"]) is loop and isinstance(loop, SignalBridgeMixin)
        got = loop.create_future()
        loop.add_signal_handler(signal.SIGINT, got.set_result, "adopted")
        signal.raise_signal(signal.SIGINT)
        assert loop.run_until_complete(asyncio.wait_for(got, LONG)) == "adopted"
    finally:
        loop.close()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# --- delivery -----------------------------------------------------------------------------------

request_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_var", default="unset")


def test_the_callback_runs_on_the_loop_in_the_callers_context(bridged):
    calls: List[Any] = []

    def record(*args: Any) -> None:
        calls.append((args, request_var.get(), threading.get_ident(), asyncio.get_running_loop()))

    token = request_var.set("set when the handler was added")
    try:
        bridged.add_signal_handler(signal.SIGINT, record, 1, "two")
    finally:
        request_var.reset(token)
    signal.raise_signal(signal.SIGINT)  # the Python handler runs before this returns ...
    signal.raise_signal(signal.SIGINT)
    assert calls == []  # ... and only queued the callback: it runs on the loop

    async def loop_thread() -> int:
        await asyncio.sleep(0.05)
        return threading.get_ident()

    ident = bridged.run_until_complete(loop_thread())
    assert calls == [((1, "two"), "set when the handler was added", ident, bridged)] * 2


@pytest.mark.parametrize("name", sorted(DELIVERABLE.values()))
def test_a_signal_from_another_thread_wakes_a_loop_blocked_in_its_wait(bridged, name):
    sig = getattr(signal, name)
    got = bridged.create_future()
    bridged.add_signal_handler(sig, got.set_result, name)

    async def main() -> float:
        _raise_later(sig)
        start = time.monotonic()
        await asyncio.wait({got}, timeout=LONG)  # the loop blocks in select() / GetQueuedCompletionStatus
        return time.monotonic() - start

    elapsed = bridged.run_until_complete(main())
    assert got.done() and got.result() == name
    assert elapsed < LONG / 2  # woken by the signal, not by the timeout


def test_a_handler_that_stops_the_loop_stops_it_at_once(bridged):
    bridged.add_signal_handler(signal.SIGINT, bridged.stop)
    bridged.call_later(LONG, bridged.stop)
    _raise_later(signal.SIGINT)
    start = time.monotonic()
    bridged.run_forever()
    assert time.monotonic() - start < LONG / 2


def test_without_the_bridge_the_selector_loop_sleeps_through_signals():
    """The fact the bridge exists for (WINDOWS.md: "the selector loop is not woken by signals")."""
    stock = asyncio.SelectorEventLoop() if IS_WINDOWS else asyncio.selector_events.BaseSelectorEventLoop()
    ran: List[float] = []

    def handler(signum: int, frame: Any) -> None:
        ran.append(time.monotonic())
        stock.call_soon_threadsafe(stock.stop)

    raised: List[float] = []

    def fire() -> None:
        raised.append(time.monotonic())
        signal.raise_signal(signal.SIGINT)

    previous_fd = signal.set_wakeup_fd(-1)
    previous = signal.signal(signal.SIGINT, handler)
    try:
        stock.call_later(1.5, stock.stop)
        timer = threading.Timer(0.2, fire)
        timer.start()
        stock.run_forever()
        timer.join()
        assert len(ran) == 1 and len(raised) == 1
        assert ran[0] - raised[0] > 0.8  # the handler waited for select()'s own 1.5 s timeout
    finally:
        signal.signal(signal.SIGINT, previous)
        stock.close()
        if previous_fd != -1:
            signal.set_wakeup_fd(previous_fd)


# --- Ctrl-C, restoring, cleanup -------------------------------------------------------------------


def test_ctrl_c_still_raises_keyboard_interrupt_when_no_handler_is_set(bridged):
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)
    bridged.add_signal_handler(signal.SIGINT, callback)
    signal.raise_signal(signal.SIGINT)  # handled: no KeyboardInterrupt
    assert bridged.remove_signal_handler(signal.SIGINT) is True
    assert bridged.remove_signal_handler(signal.SIGINT) is False
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)


def test_ctrl_c_interrupts_a_blocked_loop_while_another_signal_is_bridged(bridged):
    bridged.add_signal_handler(signal.SIGTERM, callback)
    bridged.call_later(LONG, bridged.stop)
    timer = _raise_later(signal.SIGINT)
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        bridged.run_forever()
    assert time.monotonic() - start < LONG / 2
    timer.join()


def test_remove_and_close_put_back_the_previous_handlers_and_wakeup_fd(bridged):
    def mine(signum: int, frame: Any) -> None:
        pass

    signal.signal(signal.SIGINT, mine)
    term_before = signal.getsignal(signal.SIGTERM)
    fd_before = _wakeup_fd()
    ours = bridged._csock.fileno()

    bridged.add_signal_handler(signal.SIGINT, callback)
    bridged.add_signal_handler(signal.SIGTERM, callback)
    bridged.add_signal_handler(signal.SIGINT, print)  # a new callback keeps the handler to restore
    assert _wakeup_fd() == ours
    assert bridged.remove_signal_handler(signal.SIGINT) is True
    assert signal.getsignal(signal.SIGINT) is mine
    assert _wakeup_fd() == ours  # SIGTERM still needs it

    bridged.close()
    assert signal.getsignal(signal.SIGTERM) is term_before
    # the selector loop puts back what it replaced; the proactor loop held the
    # wakeup fd from its start, and its own close() resets it
    assert _wakeup_fd() == (-1 if fd_before == ours else fd_before)
    assert bridged.remove_signal_handler(signal.SIGTERM) is False


def test_handlers_installed_over_ours_are_left_alone(bridged):
    def theirs(signum: int, frame: Any) -> None:
        pass

    other_r, other_w = socket.socketpair()
    other_w.setblocking(False)
    try:
        bridged.add_signal_handler(signal.SIGINT, callback)
        signal.signal(signal.SIGINT, theirs)
        signal.set_wakeup_fd(other_w.fileno())
        assert bridged.remove_signal_handler(signal.SIGINT) is True
        assert signal.getsignal(signal.SIGINT) is theirs
        assert _wakeup_fd() == other_w.fileno()
    finally:
        signal.set_wakeup_fd(-1)
        other_r.close()
        other_w.close()


# The C handler still writes to the closed loop's socket (only the main thread can
# change the wakeup fd), and Python reports that failed write as unraisable.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_loop_closed_off_the_main_thread_gives_its_signals_back(bridged):
    bridged.add_signal_handler(signal.SIGINT, callback)
    ours = bridged._csock.fileno()
    thread = threading.Thread(target=bridged.close)
    thread.start()
    thread.join(LONG)
    assert bridged.is_closed()
    # no handler can be changed off the main thread; the next signal restores them
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert _wakeup_fd() != ours


@pytest.mark.parametrize("first", ["older", "newer"])
@pytest.mark.parametrize("kind", KINDS)
def test_two_bridged_loops_closed_in_either_order_leave_nothing_behind(kind, first):
    older, newer = _bridged_loop(kind), _bridged_loop(kind)
    fds = {older._csock.fileno(), newer._csock.fileno()}
    older.add_signal_handler(signal.SIGINT, callback)
    newer.add_signal_handler(signal.SIGINT, callback)  # replaces the older loop's handler
    for loop in (older, newer) if first == "older" else (newer, older):
        loop.close()
    # closed newer-first, each puts back what it replaced; older-first, the older loop
    # leaves the newer one's handler alone, which then hands back the older one's, now
    # stale: that one gives the signal to the default handler on its first arrival
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert _wakeup_fd() not in fds


@pytest.mark.parametrize("kind", KINDS)
def test_a_closed_loops_self_pipe_is_never_handed_back_once_its_number_is_reused(kind):
    """Ctrl-C writes a byte to the wakeup fd: pointed at a reused number, into an application socket."""
    first, second = _bridged_loop(kind), _bridged_loop(kind)
    first.add_signal_handler(signal.SIGINT, callback)
    second.add_signal_handler(signal.SIGTERM, callback)
    number = first._csock.fileno()
    first.close()
    sockets: List[socket.socket] = []
    for _ in range(1000):  # new connections (non-blocking, as an asyncio app's) take the closed loop's numbers
        pair = socket.socketpair()
        for sock in pair:
            sock.setblocking(False)  # (set_wakeup_fd() refuses a blocking socket on POSIX)
        sockets += pair
        if number in (sock.fileno() for sock in sockets):
            break
    try:
        assert number in (sock.fileno() for sock in sockets)
        second.close()
        assert _wakeup_fd() not in {sock.fileno() for sock in sockets}
    finally:
        for sock in sockets:
            sock.close()


@pytest.mark.parametrize("kind", KINDS)
def test_the_wakeup_fd_goes_back_to_the_newest_loop_still_bridging(kind):
    older, newer = _bridged_loop(kind), _bridged_loop(kind)
    try:
        older.add_signal_handler(signal.SIGINT, callback)
        newer.add_signal_handler(signal.SIGTERM, callback)
        older.add_signal_handler(signal.SIGINT, callback)  # a new callback: the older loop takes the fd back
        assert _wakeup_fd() == older._csock.fileno()
        assert older.remove_signal_handler(signal.SIGINT)
        assert _wakeup_fd() == newer._csock.fileno()  # the newer loop still bridges SIGTERM
    finally:
        older.close()
        newer.close()


def test_a_signal_arriving_as_the_handler_is_installed_reaches_the_callback():
    """CPython's POSIX loop stores the registration before installing its handler; so must the bridge.
    Run in a child: before the fix, SIGTERM (ignored until then) killed the process."""
    code = textwrap.dedent(
        """
        import signal, sys
        sys.path.insert(0, sys.argv[1])
        import loopcompat._fallbacks._signal_bridge as bridge
        from tests.test_signal_bridge import _simulated_windows_selector_loop

        class ArrivesAtOnce:  # the signal module, but the signal lands right after our handler is in
            def __getattr__(self, name):
                return getattr(signal, name)

            def signal(self, sig, handler):
                previous = signal.signal(sig, handler)
                if getattr(handler, "__name__", "") == "_loopcompat_on_signal":
                    signal.raise_signal(sig)
                return previous

        bridge.signal = ArrivesAtOnce()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        loop = _simulated_windows_selector_loop()
        seen = []
        loop.add_signal_handler(signal.SIGTERM, seen.append, "callback")
        loop.run_until_complete(__import__("asyncio").sleep(0.05))
        loop.close()
        print("seen:", seen)
        """
    )
    root = str(Path(__file__).resolve().parent.parent)
    result = subprocess.run([sys.executable, "-c", code, root], capture_output=True, text=True, cwd=root,
                            stdin=subprocess.DEVNULL, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "seen: ['callback']" in result.stdout


# --- errors -----------------------------------------------------------------------------------------


def _error_loops() -> Dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The bridged loops, and on POSIX the native loop: the bridge must raise what it raises."""
    loops: Dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        kind: (lambda k=kind: _bridged_loop(k)) for kind in KINDS
    }
    if not IS_WINDOWS:
        loops["posix-native"] = asyncio.SelectorEventLoop
    return loops


@pytest.fixture(params=sorted(_error_loops()))
def any_loop(request: Any, signal_state: None) -> Iterator[asyncio.AbstractEventLoop]:
    loop = _error_loops()[request.param]()
    yield loop
    loop.close()


def test_bad_arguments_get_the_errors_the_posix_loop_gives(any_loop):
    async def coroutine_function() -> None:
        pass

    with pytest.raises(TypeError, match="coroutines cannot be used with add_signal_handler"):
        any_loop.add_signal_handler(signal.SIGINT, coroutine_function)
    coroutine = coroutine_function()
    with pytest.raises(TypeError, match="coroutines cannot be used with add_signal_handler"):
        any_loop.add_signal_handler(signal.SIGINT, coroutine)
    coroutine.close()
    for method, args in (("add_signal_handler", (callback,)), ("remove_signal_handler", ())):
        with pytest.raises(TypeError, match="sig must be an int"):
            getattr(any_loop, method)("SIGINT", *args)
        for number in (0, -1, signal.NSIG, 1000):
            with pytest.raises(ValueError, match=f"invalid signal number {number}"):
                getattr(any_loop, method)(number, *args)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # nothing was installed
    assert any_loop.remove_signal_handler(signal.SIGINT) is False


def test_off_the_main_thread_as_on_posix(any_loop):
    error = _in_thread(lambda: any_loop.add_signal_handler(signal.SIGINT, callback))
    assert type(error) is RuntimeError and "main thread" in str(error)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    any_loop.add_signal_handler(signal.SIGINT, callback)
    error = _in_thread(lambda: any_loop.remove_signal_handler(signal.SIGINT))
    assert type(error) is ValueError and "main thread" in str(error)


def test_a_closed_loop_refuses_as_on_posix(any_loop):
    any_loop.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        any_loop.add_signal_handler(signal.SIGINT, callback)
    assert any_loop.remove_signal_handler(signal.SIGINT) is False


def test_signals_windows_cannot_deliver_raise_unsupported_error_naming_those_that_work(bridged):
    names = ("SIGABRT", "SIGFPE", "SIGILL", "SIGSEGV", "SIGKILL", "SIGHUP", "SIGUSR1")
    numbers = {getattr(signal, name) for name in names if hasattr(signal, name)} | {9}
    for sig in sorted(numbers - set(DELIVERABLE)):
        for method, args in (("add_signal_handler", (sig, callback)), ("remove_signal_handler", (sig,))):
            with pytest.raises(UnsupportedError) as info:
                getattr(bridged, method)(*args)
            message = str(info.value)
            assert message.startswith(f"loop.{method}() is not supported for ")
            assert f"by {type(bridged).__name__} on {HERE}" in message and "Remedy:" in message
            assert all(name in message for name in DELIVERABLE.values())
            assert isinstance(info.value, NotImplementedError)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# --- asyncio.run / asyncio.Runner ------------------------------------------------------------------


async def _handle_sigint_inside(remove: bool, bridged: bool = True) -> str:
    loop = asyncio.get_running_loop()
    got = loop.create_future()
    loop.add_signal_handler(signal.SIGINT, got.set_result, "callback")
    _raise_later(signal.SIGINT)
    start = time.monotonic()
    result = await asyncio.wait_for(got, LONG)
    assert time.monotonic() - start < LONG / 2
    if remove:
        assert loop.remove_signal_handler(signal.SIGINT) is True
        if bridged and sys.version_info >= (3, 11):
            # asyncio.Runner's own SIGINT handler is back for the rest of run() (the POSIX
            # loop puts back default_int_handler instead)
            assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    return result  # type: ignore[no-any-return]


@pytest.mark.parametrize("remove", [False, True], ids=["kept", "removed"])
@pytest.mark.parametrize("kind", ["proactor", "selector"] if IS_WINDOWS else ["native"])
def test_loopcompat_run_with_a_sigint_handler_inside(kind, remove):
    options = {"loop": kind} if kind == "selector" else {}
    main = _handle_sigint_inside(remove, bridged=kind != "native")
    assert loopcompat.run(main, needs=["signals"], **options) == "callback"
    # asyncio.Runner's handler is gone too, so the next Runner installs its own again
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.Runner is new in Python 3.11")
@pytest.mark.parametrize("remove", [False, True], ids=["kept", "removed"])
@pytest.mark.parametrize("kind", KINDS)
def test_asyncio_runner_and_the_bridge_do_not_fight(kind, remove):
    with asyncio.Runner(loop_factory=lambda: _bridged_loop(kind)) as runner:
        assert runner.run(_handle_sigint_inside(remove)) == "callback"
        assert runner.run(asyncio.sleep(0, "again")) == "again"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
