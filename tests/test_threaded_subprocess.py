"""The threaded_subprocess fallback, on real loops and real child processes.

On Windows (the test bed runs this under Wine, every version) the loop is
the one users get: ``loopcompat.new_event_loop(["subprocess"], loop="selector")``,
the stock selector loop, which has no subprocess support of its own (S7).
Elsewhere it is the stock selector loop with its own subprocess and pipe
support switched off, built by loopcompat for a simulated Windows plan, so
the same fallback code runs here too.

The scenarios follow CPython's Lib/test/test_asyncio/test_subprocess.py.
Every test ends with loop.close() and checks that no thread is left behind.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from typing import Any, Iterator, List, Sequence

import pytest

import loopcompat
from loopcompat import Platform, UnsupportedError
from loopcompat._planner import make_plan

from .conftest import IS_WINDOWS
from loopcompat.testing import threaded_io_loop

PY = sys.executable
CAT = "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())"
UPPER = "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read().upper())"
SLEEP = "import time; time.sleep(60)"
HUP_DEFAULT = "import signal, time; signal.signal(signal.SIGHUP, signal.SIG_DFL); print('ready', flush=True); time.sleep(60)"
TIMEOUT = 60


def fallback_loop(needs: Sequence[str]) -> asyncio.AbstractEventLoop:
    """The selector loop with the threaded fallbacks for ``needs``, as loopcompat builds it."""
    return threaded_io_loop(needs)


def new_threads(before: Sequence[threading.Thread]) -> List[str]:
    return sorted(t.name for t in threading.enumerate() if t not in before and t.is_alive())


def closing_loop(needs: Sequence[str]) -> Iterator[asyncio.AbstractEventLoop]:
    before = threading.enumerate()
    loop = fallback_loop(needs)
    try:
        yield loop
    finally:
        loop.close()
    assert new_threads(before) == [], "loop.close() left threads behind"


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    yield from closing_loop(["subprocess"])


def run(loop: asyncio.AbstractEventLoop, coro: Any) -> Any:
    return loop.run_until_complete(asyncio.wait_for(coro, TIMEOUT))


def exec_py(code: str, **kwargs: Any) -> Any:
    return asyncio.create_subprocess_exec(PY, "-c", code, **kwargs)


PIPE, STDOUT, DEVNULL = subprocess.PIPE, subprocess.STDOUT, subprocess.DEVNULL


# --- the plan and the loop --------------------------------------------------------------------------


def test_the_loop_is_the_selector_loop_with_the_fallback(loop):
    assert isinstance(loop, asyncio.SelectorEventLoop)
    plan = loop._loopcompat_plan if IS_WINDOWS else make_plan(
        ["subprocess"], Platform("windows", "10", "3.13"), {"loop": "selector"})
    assert plan.loop == "selector" and "threaded_subprocess" in plan.fallbacks
    support = plan.support("subprocess")
    assert support.level == "fallback" and support.fallback == "threaded_subprocess"
    assert "ThreadedSubprocessMixin" in [cls.__name__ for cls in type(loop).__mro__]


@pytest.mark.skipif(not IS_WINDOWS, reason="the stock Windows selector loop")
def test_without_the_declared_need_the_fallback_stays_off():
    loop = loopcompat.new_event_loop(loop="selector")
    try:
        with pytest.raises(UnsupportedError, match=r"\(S7\)"):
            run(loop, exec_py("pass"))
    finally:
        loop.close()


# --- the scenarios of CPython's test_subprocess --------------------------------------------------------


def test_stdin_stdout(loop):
    async def main():
        proc = await exec_py(CAT, stdin=PIPE, stdout=PIPE)
        proc.stdin.write(b"Python The Winner")
        await proc.stdin.drain()
        proc.stdin.close()
        data = await proc.stdout.read()
        return data, await proc.wait()

    assert run(loop, main()) == (b"Python The Winner", 0)


def test_communicate(loop):
    async def main():
        proc = await exec_py(UPPER + "; sys.stderr.write('err')", stdin=PIPE, stdout=PIPE, stderr=PIPE)
        out, err = await proc.communicate(b"some data")
        return out, err, proc.returncode

    assert run(loop, main()) == (b"SOME DATA", b"err", 0)


@pytest.mark.parametrize("data", [None, b""])
def test_communicate_none_or_empty_input(loop, data):
    async def main():
        proc = await exec_py(CAT, stdin=PIPE, stdout=PIPE)
        if data is None and sys.version_info < (3, 12):
            proc.stdin.close()  # before 3.12, communicate(None) leaves stdin open (stock behaviour)
        out, _ = await proc.communicate(data)
        return out, proc.returncode

    assert run(loop, main()) == (b"", 0)


def test_shell(loop):
    async def main():
        proc = await asyncio.create_subprocess_shell("exit 7")
        return await proc.wait()

    assert run(loop, main()) == 7


def test_shell_output(loop):
    async def main():
        proc = await asyncio.create_subprocess_shell("echo hello", stdout=PIPE)
        out, _ = await proc.communicate()
        return out.strip(), proc.returncode

    assert run(loop, main()) == (b"hello", 0)


def test_returncode_is_none_until_the_exit_is_seen(loop):
    async def main():
        proc = await exec_py("import sys; sys.stdin.read(); sys.exit(3)", stdin=PIPE)
        before = proc.returncode
        proc.stdin.close()
        return before, await proc.wait(), proc.returncode

    assert run(loop, main()) == (None, 3, 3)


def test_stderr_redirected_to_stdout(loop):
    async def main():
        code = "import sys; sys.stdout.write('out'); sys.stdout.flush(); sys.stderr.write('err')"
        proc = await exec_py(code, stdout=PIPE, stderr=STDOUT)
        assert proc.stderr is None
        out, err = await proc.communicate()
        return out, err, proc.returncode

    assert run(loop, main()) == (b"outerr", None, 0)


def test_devnull_everywhere(loop):
    async def main():
        code = "import sys; print('lost'); print('lost', file=sys.stderr); sys.exit(len(sys.stdin.read()))"
        proc = await exec_py(code, stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL)
        assert (proc.stdin, proc.stdout, proc.stderr) == (None, None, None)
        return await proc.wait()

    assert run(loop, main()) == 0


def test_files_and_none(loop, tmp_path):
    source, target = tmp_path / "in.bin", tmp_path / "out.bin"
    source.write_bytes(b"from a file")

    async def main():
        with open(source, "rb") as stdin, open(target, "wb") as stdout:
            proc = await exec_py(UPPER, stdin=stdin, stdout=stdout, stderr=None)
            return await proc.wait()

    assert run(loop, main()) == 0
    assert target.read_bytes() == b"FROM A FILE"


def test_stdin_from_a_file_descriptor_and_stdout_to_a_pipe(loop, tmp_path):
    source = tmp_path / "in.bin"
    source.write_bytes(b"by descriptor")
    fd = os.open(str(source), os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        async def main():
            proc = await exec_py(CAT, stdin=fd, stdout=PIPE)
            return await proc.communicate()

        assert run(loop, main()) == (b"by descriptor", None)
    finally:
        os.close(fd)


def test_large_output_without_deadlock(loop):
    size = 32 * 1024 * 1024

    async def main():
        code = f"import sys; sys.stdout.buffer.write(b'x' * {size})"
        proc = await exec_py(code, stdout=PIPE)
        out, _ = await proc.communicate()
        return len(out), out.count(b"x"), proc.returncode

    assert run(loop, main()) == (size, size, 0)


def test_large_stdout_and_stderr_at_once(loop):
    # a child that fills both pipes in turns deadlocks a parent that drains only one
    size = 8 * 1024 * 1024
    code = (
        "import sys\nblock = b'%s' * 65536\n"
        f"for _ in range({size // 65536}):\n"
        "    sys.stdout.buffer.write(block.replace(b'%s', b'o')); sys.stderr.buffer.write(block.replace(b'%s', b'e'))"
    ).replace("%s", "z")

    async def main():
        proc = await exec_py(code, stdout=PIPE, stderr=PIPE)
        out, err = await proc.communicate()
        return len(out), len(err), out.strip(b"o"), err.strip(b"e")

    assert run(loop, main()) == (size, size, b"", b"")


def test_large_input_and_output_at_once(loop):
    data = bytes(range(256)) * (64 * 1024)  # 16 MB, every byte value

    async def main():
        proc = await exec_py(CAT, stdin=PIPE, stdout=PIPE)
        out, _ = await proc.communicate(data)
        return out == data, proc.returncode

    assert run(loop, main()) == (True, 0)


def test_small_stream_limit_pauses_and_resumes_the_pipe(loop):
    lines = 20000

    async def main():
        code = f"import sys\nfor i in range({lines}): print(i)"
        proc = await exec_py(code, stdout=PIPE, limit=64)
        count = 0
        while await proc.stdout.readline():
            count += 1
        return count, await proc.wait()

    assert run(loop, main()) == (lines, 0)


def test_read_stdout_after_the_process_exited(loop):
    async def main():
        proc = await exec_py("import sys; sys.stdout.write('x' * 1000)", stdout=PIPE)
        code = await proc.wait()
        return code, await proc.stdout.read()

    assert run(loop, main()) == (0, b"x" * 1000)


def test_kill(loop):
    async def main():
        proc = await exec_py(SLEEP)
        proc.kill()
        return await proc.wait()

    # TerminateProcess(handle, 1) on Windows; SIGKILL on POSIX
    assert run(loop, main()) == (1 if IS_WINDOWS else -signal.SIGKILL)


def test_terminate(loop):
    async def main():
        proc = await exec_py(SLEEP)
        proc.terminate()
        return await proc.wait()

    assert run(loop, main()) == (1 if IS_WINDOWS else -signal.SIGTERM)


def test_send_signal(loop):
    async def main():
        if IS_WINDOWS:
            proc = await exec_py(SLEEP)
        else:
            # SIGHUP's default action, whatever this process inherited (under nohup it is ignored,
            # and the disposition passes on to children); "ready" once it is in place.
            proc = await exec_py(HUP_DEFAULT, stdout=PIPE)
            assert await proc.stdout.readline() == b"ready\n"
        try:
            if IS_WINDOWS:
                # (CTRL_C_EVENT and CTRL_BREAK_EVENT, 0 and 1, pass through as on the proactor loop)
                for sig in (signal.SIGINT, signal.SIGBREAK, signal.SIGABRT):
                    with pytest.raises(UnsupportedError) as info:
                        proc.send_signal(sig)
                    # also what the stock proactor loop raises, so existing handlers keep working
                    assert isinstance(info.value, ValueError) and isinstance(info.value, NotImplementedError)
                    assert "Remedy:" in str(info.value) and "CTRL_BREAK_EVENT" in str(info.value)
                assert proc.returncode is None
                proc.send_signal(signal.SIGTERM)  # Windows can do this one: TerminateProcess
                return await proc.wait()
            proc.send_signal(signal.SIGHUP)
            return await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    assert run(loop, main()) == (1 if IS_WINDOWS else -signal.SIGHUP)


def test_stdin_broken_pipe(loop):
    async def main():
        proc = await exec_py("pass", stdin=PIPE)
        await proc.wait()
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            for _ in range(64):
                proc.stdin.write(b"x" * 65536)
                await proc.stdin.drain()
        return proc.returncode

    assert run(loop, main()) == 0


def test_communicate_ignores_a_broken_pipe(loop):
    async def main():
        proc = await exec_py("pass", stdin=PIPE, stdout=PIPE)
        await proc.wait()
        return await proc.communicate(b"x" * (4 * 1024 * 1024)), proc.returncode

    assert run(loop, main()) == ((b"", None), 0)


def test_stdin_held_by_a_grandchild_is_seen_closing_after_the_child_exits(loop):
    """The child exits at once; a grandchild holds its stdin for a while. The POSIX loops
    report stdin's end when the grandchild lets go, and so must the fallback."""
    code = ("import subprocess, sys; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(1)'], "
            "stdin=sys.stdin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)")

    class Watcher(asyncio.SubprocessProtocol):
        def __init__(self) -> None:
            self.events: List[Any] = []
            self.lost = loop.create_future()

        def pipe_connection_lost(self, fd: int, exc: Any) -> None:
            self.events.append(("pipe_connection_lost", fd))

        def process_exited(self) -> None:
            self.events.append("process_exited")

        def connection_lost(self, exc: Any) -> None:
            self.events.append("connection_lost")
            self.lost.set_result(None)

    async def main():
        transport, protocol = await loop.subprocess_exec(Watcher, PY, "-c", code, stdin=PIPE)
        try:
            await protocol.lost
        finally:
            transport.close()
        return protocol.events, transport.get_returncode()

    events, returncode = run(loop, main())
    assert returncode == 0
    assert events.index("process_exited") < events.index(("pipe_connection_lost", 0))
    assert events[-1] == "connection_lost"


