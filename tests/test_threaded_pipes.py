"""The threaded_pipes fallback: connect_read_pipe()/connect_write_pipe() with real pipes and children.

As in test_threaded_subprocess: on Windows the loop is
``loopcompat.new_event_loop(["pipes"], loop="selector")``; elsewhere the stock
selector loop with its own pipe support switched off. Children write into
and read from ``os.pipe()`` ends; EOF, pausing, buffer limits and closing are
checked as the POSIX loops behave. Every test checks that loop.close() leaves
no thread behind.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Iterator, List, Optional

import pytest

import loopcompat
from loopcompat import UnsupportedError

from .conftest import IS_WINDOWS
from .test_threaded_subprocess import PY, TIMEOUT, closing_loop, fallback_loop, new_threads, run

windows_only = pytest.mark.skipif(not IS_WINDOWS, reason="Windows handles and the proactor loop")
ROOT = str(Path(__file__).resolve().parent.parent)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    yield from closing_loop(["pipes"])


@pytest.fixture
def pipe() -> Iterator[List[Any]]:
    """An os.pipe() as [read end, write end] file objects; whatever a test leaves open is closed."""
    r, w = os.pipe()
    ends = [open(r, "rb", buffering=0), open(w, "wb", buffering=0)]
    yield ends
    for end in ends:
        if not end.closed:
            end.close()


def child(code: str, **kwargs: Any) -> subprocess.Popen:
    """A plain (synchronous) child Python process; the loop under test only sees the pipe."""
    return subprocess.Popen([PY, "-c", code], **kwargs)


class Recorder(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.events: List[Any] = []
        self.data = b""
        self.lost = loop.create_future()
        self.transport: Any = None
        self.paused = False
        self.received_while_paused = 0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.events.append("connection_made")

    def data_received(self, data: bytes) -> None:
        if self.paused:
            self.received_while_paused += 1
        self.data += data

    def eof_received(self) -> None:
        self.events.append("eof_received")

    def pause_writing(self) -> None:
        self.events.append("pause_writing")

    def resume_writing(self) -> None:
        self.events.append("resume_writing")

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.events.append(("connection_lost", type(exc).__name__ if exc else None))
        self.lost.set_result(exc)


# --- reading ------------------------------------------------------------------------------------------


def test_read_pipe_fed_by_a_child_until_eof(loop, pipe):
    r, w = pipe

    async def main():
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), r)
        assert transport.get_extra_info("pipe") is r
        proc = child("import sys\nfor i in range(1000): print('line', i)", stdout=w)
        w.close()  # the child holds the only write end now: EOF when it exits
        lines = []
        while True:
            line = await reader.readline()
            if not line:
                break
            lines.append(line.strip())
        proc.wait()
        return lines, transport.is_closing()

    lines, closing = run(loop, main())
    assert lines == [b"line %d" % i for i in range(1000)] and closing


def test_read_protocol_callbacks_and_close_after_eof(loop, pipe):
    r, w = pipe

    async def main():
        transport, protocol = await loop.connect_read_pipe(lambda: Recorder(loop), r)
        w.write(b"abc")
        w.close()
        await protocol.lost
        return protocol, transport

    protocol, transport = run(loop, main())
    assert protocol.data == b"abc"
    assert protocol.events == ["connection_made", "eof_received", ("connection_lost", None)]
    assert transport.is_closing() and r.closed  # as on POSIX, the pipe object is closed with the transport


def test_large_stream_through_a_pipe(loop, pipe):
    r, w = pipe
    size = 24 * 1024 * 1024

    async def main():
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), r)
        proc = child(f"import sys; sys.stdout.buffer.write(b'p' * {size})", stdout=w)
        w.close()
        total = 0
        while True:
            data = await reader.read(1 << 20)
            if not data:
                break
            total += data.count(b"p")
        return total, proc.wait()

    assert run(loop, main()) == (size, 0)


def test_pause_and_resume_reading(loop, pipe):
    r, w = pipe

    async def main():
        transport, protocol = await loop.connect_read_pipe(lambda: Recorder(loop), r)
        w.write(b"first")
        while not protocol.data:
            await asyncio.sleep(0.01)
        transport.pause_reading()
        protocol.paused = True
        assert not transport.is_reading()
        w.write(b"second")
        w.close()
        for _ in range(20):  # the data and the EOF wait: nothing reaches the protocol
            await asyncio.sleep(0.01)
        seen = (protocol.data, protocol.events[:], protocol.received_while_paused)
        protocol.paused = False
        transport.resume_reading()
        assert transport.is_reading()
        await protocol.lost
        return seen, protocol

    seen, protocol = run(loop, main())
    assert seen == (b"first", ["connection_made"], 0)
    assert protocol.data == b"firstsecond"
    assert protocol.events[1:] == ["eof_received", ("connection_lost", None)]


def test_closing_a_read_pipe_with_a_live_writer_stops_its_thread(loop, pipe):
    # The reader thread is blocked in a read that no data will end (pipe[1] stays open):
    # close() must stop it (CancelSynchronousIo on Windows); the pipe is closed once it is out.
    r = pipe[0]

    async def main():
        transport, protocol = await loop.connect_read_pipe(lambda: Recorder(loop), r)
        await asyncio.sleep(0.05)
        transport.close()
        assert await protocol.lost is None
        for _ in range(1000):
            if r.closed:
                break
            await asyncio.sleep(0.01)
        return protocol.events, r.closed

    events, closed = run(loop, main())
    assert events == ["connection_made", ("connection_lost", None)] and closed
    # The thread closes the pipe as its last act, then returns: give it that moment.
    for thread in [t for t in threading.enumerate() if t.name.startswith("loopcompat-pipe")]:
        thread.join(TIMEOUT)
    assert not [t for t in threading.enumerate() if t.name.startswith("loopcompat-pipe")]


def test_a_data_received_that_raises_does_not_strand_what_follows(loop, pipe):
    """The loop reports the exception; later data, the end of file and connection_lost() still come."""
    r, w = pipe
    errors: List[Any] = []
    loop.set_exception_handler(lambda _, context: errors.append(context.get("exception")))

    class Faulty(Recorder):
        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if len(self.data) == len(data):  # the first delivery
                raise ZeroDivisionError("a bug in the protocol")

    async def main():
        transport, protocol = await loop.connect_read_pipe(lambda: Faulty(loop), r)
        # Blocking the loop while the thread reads: everything waits for it in one batch.
        w.write(b"one")
        time.sleep(0.05)
        w.write(b"two")
        time.sleep(0.05)
        w.close()
        time.sleep(0.1)
        await protocol.lost
        return protocol

    protocol = run(loop, main())
    assert protocol.data == b"onetwo"
    assert protocol.events == ["connection_made", "eof_received", ("connection_lost", None)]
    assert [type(error) for error in errors] == [ZeroDivisionError]


def test_a_regular_file_is_refused_as_on_posix(loop, tmp_path):
    path = tmp_path / "regular.bin"
    path.write_bytes(b"x")

    async def main():
        with open(path, "rb", buffering=0) as regular:
            with pytest.raises(ValueError, match="pipes, sockets and character devices"):
                await loop.connect_read_pipe(asyncio.Protocol, regular)
        with open(path, "wb", buffering=0) as regular:
            with pytest.raises(ValueError, match="pipes, sockets and character devices"):
                await loop.connect_write_pipe(asyncio.Protocol, regular)

    run(loop, main())


# --- writing ------------------------------------------------------------------------------------------


def test_write_pipe_read_by_a_child(loop, pipe):
    r, w = pipe
    code = "import sys; data = sys.stdin.buffer.read(); sys.stdout.write('%d %d' % (len(data), data.count(b'w')))"
    proc = child(code, stdin=r, stdout=subprocess.PIPE)
    r.close()

    async def main():
        transport, protocol = await loop.connect_write_pipe(lambda: Recorder(loop), w)
        assert transport.can_write_eof() and transport.get_extra_info("pipe") is w
        for _ in range(100):
            transport.write(b"w" * 10000)
        transport.write(bytearray(b"w" * 5))
        transport.write(memoryview(b"w" * 5))
        transport.write_eof()  # flushes, then closes: the child sees EOF
        assert transport.is_closing()
        return await protocol.lost, protocol.events

    exc, events = run(loop, main())
    assert exc is None and events[-1] == ("connection_lost", None) and w.closed
    out, _ = proc.communicate(timeout=60)
    assert out == b"1000010 1000010"


def test_write_and_close_in_connection_made_writes_then_loses_the_connection(loop, pipe):
    r, w = pipe

    class Greeter(Recorder):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            transport.write(b"hello")
            transport.close()  # before the transport's thread has started

    async def main():
        transport, protocol = await loop.connect_write_pipe(lambda: Greeter(loop), w)
        await protocol.lost
        return protocol, transport.get_write_buffer_size()

    protocol, buffered = run(loop, main())
    assert protocol.events == ["connection_made", ("connection_lost", None)] and buffered == 0
    assert r.read(100) == b"hello"


def test_write_buffer_limits_pause_and_resume_the_protocol(loop, pipe):
    r, w = pipe

    async def main():
        transport, protocol = await loop.connect_write_pipe(lambda: Recorder(loop), w)
        transport.set_write_buffer_limits(high=4096, low=1024)
        assert transport.get_write_buffer_limits() == (1024, 4096)
        transport.write(b"b" * (2 * 1024 * 1024))  # more than the pipe holds: nobody reads yet
        assert protocol.events == ["connection_made", "pause_writing"]
        for _ in range(20):
            await asyncio.sleep(0.01)
        assert transport.get_write_buffer_size() > 0
        proc = child("import sys; sys.stdout.write(str(len(sys.stdin.buffer.read())))",
                     stdin=r, stdout=subprocess.PIPE)
        r.close()
        while "resume_writing" not in protocol.events:
            await asyncio.sleep(0.01)
        assert transport.get_write_buffer_size() <= 1024
        transport.close()
        await protocol.lost
        return protocol.events, proc

    events, proc = run(loop, main())
    assert events == ["connection_made", "pause_writing", "resume_writing", ("connection_lost", None)]
    assert proc.communicate(timeout=60)[0] == str(2 * 1024 * 1024).encode()


def test_bad_buffer_limits_are_refused(loop, pipe):
    async def main():
        transport, _ = await loop.connect_write_pipe(asyncio.Protocol, pipe[1])
        with pytest.raises(ValueError, match="must be >="):
            transport.set_write_buffer_limits(high=10, low=20)
        transport.close()

    run(loop, main())


def test_abort_drops_unwritten_data_and_stops_a_blocked_writer(loop, pipe):
    w = pipe[1]  # nobody reads pipe[0]

    async def main():
        transport, protocol = await loop.connect_write_pipe(lambda: Recorder(loop), w)
        transport.write(b"a" * (4 * 1024 * 1024))  # the thread blocks: nobody reads
        await asyncio.sleep(0.05)
        transport.abort()
        assert transport.get_write_buffer_size() == 0
        return await protocol.lost

    assert run(loop, main()) is None


def test_writes_after_close_are_dropped_as_on_posix(loop, pipe):
    r, w = pipe

    async def main():
        transport, protocol = await loop.connect_write_pipe(lambda: Recorder(loop), w)
        transport.write(b"kept")
        transport.close()
        transport.write(b"dropped")
        await protocol.lost
        return r.read(100)

    assert run(loop, main()) == b"kept"


def test_writing_to_a_pipe_without_reader_loses_the_connection(loop, pipe):
    r, w = pipe

    async def main():
        transport, protocol = await loop.connect_write_pipe(lambda: Recorder(loop), w)
        r.close()
        transport.write(b"nobody reads this")
        return await protocol.lost

    assert isinstance(run(loop, main()), BrokenPipeError)


def test_write_rejects_what_is_not_bytes(loop, pipe):
    async def main():
        transport, _ = await loop.connect_write_pipe(asyncio.Protocol, pipe[1])
        with pytest.raises(TypeError, match="bytes-like"):
            transport.write("text")
        transport.close()

    run(loop, main())


def test_stream_writer_drain_over_a_pipe(loop, pipe):
    r, w = pipe
    proc = child("import sys; sys.stdout.write(str(len(sys.stdin.buffer.read())))", stdin=r, stdout=subprocess.PIPE)
    r.close()

    async def main():
        transport, protocol = await loop.connect_write_pipe(lambda: asyncio.StreamReaderProtocol(
            asyncio.StreamReader()), w)
        writer = asyncio.StreamWriter(transport, protocol, None, loop)
        for _ in range(32):
            writer.write(b"s" * (256 * 1024))
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    run(loop, main())
    assert proc.communicate(timeout=60)[0] == str(32 * 256 * 1024).encode()


# --- stdin and stdout of a process -----------------------------------------------------------------------

STDIO_CHILD = r"""
import asyncio, sys
sys.path.insert(0, sys.argv[1])
from loopcompat.testing import threaded_io_loop

