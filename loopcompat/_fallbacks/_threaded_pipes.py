"""The threaded_pipes fallback: pipe transports driven by one thread per pipe end.

Some facts about pipes on Windows, which this module is built around:

* ``select()`` watches sockets only, so the selector loop has no pipe (or
  subprocess) transports at all (facts S5-S7).
* The proactor loop reads and writes through an I/O completion port, which
  needs a Win32 HANDLE opened for overlapped I/O. It takes ``pipe.fileno()``
  to be that HANDLE. For every Python file object (``open(fd, "rb")``,
  ``sys.stdin``, ``subprocess.Popen(...).stdout``) ``fileno()`` is a C runtime
  file descriptor, a small integer that is not a HANDLE at all, and the
  handles behind them (anonymous pipes from ``CreatePipe``, consoles) are
  synchronous anyway. Such pipes fail there ([WinError 6] or [WinError 87]).
* What works on every handle is a blocking ``ReadFile``/``WriteFile``. So a
  thread per pipe end does exactly that and hands the result to the loop
  with ``call_soon_threadsafe``. Reads are up to 256 KiB, as on the POSIX
  loops; a batch the loop has not picked up yet is extended rather than
  posted again, so a busy pipe costs one loop wake-up per batch, not per
  read, and a reader reads ahead at most 1 MiB of what the loop has not taken.
* A thread blocked in ``ReadFile`` is stopped with ``CancelSynchronousIo``
  (Vista+), which makes the call fail with ERROR_OPERATION_ABORTED. Closing
  the handle is no substitute: Windows makes ``CloseHandle`` on a synchronous
  handle wait for the I/O in progress, and the C runtime's ``close()`` takes
  the same per-descriptor lock its ``read()`` holds. So the pipe is closed by
  whichever side lets go of it last: the loop (after ``connection_lost``) or
  the thread (once it is out of the blocking call).
* Windows tells nobody when the reading end of an idle anonymous pipe goes
  away; a zero-byte ``WriteFile`` then fails with ERROR_NO_DATA. A write
  transport finds out at its next write, or when its subprocess exits (see
  ``_threaded_subprocess``), where the POSIX loops would notice at once.

On POSIX the same transports run with ``poll()`` on the pipe and a wake-up
pipe instead of ``CancelSynchronousIo``, so the fallback is exercised (and
tested) on Linux too, against loops whose native pipe support is switched off.

Every thread is registered with its loop; the mixins' ``close()`` stops and
joins them, so a closed loop leaves no thread behind.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import os
import select
import stat
import sys
import threading
import time
import warnings
import weakref
from asyncio import proactor_events
from asyncio.log import logger
from typing import TYPE_CHECKING, Any, Callable, Deque, List, Optional, Set, Tuple, Union

from .._errors import UnsupportedError
from .._guards import has_crt_descriptor, windows_console

if sys.platform == "win32":
    import _winapi
    import msvcrt

if TYPE_CHECKING:  # the mixins are only ever combined with a stock loop class
    _LoopBase = asyncio.BaseEventLoop
else:
    _LoopBase = object

READ_CHUNK = 256 * 1024  # bytes per blocking read (what the POSIX pipe transports read per event)
WRITE_CHUNK = 1024 * 1024  # bytes per blocking write: small writes are joined up to this size
INBOX_LIMIT = 1024 * 1024  # a reader thread waits while this much read data is not yet taken by the loop
JOIN_SECONDS = 5.0  # loop.close() waits this long, in all, for stopped threads to end
CONNLOST_WRITES_WARNING = 5  # as asyncio: warn after this many writes to a lost pipe
# A child's stdin after the child exited: probed for its reader after 50 ms, then twice as
# late each time, at least once a second (see ThreadedWritePipeTransport._watch_peer).
PEER_PROBE_FIRST = 0.05
PEER_PROBE_LAST = 1.0

ERROR_BROKEN_PIPE = 109  # the other end of the pipe is closed
ERROR_NO_DATA = 232  # "the pipe is being closed": written to a pipe whose reader is gone
ERROR_OPERATION_ABORTED = 995  # CancelSynchronousIo stopped the call

_THREADS = "_loopcompat_io_threads"  # loop attribute: set of live worker threads
_WORKERS = "_loopcompat_io_workers"  # loop attribute: weak set of transports with threads


# --- worker threads and the loop ------------------------------------------------------------------


def start_thread(loop: asyncio.AbstractEventLoop, target: Callable[[], None], name: str) -> threading.Thread:
    """Start a daemon thread that the loop's close() will wait for."""
    threads: Set[threading.Thread] = loop.__dict__.setdefault(_THREADS, set())

    def run() -> None:
        try:
            target()
        finally:
            threads.discard(thread)

    thread = threading.Thread(target=run, name=name, daemon=True)
    threads.add(thread)
    try:
        thread.start()
    except BaseException:
        threads.discard(thread)
        raise
    return thread