def test_drain_follows_the_write_buffer(loop):
    async def main():
        code = "import sys; sys.stdout.write(str(len(sys.stdin.buffer.read())))"
        proc = await exec_py(code, stdin=PIPE, stdout=PIPE)
        transport = proc.stdin.transport
        assert transport.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
        for _ in range(16):
            proc.stdin.write(b"d" * (1024 * 1024))
            assert transport.get_write_buffer_size() > 0
            await proc.stdin.drain()
            assert transport.get_write_buffer_size() <= 16 * 1024
        out, _ = await proc.communicate(b"")
        return int(out), proc.returncode

    assert run(loop, main()) == (16 * 1024 * 1024, 0)


def test_cancel_process_wait(loop):
    async def main():
        proc = await exec_py(SLEEP)
        task = asyncio.ensure_future(proc.wait())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert proc.returncode is None  # cancelling the wait leaves the process alone
        proc.kill()
        return await proc.wait()

    assert run(loop, main()) == (1 if IS_WINDOWS else -signal.SIGKILL)


def test_cancel_communicate_then_kill(loop):
    async def main():
        proc = await exec_py("import sys, time; sys.stdout.write('partial'); sys.stdout.flush(); time.sleep(60)",
                             stdout=PIPE)
        assert await proc.stdout.readexactly(7) == b"partial"
        task = asyncio.ensure_future(proc.communicate())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        proc.kill()
        return await proc.wait()

    assert run(loop, main()) == (1 if IS_WINDOWS else -signal.SIGKILL)