async def main(loop):
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(
        lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader()), sys.stdout)
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    count = 0
    while True:
        line = await reader.readline()
        if not line:
            break
        count += 1
        writer.write(line.upper())
        await writer.drain()
    writer.write(b"lines: %d\n" % count)
    writer.close()
    await writer.wait_closed()

if sys.argv[2] == "fallback":
    loop = threaded_io_loop(["pipes"])
else:  # what an application gets: the platform's default loop, planned for pipes
    import loopcompat
    loop = loopcompat.new_event_loop(["pipes"], config=False)
sys.stderr.write(type(loop).__name__ + "\n")
try:
    loop.run_until_complete(main(loop))
finally:
    loop.close()
"""


@pytest.mark.parametrize("which", ["fallback", "default"])
def test_sys_stdin_and_sys_stdout_as_pipes(which):
    lines = b"".join(b"line %d\n" % i for i in range(5000))
    result = subprocess.run([PY, "-c", STDIO_CHILD, ROOT, which], input=lines, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert result.stdout.replace(b"\r\n", b"\n") == lines.upper() + b"lines: 5000\n"
    if IS_WINDOWS and which == "default":  # stdin on the proactor loop (X9), through threaded_pipes
        assert result.stderr.decode().split() == ["ProactorEventLoop"]


# --- loop.close() and the explicit switch -------------------------------------------------------------


def test_loop_close_stops_the_threads_of_unclosed_transports(pipe):
    r, w = pipe
    before = threading.enumerate()
    loop = fallback_loop(["pipes"])
    try:
        run(loop, loop.connect_read_pipe(asyncio.Protocol, r))
        run(loop, loop.connect_write_pipe(asyncio.Protocol, w))
        assert len(new_threads(before)) == 2
    finally:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loop.close()
    assert new_threads(before) == []
    assert sum("unclosed transport" in str(w.message) for w in caught) == 2
    assert r.closed and w.closed


def test_loop_close_with_resource_warnings_as_errors_still_stops_everything(pipe):
    """Under -W error (or pytest's filterwarnings = error) the warning is raised, after the work is done."""
    r, w = pipe
    before = threading.enumerate()
    loop = fallback_loop(["pipes"])
    run(loop, loop.connect_read_pipe(asyncio.Protocol, r))
    run(loop, loop.connect_write_pipe(asyncio.Protocol, w))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ResourceWarning, match="unclosed transport"):
            loop.close()
    assert loop.is_closed() and new_threads(before) == []
    assert r.closed and w.closed


