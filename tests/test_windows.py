"""Windows conformance, on the real Windows CPython (the Windows test bed runs this under Wine).

Two halves: the stock asyncio facts loopcompat's knowledge base relies on
(S2, S3, S4, S5, S7, S8, S12), asserted on plain asyncio so that a Python or
Wine change that alters one is noticed; and loopcompat's behaviour for each:
the plan it chooses here, the loop it builds, and the UnsupportedError for
what has no fallback yet.
"""

from __future__ import annotations

import asyncio
import os
import selectors
import socket
import sys

import pytest

import loopcompat
from loopcompat import UnsupportedError

from .conftest import UNDER_WINE

pytestmark = pytest.mark.skipif(sys.platform != "win32", reason="Windows-only: runs under the Windows test bed")

HERE = loopcompat.detect()


def _stock(kind: str) -> asyncio.AbstractEventLoop:
    return asyncio.ProactorEventLoop() if kind == "proactor" else asyncio.SelectorEventLoop()


@pytest.fixture
def stock_loop(request):
    loop = _stock(request.param)
    yield loop
    loop.close()


def _run(loop, coro, timeout=20):
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


# --- stock facts -------------------------------------------------------------------------------


def test_detect_reports_windows_and_this_python():
    assert HERE.system == "windows"
    assert HERE.release in ("10", "11")  # the test bed's Wine prefix is set to Windows 10
    assert HERE.python_version[:2] == sys.version_info[:2]


def test_S12_default_loop_is_proactor_from_3_8():
    assert asyncio.DefaultEventLoopPolicy is asyncio.WindowsProactorEventLoopPolicy
    loop = asyncio.new_event_loop()
    try:
        assert isinstance(loop, asyncio.ProactorEventLoop)
    finally:
        loop.close()


@pytest.mark.parametrize("stock_loop", ["proactor", "selector"], indirect=True)
def test_S2_unix_sockets_are_not_implemented(stock_loop):
    with pytest.raises(NotImplementedError):
        _run(stock_loop, stock_loop.create_unix_server(asyncio.Protocol, "x.sock"))
    with pytest.raises(NotImplementedError):
        _run(stock_loop, stock_loop.create_unix_connection(asyncio.Protocol, "x.sock"))


@pytest.mark.parametrize("stock_loop", ["proactor", "selector"], indirect=True)
def test_S3_signal_handlers_are_not_implemented(stock_loop):
    import signal

    with pytest.raises(NotImplementedError):
        stock_loop.add_signal_handler(signal.SIGINT, lambda: None)
    with pytest.raises(NotImplementedError):
        stock_loop.remove_signal_handler(signal.SIGINT)


def test_S4_select_selector_only_and_512_sockets_per_select():
    assert selectors.DefaultSelector is selectors.SelectSelector
    assert not hasattr(selectors, "EpollSelector") and not hasattr(selectors, "PollSelector")
    import select

    pairs = [socket.socketpair() for _ in range(257)]  # 514 sockets
    try:
        socks = [s for pair in pairs for s in pair]
        assert select.select(socks[:512], [], [], 0) is not None
        with pytest.raises(ValueError, match="too many file descriptors in select"):
            select.select(socks[:513], [], [], 0)
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def test_S5_selector_loop_select_rejects_non_socket_handles():
    loop = asyncio.SelectorEventLoop()
    r, w = os.pipe()
    nap = asyncio.sleep(0.01)
    try:
        loop.add_reader(r, lambda: None)  # stock accepts the registration ...
        with pytest.raises(OSError) as info:  # ... and the loop's select() then fails: WSAENOTSOCK
            loop.run_until_complete(nap)
        # WSAENOTSOCK on Windows; Wine answers WSAEOPNOTSUPP (10045) for the same call
        assert getattr(info.value, "winerror", None) in ((10038, 10045) if UNDER_WINE else (10038,))
    finally:
        nap.close()  # the loop broke before its task could run it
        loop._selector.unregister(r)
        loop.close()
        os.close(r)
        os.close(w)


def test_S7_selector_loop_subprocesses_are_not_implemented():
    loop = asyncio.SelectorEventLoop()
    try:
        with pytest.raises(NotImplementedError):
            _run(loop, loop.subprocess_exec(asyncio.SubprocessProtocol, sys.executable, "-c", "pass"))
    finally:
        loop.close()


def test_S8_proactor_loop_add_reader_is_not_implemented():
    loop = asyncio.ProactorEventLoop()
    a, b = socket.socketpair()
    try:
        for method in ("add_reader", "add_writer"):
            with pytest.raises(NotImplementedError):
                getattr(loop, method)(a, lambda: None)
    finally:
        loop.close()
        a.close()
        b.close()


# --- loopcompat on this platform ----------------------------------------------------------------


def test_default_install_builds_the_proactor_loop():
    plan = loopcompat.install()
    assert (plan.loop, plan.selector) == ("proactor", None)

    async def main():
        return asyncio.get_running_loop()

    loop = asyncio.run(main())
    assert isinstance(loop, asyncio.ProactorEventLoop) and loop._loopcompat_plan is plan


def test_subprocess_need_builds_proactor_and_a_child_runs():
    async def main():
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import sys; sys.stdout.write(sys.stdin.read().upper())",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate(b"hello")
        return type(asyncio.get_running_loop()), out, proc.returncode

    loop_type, out, code = loopcompat.run(main(), needs=["subprocess"])
    assert issubclass(loop_type, asyncio.ProactorEventLoop)
    assert (out, code) == (b"HELLO", 0)