def test_cancel_while_the_transport_is_being_made(loop):
    pids = []

    async def main():
        task = loop.create_task(exec_py(SLEEP, stdout=PIPE))
        loop.call_soon(task.cancel)
        with pytest.raises(asyncio.CancelledError):
            await task
        # the half-made process was closed, killed and waited for: nothing is left running
        for transport in _live_subprocess_transports(loop):
            pids.append(transport.get_pid())

    run(loop, main())
    assert pids == []


def _live_subprocess_transports(loop):
    workers = loop.__dict__.get("_loopcompat_io_workers", ())
    return [w for w in workers if hasattr(w, "get_pid") and w.get_returncode() is None]


def test_closing_the_transport_kills_a_running_child(loop):
    async def main():
        proc = await exec_py(SLEEP, stdout=PIPE)
        proc._transport.close()
        return await proc.wait()

    assert run(loop, main()) == (1 if IS_WINDOWS else -signal.SIGKILL)


def test_popen_error_is_raised_and_leaves_nothing_behind(loop, tmp_path):
    async def main():
        with pytest.raises(OSError):
            await asyncio.create_subprocess_exec(str(tmp_path / "no-such-program.exe"), stdout=PIPE)

    run(loop, main())


def test_env_and_cwd_reach_the_child(loop, tmp_path):
    async def main():
        code = "import os, sys; sys.stdout.write(os.environ['LOOPCOMPAT_TEST_VALUE'] + '|' + os.getcwd())"
        env = dict(os.environ, LOOPCOMPAT_TEST_VALUE="42")
        proc = await exec_py(code, stdout=PIPE, env=env, cwd=str(tmp_path))
        out, _ = await proc.communicate()
        return out.decode()

    value, cwd = run(loop, main()).split("|")
    assert value == "42" and os.path.normcase(os.path.realpath(cwd)) == os.path.normcase(os.path.realpath(tmp_path))