@windows_only
def test_without_the_declared_need_the_fallback_stays_off(pipe):
    loop = loopcompat.new_event_loop(loop="selector")
    try:
        with pytest.raises(UnsupportedError, match=r"connect_read_pipe\(\).*\(S6\)"):
            run(loop, loop.connect_read_pipe(asyncio.Protocol, pipe[0]))
    finally:
        loop.close()


@windows_only
def test_a_socket_is_refused_with_a_remedy(loop):
    a, b = socket.socketpair()
    try:
        with pytest.raises(UnsupportedError, match="create_connection"):
            run(loop, loop.connect_read_pipe(asyncio.Protocol, a))
    finally:
        a.close()
        b.close()


# --- the proactor loop and handles it cannot use (issue 5, item 2) ----------------------------------------


@windows_only
def test_stock_proactor_cannot_read_an_os_pipe(pipe):
    # The proactor loop takes fileno() for an overlapped HANDLE; a file object's fileno() is a
    # C runtime descriptor. Its first read fails with that OSError, and its error path then
    # fails too (AttributeError: no _empty_waiter, 3.8-3.13): the exception handler hears of
    # it, the protocol never does, and no data ever arrives.
    r, w = pipe
    loop = asyncio.ProactorEventLoop()
    errors: List[BaseException] = []
    try:
        async def main():
            failed = loop.create_future()

            def handler(_loop, context):
                errors.append(context.get("exception"))
                failed.done() or failed.set_result(None)

            loop.set_exception_handler(handler)
            transport, protocol = await loop.connect_read_pipe(lambda: Recorder(loop), r)
            w.write(b"never seen")
            await asyncio.wait([failed, protocol.lost], return_when=asyncio.FIRST_COMPLETED)
            data = protocol.data
            transport.close()
            await asyncio.sleep(0.05)
            return data

        assert run(loop, main()) == b""
    finally:
        loop.close()
    causes = [e for exc in errors for e in (exc, exc.__context__) if isinstance(e, OSError)]
    assert causes and causes[0].winerror in (6, 87)