def register_worker(loop: asyncio.AbstractEventLoop, worker: Any) -> None:
    """Remember a transport whose ``_loop_closing()`` must run when the loop closes."""
    workers = loop.__dict__.get(_WORKERS)
    if workers is None:
        workers = loop.__dict__[_WORKERS] = weakref.WeakSet()
    workers.add(worker)


def post(loop: asyncio.AbstractEventLoop, callback: Callable[..., Any], *args: Any) -> bool:
    """From a worker thread: run ``callback(*args)`` on the loop. False once the loop is closed."""
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:  # "Event loop is closed": nobody is left to tell
        return False
    return True


def stop_io_threads(loop: asyncio.AbstractEventLoop) -> None:
    """Stop every transport and thread of ``loop`` and wait for the threads (loop.close()).

    A write pipe closed with data still to write gets to finish, as long as its
    reader reads (the POSIX loops would have written most of it at once); every
    other thread is stopped at once.
    """
    workers = list(loop.__dict__.get(_WORKERS, ()))
    workers.sort(key=lambda worker: not hasattr(worker, "get_pid"))  # processes first: their pipes end too
    raised: List[BaseException] = []  # (ResourceWarnings made errors by -W error): raised once all stopped
    for worker in workers:
        try:
            worker._loop_closing()
        except Exception as exc:  # noqa: BLE001 - re-raised below
            raised.append(exc)
    threads: Set[threading.Thread] = loop.__dict__.get(_THREADS, set())
    if not _join(threads, JOIN_SECONDS):
        for worker in workers:
            if isinstance(worker, _ThreadedPipeTransport):
                worker._stop_thread()
        _join(threads, 1.0)
    stuck = sorted(thread.name for thread in threads if thread.is_alive())
    if raised:
        raise raised[0]
    if stuck:
        warnings.warn(
            f"loop.close(): loopcompat I/O threads still blocked after {JOIN_SECONDS:g} s: {', '.join(stuck)}",
            RuntimeWarning,
            stacklevel=3,
        )


def _join(threads: Set[threading.Thread], seconds: float) -> bool:
    """Wait up to ``seconds`` in all for ``threads``; whether all of them ended."""
    deadline = time.monotonic() + seconds
    for thread in list(threads):
        thread.join(max(0.0, deadline - time.monotonic()))
    return not any(thread.is_alive() for thread in list(threads))


def _set_result_unless_cancelled(future: "asyncio.Future[None]") -> None:
    if not future.cancelled():
        future.set_result(None)


# --- blocking I/O on one pipe end, interruptible from the loop --------------------------------------


class Interrupted(Exception):
    """The loop asked the thread to stop (raised by a :class:`PipeEnd` call)."""