def test_add_reader_need_builds_the_selector_loop_and_add_reader_works():
    loop = loopcompat.new_event_loop(["add_reader"])
    a, b = socket.socketpair()
    try:
        assert isinstance(loop, asyncio.SelectorEventLoop)
        assert isinstance(loop._selector, selectors.SelectSelector)
        got = loop.create_future()
        loop.add_reader(a, lambda: got.done() or got.set_result(a.recv(10)))
        b.send(b"ping")
        assert _run(loop, got) == b"ping"
        assert loop.remove_reader(a) is True
    finally:
        loop.close()
        a.close()
        b.close()


def test_S8_clear_error_on_the_proactor_loop():
    loop = loopcompat.new_event_loop()
    a, b = socket.socketpair()
    try:
        with pytest.raises(UnsupportedError) as info:
            loop.add_reader(a, lambda: None)
        message = str(info.value)
        assert message.startswith(f"loop.add_reader() is not supported by ProactorEventLoop on {HERE}")
        assert "(S8)" in message and "Remedy:" in message
        assert isinstance(info.value, NotImplementedError)
        assert isinstance(info.value.__cause__, NotImplementedError)
    finally:
        loop.close()
        a.close()
        b.close()


def test_S7_clear_error_on_a_forced_selector_loop():
    loop = loopcompat.new_event_loop(loop="selector")
    try:
        with pytest.raises(UnsupportedError) as info:
            _run(loop, asyncio.create_subprocess_exec(sys.executable, "-c", "pass"))
        message = str(info.value)
        assert f"loop.subprocess_exec() is not supported by _WindowsSelectorEventLoop on {HERE}" in message
        # the loop was forced: the remedy is the declared need that turns the fallback on
        assert "(S7)" in message and "needs=['subprocess']" in message and "threaded_subprocess" in message
    finally:
        loop.close()


def test_S7_plan_time_error_when_subprocess_is_declared_with_a_forced_selector_loop():
    with pytest.raises(UnsupportedError, match=r"subprocess: .*\(S7\)"):
        loopcompat.plan(["subprocess"], loop="selector", fallbacks=False)


@pytest.mark.parametrize("kind", ["proactor", "selector"])
def test_S3_and_S2_clear_errors_on_both_loops(kind):
    import signal

    loop = loopcompat.new_event_loop(loop=kind)
    try:
        with pytest.raises(UnsupportedError, match=r"loop\.add_signal_handler\(\) is not supported .*\(S3\)"):
            loop.add_signal_handler(signal.SIGINT, lambda: None)
        with pytest.raises(UnsupportedError, match=r"AF_UNIX.*\(S2\).*named pipes"):
            _run(loop, loop.create_unix_server(asyncio.Protocol, "x.sock"))
    finally:
        loop.close()


def test_S5_clear_error_for_a_pipe_on_the_selector_loop_and_the_loop_survives():
    loop = loopcompat.new_event_loop(["add_reader"])
    r, w = os.pipe()
    try:
        with pytest.raises(UnsupportedError, match=r"not a socket.*\(S5\)"):
            loop.add_reader(r, lambda: None)
        assert loop.run_until_complete(asyncio.sleep(0.01, "alive")) == "alive"
    finally:
        loop.close()
        os.close(r)
        os.close(w)


def test_S4_the_513th_socket_is_refused_clearly_and_the_loop_survives():
    loop = loopcompat.new_event_loop(["add_reader"])
    pairs = [socket.socketpair() for _ in range(257)]
    try:
        socks = [s for pair in pairs for s in pair]
        added = 0
        with pytest.raises(UnsupportedError) as info:
            for sock in socks:
                loop.add_reader(sock, lambda: None)
                added += 1
        # the loop's own self-pipe socket is one of the 512
        assert (added, len(loop._selector.get_map())) == (511, 512)
        assert "512 sockets are already registered" in str(info.value) and "(S4)" in str(info.value)
        assert loop.run_until_complete(asyncio.sleep(0.01, "alive")) == "alive"
    finally:
        loop.close()
        for a, b in pairs:
            a.close()
            b.close()


def test_max_sockets_above_512_plans_the_proactor_loop():
    plan = loopcompat.plan([], max_sockets=2000)
    assert plan.loop == "proactor"


def test_S11_child_watchers_are_a_clear_error_under_the_installed_policy():
    loopcompat.install()
    policy = asyncio.get_event_loop_policy()
    with pytest.raises(UnsupportedError, match=r"set_child_watcher\(\) is not supported .*\(S11\)"):
        policy.set_child_watcher(None)
    with pytest.raises(NotImplementedError):
        policy.get_child_watcher()


@pytest.mark.parametrize("needs, loop_kind", [(["add_reader"], "selector"), (["add_reader", "subprocess"], "proactor"),
                                              ([], "proactor")])
def test_S1_regular_files_are_refused_with_the_thread_remedy_on_every_windows_loop(needs, loop_kind, tmp_path):
    loop = loopcompat.new_event_loop(needs, loop=loop_kind)
    path = tmp_path / "data.bin"
    path.write_bytes(b"x")
    try:
        with open(path, "rb") as f:
            for method in ("add_reader", "add_writer"):
                with pytest.raises(UnsupportedError, match=r"regular file.*\(S1\).*to_thread"):
                    getattr(loop, method)(f.fileno(), lambda: None)
    finally:
        loop.close()