@windows_only
def test_the_default_proactor_plan_refuses_a_file_object_pipe_with_the_reason_instead_of_hanging(pipe):
    # Without needs=["pipes"] the proactor loop keeps its own pipe transports; X9's check turns the
    # silent hang above into an UnsupportedError, and the pipe and the loop stay usable.
    r, w = pipe
    loop = loopcompat.new_event_loop(config=False)
    try:
        assert type(loop).__mro__[1] is asyncio.ProactorEventLoop and not loop._loopcompat_plan.fallbacks
        for method, end in (("connect_read_pipe", r), ("connect_write_pipe", w)):
            with pytest.raises(UnsupportedError, match=method + r"\(\).*file object.*\(X9\).*needs=\['pipes'\]"):
                run(loop, getattr(loop, method)(asyncio.Protocol, end))
        assert not r.closed and not w.closed
        w.write(b"still a pipe")
        assert r.read(12) == b"still a pipe"
        assert run(loop, asyncio.sleep(0, "alive")) == "alive"
    finally:
        loop.close()


@windows_only
def test_the_pipes_plan_on_proactor_reads_a_child_through_os_pipe_and_runs_native_subprocesses(pipe):
    from asyncio import proactor_events

    from loopcompat._fallbacks._threaded_pipes import ThreadedReadPipeTransport

    r, w = pipe
    before = threading.enumerate()
    loop = loopcompat.new_event_loop(["pipes", "subprocess"], config=False)
    size = 4 * 1024 * 1024
    try:
        assert isinstance(loop, asyncio.ProactorEventLoop)
        assert loop._loopcompat_plan.fallbacks == frozenset({"threaded_pipes"})
        writer = child(f"import sys; sys.stdout.buffer.write(b'p' * {size})", stdout=w)
        w.close()  # the child holds the only write end: EOF when it exits

        async def main():
            transport, protocol = await loop.connect_read_pipe(lambda: Recorder(loop), r)
            assert isinstance(transport, ThreadedReadPipeTransport)
            await protocol.lost
            # The loop's own overlapped pipes (a subprocess) stay native, next to the threaded ones.
            proc = await asyncio.create_subprocess_exec(PY, "-c", "print(input()[::-1])", stdin=asyncio.subprocess.PIPE,
                                                        stdout=asyncio.subprocess.PIPE)
            assert isinstance(proc._transport.get_pipe_transport(1), proactor_events._ProactorReadPipeTransport)
            out, _ = await proc.communicate(b"olleh\n")
            return len(protocol.data), protocol.events, out.strip()

        length, events, out = run(loop, main())
        assert writer.wait(timeout=60) == 0
        assert length == size and events[-2:] == ["eof_received", ("connection_lost", None)]
        assert out == b"hello"
    finally:
        loop.close()
    assert new_threads(before) == []


