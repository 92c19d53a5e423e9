"""uvloop and winloop: planned when preferred, installed and able; built for real (uvloop on Linux,
winloop under the Windows test bed)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import tempfile

import pytest

import loopcompat
from loopcompat import ConfigError, Platform, UnsupportedError
from loopcompat._planner import make_plan

from .conftest import IS_WINDOWS


def test_planned_when_preferred_on_posix():
    plan = make_plan(["subprocess", "signals", "char_devices"], Platform("linux", "6.1", "3.12"), {"prefer": ["uvloop"]})
    assert (plan.loop, plan.selector, plan.unmet) == ("uvloop", None, ())
    assert any("X7" in w for w in plan.warnings)  # millisecond timers
    mac = make_plan(["char_devices"], Platform("macos", "10.8", "3.12"), {"prefer": ["uvloop"]})
    assert mac.loop == "uvloop"  # libuv watches terminals itself; S13 concerns kqueue


@pytest.mark.parametrize(
    "platform, options, installed, expected_loop, note",
    [
        (Platform("linux", "6.1", "3.12"), {"prefer": ["uvloop"]}, frozenset(), "selector", "not installed"),
        (Platform("windows", "10", "3.12"), {"prefer": ["uvloop"]}, None, "proactor", "does not exist for Windows"),
        (Platform("windows", "10", "3.12"), {"prefer": ["winloop"]}, frozenset(), "proactor", "not installed"),
        (Platform("windows", "10", "3.8"), {"prefer": ["winloop"]}, None, "proactor", "does not exist"),
        (Platform("linux", "6.1", "3.12"), {"prefer": ["winloop"]}, None, "selector", "does not exist"),
        (Platform("linux", "6.1", "3.7"), {"prefer": ["uvloop"]}, None, "selector", "does not exist"),
    ],
)
def test_not_planned_when_absent_or_impossible_and_the_plan_says_why(platform, options, installed, expected_loop, note):
    plan = make_plan([], platform, options, installed=installed)
    assert plan.loop == expected_loop
    assert any(note in w for w in plan.warnings), plan.warnings


def test_forcing_an_impossible_optional_loop_is_a_config_error():
    with pytest.raises(ConfigError, match="uvloop does not exist for Windows"):
        make_plan([], Platform("windows", "10", "3.12"), {"loop": "uvloop"})
    with pytest.raises(ConfigError, match="pip install uvloop"):
        make_plan([], Platform("linux", "6.1", "3.12"), {"loop": "uvloop"}, installed=frozenset())


@pytest.fixture
def uvloop():
    return pytest.importorskip("uvloop", reason="uvloop installs on POSIX only (a Linux test dependency)")


def test_install_with_prefer_builds_a_real_uvloop_loop_with_guards(uvloop):
    plan = loopcompat.install(prefer=["uvloop"], needs=["subprocess"])
    assert plan.loop == "uvloop"

    async def main():
        loop = asyncio.get_running_loop()
        proc = await asyncio.create_subprocess_exec("true")
        return loop, await proc.wait()

    loop, code = asyncio.run(main())
    assert isinstance(loop, uvloop.Loop) and code == 0 and loop._loopcompat_plan is plan
    fresh = asyncio.new_event_loop()
    try:
        with tempfile.TemporaryFile() as f, pytest.raises(UnsupportedError, match=r"regular file.*\(S1\)"):
            fresh.add_reader(f.fileno(), lambda: None)
    finally:
        fresh.close()


def test_adopt_a_uvloop_loop(uvloop):
    loop = uvloop.new_event_loop()
    try:
        assert loopcompat.adopt(loop) is loop
        assert loop._loopcompat_plan.loop == "uvloop" and isinstance(loop, uvloop.Loop)
        with tempfile.TemporaryFile() as f, pytest.raises(UnsupportedError):
            loop.add_writer(f.fileno(), lambda: None)
        assert loop.run_until_complete(asyncio.sleep(0, 7)) == 7
    finally:
        loop.close()


def test_winloop_is_planned_for_every_need_but_unix_sockets():
    windows = Platform("windows", "10", "3.12")
    plan = make_plan(["subprocess", "pipes", "add_reader", "signals", "udp"], windows, {"prefer": ["winloop"]})
    assert (plan.loop, plan.fallbacks, plan.unmet) == ("winloop", frozenset(), ())
    assert any("X7" in w for w in plan.warnings)  # millisecond timers, as uvloop
    # AF_UNIX is on no Windows loop (S2): winloop, still the preferred one, says so.
    with pytest.warns(RuntimeWarning, match=r"unix_sockets: .*\(S2\)"):
        plan = make_plan(["unix_sockets", "subprocess"], windows, {"prefer": ["winloop"], "on_unsupported": "warn"})
    assert (plan.loop, plan.unmet) == ("winloop", ("unix_sockets",))


@pytest.fixture
def winloop():
    if not IS_WINDOWS:
        pytest.skip("winloop is for Windows only (a Windows test-bed dependency)")
    if sys.version_info < (3, 9):
        pytest.skip("winloop has no build for Python 3.8 (fact X6)")
    import winloop  # the test bed installs it on 3.9+: a missing module is a failure, not a skip

    return winloop


def test_install_with_prefer_builds_a_real_winloop_loop_that_does_what_the_stock_loops_cannot(winloop, tmp_path):
    plan = loopcompat.install(prefer=["winloop"], needs=["subprocess", "pipes", "add_reader", "signals"])
    assert (plan.loop, plan.fallbacks, plan.unmet) == ("winloop", frozenset(), ())
    assert any("(X10)" in warning for warning in plan.warnings)

    async def main():
        loop = asyncio.get_running_loop()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "print(input()[::-1])", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE)
        out, _ = await asyncio.wait_for(proc.communicate(b"olleh\n"), 30)
        a, b = socket.socketpair()  # add_reader, which the proactor loop lacks (S8)
        try:
            readable = loop.create_future()
            loop.add_reader(a, lambda: readable.done() or readable.set_result(a.recv(16)))
            b.send(b"ready")
            got = await asyncio.wait_for(readable, 10)
            assert loop.remove_reader(a) is None  # asyncio returns True here: a winloop gap (X10)
        finally:
            a.close()
            b.close()
        caught = loop.create_future()  # a SIGINT handler, which neither stock loop has (S3)
        loop.add_signal_handler(signal.SIGINT, lambda: caught.done() or caught.set_result("SIGINT"))
        signal.raise_signal(signal.SIGINT)
        signalled = await asyncio.wait_for(caught, 10)
        assert loop.remove_signal_handler(signal.SIGINT) is True
        r, w = os.pipe()  # a file object pipe, which the proactor loop cannot read (X9)
        reader = asyncio.StreamReader()
        with open(r, "rb", buffering=0) as r_file, open(w, "wb", buffering=0) as w_file:
            transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), r_file)
            w_file.write(b"through a pipe")
            piped = await asyncio.wait_for(reader.readexactly(14), 10)
            transport.close()
            await asyncio.sleep(0)
        return loop, out.strip(), got, signalled, piped

    loop, out, got, signalled, piped = asyncio.run(main())
    assert isinstance(loop, winloop.Loop) and loop._loopcompat_plan is plan
    assert (out, got, signalled, piped) == (b"hello", b"ready", "SIGINT", b"through a pipe")
    fresh = asyncio.new_event_loop()
    try:
        path = tmp_path / "regular"
        path.write_bytes(b"x")
        with open(path, "rb") as f, pytest.raises(UnsupportedError, match=r"regular file.*\(S1\)"):
            fresh.add_reader(f.fileno(), lambda: None)
    finally:
        fresh.close()


def test_adopt_a_winloop_loop(winloop):
    loop = winloop.new_event_loop()
    try:
        assert loopcompat.adopt(loop) is loop
        assert loop._loopcompat_plan.loop == "winloop" and isinstance(loop, winloop.Loop)
        assert loop.run_until_complete(asyncio.sleep(0, 7)) == 7
    finally:
        loop.close()