class PipeEnd:
    """Blocking reads or writes on one pipe end; :meth:`interrupt` stops them from another thread."""

    def __init__(self, fd: int, is_fifo: bool) -> None:
        self.fd = fd
        self.is_fifo = is_fifo

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes; b"" at end of file. :raises Interrupted: once interrupted."""
        raise NotImplementedError

    def write(self, data: memoryview) -> int:
        """Write some of ``data``; the number of bytes written. :raises Interrupted: once interrupted."""
        raise NotImplementedError

    def peer_closed(self) -> bool:
        """Whether the reading end of this (writing) pipe is gone; does not block on a live pipe."""
        raise NotImplementedError

    def interrupt(self) -> None:
        """Make the current and every later call raise :class:`Interrupted` (from any thread)."""
        raise NotImplementedError

    def release(self) -> None:
        """Free what the end holds (not the pipe itself); called once, after the last call."""


if sys.platform == "win32":  # defined on Windows only (mypy checks it with --platform win32)

    class _WindowsPipeEnd(PipeEnd):
        def __init__(self, fd: int, is_fifo: bool, handle: int, console: Any) -> None:
            super().__init__(fd, is_fifo)
            self._handle = handle
            # A console read through ReadFile gets bytes in the console code page; Python's own
            # console object (sys.stdin.buffer.raw) reads UTF-8, as sys.stdin.buffer does.
            self._console = console
            self._lock = threading.Lock()
            self._interrupted = False
            self._in_call: Optional[int] = None  # native id of the thread inside ReadFile/WriteFile

        def _enter(self) -> None:
            with self._lock:
                if self._interrupted:
                    raise Interrupted
                self._in_call = threading.get_native_id()

        def _leave(self) -> None:
            with self._lock:
                self._in_call = None

        def _aborted(self, exc: OSError) -> bool:
            return getattr(exc, "winerror", None) == ERROR_OPERATION_ABORTED and self._interrupted

        def read(self, size: int) -> bytes:
            self._enter()
            try:
                if self._console is not None:
                    return self._console.read(size) or b""
                data, _ = _winapi.ReadFile(self._handle, size)
                return data  # type: ignore[no-any-return]
            except OSError as exc:
                if getattr(exc, "winerror", None) == ERROR_BROKEN_PIPE:
                    return b""  # all writers closed: end of file
                if self._aborted(exc):
                    raise Interrupted from None
                raise
            finally:
                self._leave()

        def write(self, data: memoryview) -> int:
            self._enter()
            try:
                if self._console is not None:
                    return self._console.write(data) or 0  # type: ignore[no-any-return]
                written, _ = _winapi.WriteFile(self._handle, data)
                return written  # type: ignore[no-any-return]
            except OSError as exc:
                if self._aborted(exc):
                    raise Interrupted from None
                raise
            finally:
                self._leave()

        def peer_closed(self) -> bool:
            if not self.is_fifo:
                return False
            self._enter()
            try:
                _winapi.WriteFile(self._handle, b"")
            except OSError as exc:
                if self._aborted(exc):
                    raise Interrupted from None
                return getattr(exc, "winerror", None) in (ERROR_NO_DATA, ERROR_BROKEN_PIPE)
            finally:
                self._leave()
            return False

        def interrupt(self) -> None:
            with self._lock:
                self._interrupted = True
            # The thread may be between _enter() and the system call, where there is nothing to
            # cancel yet: try again until the call is cancelled or has returned by itself.
            deadline = time.monotonic() + 2.0
            while True:
                with self._lock:
                    if self._in_call is None or _cancel_synchronous_io(self._in_call):
                        return
                if time.monotonic() > deadline:
                    return  # loop.close() reports the thread if it stays blocked
                time.sleep(0.001)

    _kernel32: Any = None

    def _cancel_synchronous_io(thread_id: int) -> bool:
        """CancelSynchronousIo on a thread: True if a blocking call was cancelled."""
        global _kernel32
        if _kernel32 is None:  # ctypes costs ~10 ms to import: only when a thread must be stopped
            import ctypes
            from ctypes import wintypes

            kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
            kernel32.OpenThread.restype = wintypes.HANDLE
            kernel32.OpenThread.argtypes = (wintypes.DWORD, wintypes.BOOL, wintypes.DWORD)
            kernel32.CancelSynchronousIo.restype = wintypes.BOOL
            kernel32.CancelSynchronousIo.argtypes = (wintypes.HANDLE,)
            kernel32.CloseHandle.argtypes = (wintypes.HANDLE,)
            _kernel32 = kernel32
        thread_terminate = 0x0001  # the access right CancelSynchronousIo requires
        handle = _kernel32.OpenThread(thread_terminate, False, thread_id)
        if not handle:
            return False
        try:
            return bool(_kernel32.CancelSynchronousIo(handle))
        finally:
            _kernel32.CloseHandle(handle)

else:

    class _PosixPipeEnd(PipeEnd):
        """poll() on the pipe and on a wake-up pipe; the loop interrupts by writing to the latter."""

        def __init__(self, fd: int, is_fifo: bool) -> None:
            super().__init__(fd, is_fifo)
            os.set_blocking(fd, False)  # as the POSIX loops' own pipe transports do
            self._wake_r, self._wake_w = os.pipe()
            self._interrupted = False

        def _wait(self, events: int) -> None:
            poller = select.poll()
            poller.register(self.fd, events)
            poller.register(self._wake_r, select.POLLIN)
            if any(fd == self._wake_r for fd, _ in poller.poll()):
                raise Interrupted

        def read(self, size: int) -> bytes:
            while True:
                self._wait(select.POLLIN)
                try:
                    return os.read(self.fd, size)
                except (BlockingIOError, InterruptedError):
                    continue

        def write(self, data: memoryview) -> int:
            while True:
                self._wait(select.POLLOUT)
                try:
                    return os.write(self.fd, data)
                except (BlockingIOError, InterruptedError):
                    continue

        def peer_closed(self) -> bool:
            if not self.is_fifo:
                return False
            poller = select.poll()
            poller.register(self.fd, 0)  # errors and hang-ups are always reported
            return bool(poller.poll(0))

        def interrupt(self) -> None:
            if not self._interrupted:
                self._interrupted = True
                os.write(self._wake_w, b"\0")

        def release(self) -> None:
            os.close(self._wake_r)
            os.close(self._wake_w)


def open_pipe_end(pipe: Any, method: str) -> PipeEnd:
    """The blocking end for ``pipe``, checked as the POSIX loops check it.

    :raises ValueError: for a regular file (as on the POSIX loops).
    :raises UnsupportedError: on Windows, for objects whose fileno() is not a C runtime descriptor.
    """
    fd = pipe.fileno()
    handle = 0
    if sys.platform == "win32":
        try:
            handle = msvcrt.get_osfhandle(fd)
        except OSError as exc:
            raise UnsupportedError(
                f"loop.{method}(): {pipe!r} has no C runtime file descriptor (a socket or a raw Windows "
                f"handle?), which the threaded_pipes fallback reads and writes. Remedy: for a socket use "
                f"loop.create_connection(protocol_factory, sock=sock); for a pipe HANDLE, wrap it with "
                f"open(msvcrt.open_osfhandle(handle, 0), 'rb', buffering=0)"
            ) from exc
    mode = os.fstat(fd).st_mode
    if not (stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode)):
        raise ValueError(f"loop.{method}(): pipe transports are for pipes, sockets and character devices, "
                         f"not fd {fd}")
    if sys.platform == "win32":
        return _WindowsPipeEnd(fd, stat.S_ISFIFO(mode), handle, windows_console(pipe))
    else:
        return _PosixPipeEnd(fd, stat.S_ISFIFO(mode))


# --- transports -----------------------------------------------------------------------------------


class _ThreadedPipeTransport(asyncio.BaseTransport):
    """What the read and write transports share: the pipe, its thread, closing and ownership."""

    _thread_role = "pipe"
    # The POSIX write transports log OSErrors (a reader that went away) only in debug mode;
    # the read transports report every error but EIO (what a closed pty gives).
    _quiet_os_errors = False

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        pipe: Any,
        protocol: asyncio.BaseProtocol,
        waiter: Optional["asyncio.Future[None]"],
        extra: Optional[dict],
        method: str,
    ) -> None:
        super().__init__(extra)
        self._extra["pipe"] = pipe  # type: ignore[attr-defined]
        self._end = open_pipe_end(pipe, method)
        self._loop: Any = loop
        self._pipe: Any = pipe
        self._fileno = self._end.fd
        self._protocol: Any = protocol
        self._closing = False  # close(), write_eof(), EOF or an error: no more I/O requested
        self._lost = False  # connection_lost() has been called (or scheduled)
        self._cond = threading.Condition()  # guards what the thread and the loop share
        self._stop = False  # thread: stop as soon as possible
        # The pipe is closed when both the loop and the thread have let go of it.
        self._holders = 1
        self._loop_holds = True
        self._thread_holds = False
        register_worker(loop, self)
        # as the stock transports: connection_made() first, then I/O, then the waiter
        loop.call_soon(protocol.connection_made, self)
        loop.call_soon(self._start)
        if waiter is not None:
            loop.call_soon(_set_result_unless_cancelled, waiter)

    def _start(self) -> None:
        if self._lost or self._stop:
            # Done before it started (closed, aborted or failed in connection_made()). A write
            # pipe closed there with data still to write is only closing: it gets its thread.
            return
        with self._cond:
            self._holders += 1
        self._thread_holds = True
        try:
            start_thread(self._loop, self._thread_main, f"loopcompat-{self._thread_role}-fd{self._fileno}")
        except Exception as exc:  # "can't start new thread"
            self._thread_done()
            self._fatal_error(exc, "Cannot start the thread of a pipe transport")

    def _thread_main(self) -> None:
        try:
            self._run()
        finally:
            self._thread_done()

    def _thread_done(self) -> None:
        """Thread: done with the pipe. Called before the last message to the loop, so that the
        pipe is closed right after connection_lost(), as on POSIX, unless the thread is slower."""
        if self._thread_holds:
            self._thread_holds = False
            self._let_go()

    def _run(self) -> None:
        raise NotImplementedError

    def _let_go(self) -> None:
        with self._cond:
            self._holders -= 1
            if self._holders:
                return
            self._end.release()  # under the lock: _stop_thread() must not interrupt a released end
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            pipe.close()

    def _release_loop_hold(self) -> None:
        if self._loop_holds:
            self._loop_holds = False
            self._let_go()

    def _stop_thread(self) -> None:
        with self._cond:
            if not self._holders:
                return  # the thread has ended and the pipe is closed
            self._stop = True
            self._cond.notify_all()
            self._end.interrupt()

    def _post(self, callback: Callable[..., Any], *args: Any) -> bool:
        return post(self._loop, callback, *args)

    def _call_connection_lost(self, exc: Optional[BaseException]) -> None:
        try:
            self._protocol.connection_lost(exc)
        finally:
            self._release_loop_hold()
            self._protocol = None

    def _fatal_error(self, exc: BaseException, message: str) -> None:
        """Report ``exc`` as the POSIX pipe transports do, then close with it."""
        if isinstance(exc, OSError) and (self._quiet_os_errors or exc.errno == errno.EIO):
            if self._loop.get_debug():
                logger.debug("%r: %s", self, message, exc_info=True)
        else:
            self._loop.call_exception_handler(
                {"message": message, "exception": exc, "transport": self, "protocol": self._protocol}
            )
        self._close(exc)

    def _close(self, exc: Optional[BaseException]) -> None:
        raise NotImplementedError

    def _schedule_connection_lost(self, exc: Optional[BaseException]) -> None:
        if not self._lost:
            self._lost = True
            self._loop.call_soon(self._call_connection_lost, exc)

    def _loop_closing(self) -> None:
        """The loop is closing: no more callbacks; the thread closes the pipe when it ends."""
        if not self._loop_holds:
            return
        unclosed = not self._closing
        if unclosed:
            self._closing = True
            self._stop_thread()
        elif not self._flushing():
            self._stop_thread()
        self._release_loop_hold()
        if unclosed:  # last: under -W error it raises, and stop_io_threads() goes on regardless
            warnings.warn(f"unclosed transport {self!r}", ResourceWarning, source=self, stacklevel=2)

    def _flushing(self) -> bool:
        """Whether the thread is still writing what was written before close()."""
        return False

    def get_protocol(self) -> Any:
        return self._protocol

    def set_protocol(self, protocol: Any) -> None:
        self._protocol = protocol

    def is_closing(self) -> bool:
        return self._closing

    def _state(self) -> str:
        if not self._loop_holds:
            return "closed"
        return "closing" if self._closing else "open"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} fd={self._fileno} {self._state()}>"

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        # Reached only once the thread has ended (it holds a reference while it runs).
        if getattr(self, "_loop_holds", False):
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self._release_loop_hold()


class ThreadedReadPipeTransport(_ThreadedPipeTransport, asyncio.ReadTransport):
    """A read pipe transport whose reads happen in a thread; behaves as the POSIX loops' one.

    pause_reading() stops data_received() at once. The thread itself stops
    once INBOX_LIMIT bytes wait for the loop, paused or not: reading ahead
    that much (as the proactor loop keeps a read in flight) spares a thread
    wake-up at every pause/resume, which a stream reader does every 128 KiB.
    """

    _thread_role = "pipe-reader"

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        pipe: Any,
        protocol: asyncio.BaseProtocol,
        waiter: Optional["asyncio.Future[None]"] = None,
        extra: Optional[dict] = None,
    ) -> None:
        self._paused = False  # pause_reading() in effect
        # loop side: taken from the inbox, not yet delivered; an exception stands for a read error
        self._held: Deque[Union[bytes, BaseException]] = collections.deque()
        self._inbox: List[bytes] = []  # thread -> loop, under _cond; b"" is the end of file
        self._inbox_size = 0
        self._inbox_posted = False  # under _cond: _take_inbox() is due, no need to post again
        super().__init__(loop, pipe, protocol, waiter, extra, "connect_read_pipe")

    # thread
    def _run(self) -> None:
        end = self._end
        cond = self._cond
        while True:
            with cond:
                while not self._stop and self._inbox_size >= INBOX_LIMIT:
                    cond.wait()
                if self._stop:
                    return
            try:
                data = end.read(READ_CHUNK)
            except Interrupted:
                return
            except BaseException as exc:  # noqa: B902 - reported on the loop, as the stock transports do
                self._thread_done()
                self._post(self._read_failed, exc)
                return
            with cond:
                self._inbox.append(data)
                self._inbox_size += len(data)
                wake = not self._inbox_posted
                self._inbox_posted = True
            if not data:
                self._thread_done()
            if (wake and not self._post(self._take_inbox)) or not data:
                return

    # loop
    def _take_inbox(self, paused_too: bool = False) -> None:
        if self._paused and not paused_too:
            return  # left in the inbox (which bounds the read-ahead); resume_reading() comes back
        with self._cond:
            chunks, self._inbox = self._inbox, []
            self._inbox_size = 0
            self._inbox_posted = False
            self._cond.notify_all()
        if not self._closing:
            self._held.extend(chunks)
            self._deliver()

    def _deliver(self) -> None:
        held = self._held
        try:
            while held and not self._paused and not self._closing:
                item = held.popleft()
                if isinstance(item, BaseException):
                    self._fatal_error(item, "Fatal read error on pipe transport")
                elif item:
                    self._protocol.data_received(item)
                else:
                    # end of file: as on POSIX, the transport closes after eof_received()
                    if self._loop.get_debug():
                        logger.info("%r was closed by peer", self)
                    self._closing = True
                    self._loop.call_soon(self._protocol.eof_received)
                    self._schedule_connection_lost(None)
        finally:
            # A data_received() that raised (the loop reports it) leaves the rest held,
            # perhaps the end of file, and the thread may have nothing more to post.
            if held and not self._paused and not self._closing:
                self._loop.call_soon(self._deliver)

    def _read_failed(self, exc: BaseException) -> None:
        if not self._closing:
            self._take_inbox(paused_too=True)  # the data read before the error comes first
            self._held.append(exc)
            self._deliver()

    def _close(self, exc: Optional[BaseException]) -> None:
        self._closing = True
        self._held.clear()
        self._stop_thread()
        self._schedule_connection_lost(exc)

    def is_reading(self) -> bool:
        return not self._paused and not self._closing

    def pause_reading(self) -> None:
        if self._closing or self._paused:
            return
        self._paused = True
        if self._loop.get_debug():
            logger.debug("%r pauses reading", self)

    def resume_reading(self) -> None:
        if self._closing or not self._paused:
            return
        self._paused = False
        self._loop.call_soon(self._take_inbox)  # what was held back, then what the thread read meanwhile
        if self._loop.get_debug():
            logger.debug("%r resumes reading", self)

    def close(self) -> None:
        if not self._closing:
            self._close(None)

    def _state(self) -> str:
        state = super()._state()
        return "paused" if state == "open" and self._paused else state


class ThreadedWritePipeTransport(_ThreadedPipeTransport, asyncio.WriteTransport):
    """A write pipe transport whose writes happen in a thread; behaves as the POSIX loops' one.

    The write buffer is what the thread has not written yet; the protocol's
    pause_writing()/resume_writing() follow it with the usual high/low marks
    (64 KiB/16 KiB by default).
    """

    _thread_role = "pipe-writer"
    _quiet_os_errors = True

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        pipe: Any,
        protocol: asyncio.BaseProtocol,
        waiter: Optional["asyncio.Future[None]"] = None,
        extra: Optional[dict] = None,
    ) -> None:
        self._outbox: Deque[Union[bytes, memoryview]] = collections.deque()  # under _cond
        self._eof_wanted = False  # under _cond: close the pipe once the outbox is written
        self._probe_wanted = False  # under _cond: check whether the reader is gone when idle
        self._written = 0  # under _cond: bytes written, not yet reported to the loop
        self._written_posted = False
        self._buffer_size = 0  # loop side: bytes accepted by write() and not yet written
        self._conn_lost = 0
        self._protocol_paused = False
        self._high_water = 64 * 1024
        self._low_water = 16 * 1024
        super().__init__(loop, pipe, protocol, waiter, extra, "connect_write_pipe")

    # thread
    def _run(self) -> None:
        end = self._end
        cond = self._cond
        while True:
            with cond:
                while not (self._outbox or self._stop or self._eof_wanted or self._probe_wanted):
                    cond.wait()
                if self._stop:
                    return
                chunk = self._take_chunk()
                # nothing to write: either close (write_eof) or check the reader (see _check_peer)
                probe = chunk is None and not self._eof_wanted
                if probe:
                    self._probe_wanted = False
            try:
                if chunk is None:
                    if probe and not end.peer_closed():
                        continue
                    self._thread_done()
                    self._post(self._peer_closed if probe else self._flushed)
                    return
                view = memoryview(chunk)
                while view:
                    view = view[end.write(view):]
            except Interrupted:
                return
            except BaseException as exc:  # noqa: B902 - reported on the loop
                self._thread_done()
                self._post(self._write_failed, exc)
                return
            with cond:
                self._written += len(chunk)
                wake = not self._written_posted
                self._written_posted = True
            if wake and not self._post(self._took_written):
                return

    def _take_chunk(self) -> Optional[Union[bytes, memoryview]]:
        """Under _cond: the next write, small pieces joined up to WRITE_CHUNK, big ones cut to it."""
        outbox = self._outbox
        if not outbox:
            return None
        first = outbox.popleft()
        if len(first) >= WRITE_CHUNK:
            if len(first) > WRITE_CHUNK:
                view = memoryview(first)
                outbox.appendleft(view[WRITE_CHUNK:])
                return view[:WRITE_CHUNK]
            return first
        parts = [first]
        size = len(first)
        while outbox and size + len(outbox[0]) <= WRITE_CHUNK:
            part = outbox.popleft()
            parts.append(part)
            size += len(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    # loop
    def write(self, data: Union[bytes, bytearray, memoryview]) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, not {type(data).__name__!r}")
        if not data:
            return
        if self._conn_lost or self._closing:
            if self._conn_lost >= CONNLOST_WRITES_WARNING:
                logger.warning("pipe closed by peer or os.write(pipe, data) raised exception.")
            self._conn_lost += 1
            return
        # Keep bytes as they are; copy anything the caller may change after write() returns.
        chunk = data if isinstance(data, bytes) else bytes(data)
        with self._cond:
            self._outbox.append(chunk)
            self._cond.notify()
        self._buffer_size += len(chunk)
        self._maybe_pause_protocol()

    def _took_written(self) -> None:
        with self._cond:
            written, self._written = self._written, 0
            self._written_posted = False
        if self._lost:
            return
        self._buffer_size -= written
        self._maybe_resume_protocol()

    def _flushed(self) -> None:
        if not self._lost:
            self._buffer_size = 0
            self._maybe_resume_protocol()
            self._schedule_connection_lost(None)

    def _peer_closed(self) -> None:
        # the reader went away while nothing was being written (POSIX notices this at once)
        if self._lost:
            return
        self._close(BrokenPipeError() if self._buffer_size else None)

    def _write_failed(self, exc: BaseException) -> None:
        if not self._lost:
            self._conn_lost += 1
            self._fatal_error(exc, "Fatal write error on pipe transport")

    def _close(self, exc: Optional[BaseException]) -> None:
        self._closing = True
        self._stop_thread()
        with self._cond:
            self._outbox.clear()
        self._buffer_size = 0
        self._schedule_connection_lost(exc)

    def _check_peer(self) -> None:
        """Find out (in the thread, when idle) whether the reading end is gone."""
        with self._cond:
            self._probe_wanted = True
            self._cond.notify()

    def _watch_peer(self, delay: float = PEER_PROBE_FIRST) -> None:
        """Probe now and again, less and less often, until the pipe closes.

        For a child's stdin once the child has exited: a grandchild may still
        hold the reading end, and the POSIX loops see it go whenever it goes.
        """
        if self._closing or self._lost:
            return
        self._check_peer()
        self._loop.call_later(delay, self._watch_peer, min(delay * 2, PEER_PROBE_LAST))

    def _flushing(self) -> bool:
        return self._eof_wanted and not self._lost

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        if self._closing:
            return
        self._closing = True
        with self._cond:
            self._eof_wanted = True
            self._cond.notify()
        if not self._buffer_size:
            # nothing left to write: connection_lost() at once, as on POSIX; the idle thread
            # closes the pipe as it ends
            self._schedule_connection_lost(None)

    def close(self) -> None:
        if not self._closing:
            self.write_eof()

    def abort(self) -> None:
        if not self._lost:
            self._close(None)

    def get_write_buffer_size(self) -> int:
        return self._buffer_size

    def get_write_buffer_limits(self) -> Tuple[int, int]:
        return (self._low_water, self._high_water)

    def set_write_buffer_limits(self, high: Optional[int] = None, low: Optional[int] = None) -> None:
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high_water, self._low_water = high, low
        self._maybe_pause_protocol()

    def _maybe_pause_protocol(self) -> None:
        if self._buffer_size <= self._high_water or self._protocol_paused:
            return
        self._protocol_paused = True
        self._call_protocol("pause_writing")

    def _maybe_resume_protocol(self) -> None:
        if self._protocol_paused and self._buffer_size <= self._low_water:
            self._protocol_paused = False
            self._call_protocol("resume_writing")

    def _call_protocol(self, name: str) -> None:
        try:
            getattr(self._protocol, name)()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler({
                "message": f"protocol.{name}() failed",
                "exception": exc,
                "transport": self,
                "protocol": self._protocol,
            })

    def __repr__(self) -> str:
        return f"<{type(self).__name__} fd={self._fileno} {self._state()} bufsize={self._buffer_size}>"


# --- the loop side --------------------------------------------------------------------------------


class ThreadedIOLoopMixin(_LoopBase):
    """Shared by the threaded fallbacks: close() stops and joins their threads first."""

    def close(self) -> None:
        if not self.is_running() and not self.is_closed():
            try:
                stop_io_threads(self)
            finally:
                super().close()  # closed even when a ResourceWarning was made an error
            return
        super().close()


def _native_may_serve(loop: Any, pipe: Any) -> bool:
    """Whether the loop's own pipe transports can take ``pipe`` (a NotImplementedError says no).

    The proactor loop takes ``pipe.fileno()`` for an overlapped HANDLE: right for its own
    pipe handles and for sockets, wrong for every file object (see the module docstring).
    """
    if isinstance(loop, proactor_events.BaseProactorEventLoop):
        return not has_crt_descriptor(pipe)
    return True


class ThreadedPipesMixin(ThreadedIOLoopMixin):
    """connect_read_pipe()/connect_write_pipe() for pipes the loop cannot serve itself.

    The stock public methods stay; this replaces the transport factories they call.
    """

    def _make_read_pipe_transport(
        self, pipe: Any, protocol: asyncio.BaseProtocol, waiter: Any = None, extra: Any = None
    ) -> asyncio.ReadTransport:
        if _native_may_serve(self, pipe):
            try:
                return super()._make_read_pipe_transport(pipe, protocol, waiter, extra)  # type: ignore[misc]
            except NotImplementedError:
                pass  # no native pipe support on this loop (Windows selector loop)
        return ThreadedReadPipeTransport(self, pipe, protocol, waiter, extra)

    def _make_write_pipe_transport(
        self, pipe: Any, protocol: asyncio.BaseProtocol, waiter: Any = None, extra: Any = None
    ) -> asyncio.WriteTransport:
        if _native_may_serve(self, pipe):
            try:
                return super()._make_write_pipe_transport(pipe, protocol, waiter, extra)  # type: ignore[misc]
            except NotImplementedError:
                pass
        return ThreadedWritePipeTransport(self, pipe, protocol, waiter, extra)