@windows_only
def test_proactor_with_the_mixin_reads_and_writes_os_pipes_and_keeps_its_own_handles():
    from asyncio import proactor_events, windows_utils

    from loopcompat._fallbacks._threaded_pipes import ThreadedPipesMixin, ThreadedReadPipeTransport

    cls = type("ProactorWithThreadedPipes", (ThreadedPipesMixin, asyncio.ProactorEventLoop), {})
    before = threading.enumerate()
    loop = cls()
    r, w = os.pipe()
    r_file, w_file = open(r, "rb", buffering=0), open(w, "wb", buffering=0)
    h_read, h_write = windows_utils.pipe(overlapped=(True, True))
    native_r, native_w = windows_utils.PipeHandle(h_read), windows_utils.PipeHandle(h_write)
    try:
        async def main():
            transport, protocol = await loop.connect_read_pipe(lambda: Recorder(loop), r_file)
            writer, _ = await loop.connect_write_pipe(lambda: Recorder(loop), w_file)
            writer.write(b"through threads")
            writer.close()
            await protocol.lost
            native, nprotocol = await loop.connect_read_pipe(lambda: Recorder(loop), native_r)
            assert isinstance(native, proactor_events._ProactorReadPipeTransport)
            assert isinstance(transport, ThreadedReadPipeTransport)
            native_w.close()
            await nprotocol.lost
            return protocol.data, nprotocol.events

        data, native_events = run(loop, main())
        assert data == b"through threads"
        assert native_events[-1] == ("connection_lost", None)
    finally:
        loop.close()
    assert new_threads(before) == []