def test_many_children_at_once(loop):
    async def one(index):
        proc = await exec_py(UPPER, stdin=PIPE, stdout=PIPE, stderr=PIPE)
        out, err = await proc.communicate(b"child %d" % index)
        return out, err, proc.returncode

    async def main():
        return await asyncio.gather(*(one(i) for i in range(12)))

    assert run(loop, main()) == [(b"CHILD %d" % i, b"", 0) for i in range(12)]


# --- the protocol level: what asyncio.subprocess relies on ----------------------------------------------


class RecordingProtocol(asyncio.SubprocessProtocol):
    def __init__(self, loop):
        self.events: List[Any] = []
        self.data = {1: b"", 2: b""}
        self.done = loop.create_future()
        self.transport: Any = None

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("connection_made")

    def pipe_data_received(self, fd, data):
        self.data[fd] += data

    def pipe_connection_lost(self, fd, exc):
        self.events.append(("pipe_connection_lost", fd, exc))

    def process_exited(self):
        self.events.append("process_exited")

    def connection_lost(self, exc):
        self.events.append(("connection_lost", exc))
        self.done.set_result(None)


def test_protocol_callbacks_in_order(loop):
    async def main():
        code = "import sys; sys.stdout.write(sys.stdin.read()); sys.stderr.write('e')"
        transport, protocol = await loop.subprocess_exec(
            lambda: RecordingProtocol(loop), PY, "-c", code, stdin=PIPE, stdout=PIPE, stderr=PIPE)
        assert protocol.transport is transport and transport.get_pid() > 0
        stdin = transport.get_pipe_transport(0)
        assert transport.get_pipe_transport(1) is not None and transport.get_pipe_transport(2) is not None
        stdin.write(b"echo")
        stdin.close()
        await protocol.done
        transport.close()
        return protocol, transport

    protocol, transport = run(loop, main())
    assert protocol.data == {1: b"echo", 2: b"e"}
    assert transport.get_returncode() == 0
    events = protocol.events
    assert events[0] == "connection_made" and events[-1] == ("connection_lost", None)
    assert sorted(e for e in events if isinstance(e, tuple) and e[0] == "pipe_connection_lost") == [
        ("pipe_connection_lost", 0, None), ("pipe_connection_lost", 1, None), ("pipe_connection_lost", 2, None)]
    assert events.index("process_exited") < len(events) - 1


def test_stdin_left_open_is_reported_lost_once_the_child_exits(loop):
    # Nobody closes stdin here: on POSIX the loop notices that the reader is gone; the fallback
    # checks when the child exits, so connection_lost() (and wait() on 3.13+) still come.
    async def main():
        transport, protocol = await loop.subprocess_exec(
            lambda: RecordingProtocol(loop), PY, "-c", "pass", stdin=PIPE)
        await protocol.done
        code = await transport._wait()
        transport.close()
        return code, protocol.events

    code, events = run(loop, main())
    assert code == 0
    assert ("pipe_connection_lost", 0, None) in events and events[-1] == ("connection_lost", None)


def test_pause_writing_and_resume_writing_reach_the_protocol(loop):
    class Writer(RecordingProtocol):
        def pause_writing(self):
            self.events.append("pause_writing")

        def resume_writing(self):
            self.events.append("resume_writing")

    async def main():
        code = "import sys; sys.stdout.write(str(len(sys.stdin.buffer.read())))"
        transport, protocol = await loop.subprocess_exec(
            lambda: Writer(loop), PY, "-c", code, stdin=PIPE, stdout=PIPE)
        stdin = transport.get_pipe_transport(0)
        stdin.set_write_buffer_limits(high=8192)
        assert stdin.get_write_buffer_limits() == (2048, 8192)
        stdin.write(b"w" * (4 * 1024 * 1024))
        assert stdin.get_write_buffer_size() == 4 * 1024 * 1024
        stdin.close()
        await protocol.done
        transport.close()
        return protocol

    protocol = run(loop, main())
    assert protocol.events.count("pause_writing") == protocol.events.count("resume_writing") == 1
    assert protocol.events.index("pause_writing") < protocol.events.index("resume_writing")
    assert protocol.data[1] == str(4 * 1024 * 1024).encode()


# --- threads and loop.close() ---------------------------------------------------------------------------


def test_each_process_has_its_threads_and_they_end_with_it(loop):
    async def main():
        proc = await exec_py(CAT, stdin=PIPE, stdout=PIPE, stderr=PIPE)
        names = sorted(t.name for t in threading.enumerate() if t.name.startswith("loopcompat-"))
        await proc.communicate(b"x")
        for _ in range(1000):  # the threads end as their pipes and the process end
            if not any(t.name.startswith("loopcompat-") for t in threading.enumerate()):
                break
            await asyncio.sleep(0.01)
        return names, sorted(t.name for t in threading.enumerate() if t.name.startswith("loopcompat-"))

    during, after = run(loop, main())
    assert len(during) == 4 and sum("exit" in name for name in during) == 1
    assert after == []


def test_loop_close_kills_a_child_still_running_and_leaves_no_thread():
    before = threading.enumerate()
    loop = fallback_loop(["subprocess"])
    try:
        proc = run(loop, exec_py(SLEEP, stdin=PIPE, stdout=PIPE, stderr=PIPE))
        popen = proc._transport.get_extra_info("subprocess")
    finally:
        with pytest.warns(ResourceWarning, match="unclosed transport"):
            loop.close()
    assert new_threads(before) == []
    assert popen.poll() == (1 if IS_WINDOWS else -signal.SIGKILL)


def test_asyncio_run_with_the_fallback_loop():
    before = threading.enumerate()

    async def main():
        proc = await exec_py(UPPER, stdin=PIPE, stdout=PIPE)
        return (await proc.communicate(b"via asyncio.run"))[0]

    if sys.version_info >= (3, 12):
        result = asyncio.run(main(), loop_factory=lambda: fallback_loop(["subprocess"]))
    else:
        loop = fallback_loop(["subprocess"])
        try:
            result = loop.run_until_complete(main())
        finally:
            loop.close()
    assert result == b"VIA ASYNCIO.RUN"
    assert new_threads(before) == []
