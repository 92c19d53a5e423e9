"""The threaded_subprocess fallback: subprocesses on loops that cannot watch processes or pipes.

The Windows selector loop has no subprocess support (fact S7): it can watch
neither a process handle nor a pipe. This fallback starts the child with
``subprocess.Popen`` (anonymous, synchronous pipes, as the standard library
makes them), connects its pipes with the threaded transports of
``_threaded_pipes``, and waits for the child's exit in one more thread. So a
process costs up to four short-lived threads (stdin writer, stdout and stderr
readers, exit waiter); each ends with its pipe or with the process.

The transport is asyncio's own ``BaseSubprocessTransport``, as the stock
loops use it: the order of protocol callbacks, ``Process.wait()`` and
``communicate()`` behave exactly as on each Python version's stock loops.
Only three hooks differ: ``_start`` (Popen plus the exit-waiting thread),
``_connect_pipes`` (threaded transports rather than the loop's pipe methods,
which the selector loop lacks) and ``_process_exited`` (see below).

Facts about Windows this relies on:

* Windows has no signals between processes. ``Popen.send_signal`` can
  deliver SIGTERM (as TerminateProcess, like kill()) and CTRL_C_EVENT /
  CTRL_BREAK_EVENT (console control events, which reach only a child that
  shares the console and, for CTRL_BREAK_EVENT, was started with
  CREATE_NEW_PROCESS_GROUP). Anything else (SIGINT, SIGHUP ...) cannot be
  emulated safely, so it raises UnsupportedError (also a ValueError, which is
  what the stock proactor loop raises for it).
* Windows does not tell the writer of an idle pipe that the reader is gone.
  When the child exits, the stdin transport checks once (a zero-byte write
  fails on a pipe without reader), so that stdin is reported lost, and the
  process transport can finish, as it would on POSIX; a grandchild that
  still holds the pipe keeps it open, as on POSIX.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import warnings
from asyncio.base_subprocess import BaseSubprocessTransport, ReadSubprocessPipeProto, WriteSubprocessPipeProto
from typing import Any, Optional

from .._errors import UnsupportedError
from ._threaded_pipes import (
    ThreadedIOLoopMixin,
    ThreadedReadPipeTransport,
    ThreadedWritePipeTransport,
    post,
    register_worker,
    start_thread,
)


class UnsupportedSignalError(UnsupportedError, ValueError):
    """A signal Windows cannot deliver to a child. Also a ValueError, as the stock proactor loop raises."""


def _windows_signals() -> frozenset:
    return frozenset({signal.SIGTERM, getattr(signal, "CTRL_C_EVENT", -1), getattr(signal, "CTRL_BREAK_EVENT", -1)})


class ThreadedSubprocessTransport(BaseSubprocessTransport):
    """asyncio's subprocess transport with threads for the pipes and for the exit."""

    _stdin: Optional[ThreadedWritePipeTransport] = None

    def _start(self, args: Any, shell: bool, stdin: Any, stdout: Any, stderr: Any, bufsize: int, **kwargs: Any) -> None:
        self._proc = subprocess.Popen(
            args, shell=shell, stdin=stdin, stdout=stdout, stderr=stderr, bufsize=bufsize, **kwargs
        )
        register_worker(self._loop, self)
        try:
            start_thread(self._loop, self._wait_for_exit, f"loopcompat-subprocess-{self._proc.pid}-exit")
        except BaseException:
            self._proc.kill()  # a child nobody can wait for must not outlive this call
            self._proc.wait()
            raise

    def _wait_for_exit(self) -> None:
        """Thread: wait for the child and tell the loop its exit status."""
        loop, proc = self._loop, self._proc
        assert proc is not None
        returncode = proc.wait()
        post(loop, self._process_exited, returncode)

    async def _connect_pipes(self, waiter: Optional["asyncio.Future[None]"]) -> None:
        # The contract of the stock method: fill self._pipes with the pipe protocols, then
        # connection_made() and whatever was queued in _pending_calls meanwhile, then the waiter.
        loop, proc = self._loop, self._proc
        assert proc is not None
        try:
            for fd, pipe in ((0, proc.stdin), (1, proc.stdout), (2, proc.stderr)):
                if pipe is None:
                    continue
                connected = loop.create_future()
                if fd == 0:
                    proto: Any = WriteSubprocessPipeProto(self, fd)
                    transport: Any = ThreadedWritePipeTransport(loop, pipe, proto, connected)
                    self._stdin = transport
                else:
                    proto = ReadSubprocessPipeProto(self, fd)
                    transport = ThreadedReadPipeTransport(loop, pipe, proto, connected)
                try:
                    await connected
                except BaseException:
                    transport.close()
                    raise
                self._pipes[fd] = proto
                if self._closed:  # close() ran while this pipe was being connected
                    transport.close()
            if self._stdin is not None and self._returncode is not None:
                self._stdin._watch_peer()  # exited while connecting: its stdin may be held on
            loop.call_soon(self._protocol.connection_made, self)
            for callback, data in self._pending_calls:
                loop.call_soon(callback, *data)
            self._pending_calls = None  # type: ignore[assignment]  # as the stock method does
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            if waiter is not None and not waiter.cancelled():
                waiter.set_exception(exc)
        else:
            if waiter is not None and not waiter.cancelled():
                waiter.set_result(None)

    def _process_exited(self, returncode: int) -> None:
        super()._process_exited(returncode)
        stdin = self._stdin
        if stdin is not None and not stdin.is_closing():
            stdin._watch_peer()

    if sys.platform == "win32":

        def send_signal(self, signal: int) -> None:
            if signal not in _windows_signals():
                raise UnsupportedSignalError(
                    f"send_signal({signal!r}): Windows cannot deliver this signal to a child process; "
                    f"it has SIGTERM (which terminates the process, like kill()), CTRL_C_EVENT and "
                    f"CTRL_BREAK_EVENT (console control events). Remedy: use terminate() or kill(), or start "
                    f"the child with creationflags=subprocess.CREATE_NEW_PROCESS_GROUP and send "
                    f"signal.CTRL_BREAK_EVENT"
                )
            super().send_signal(signal)

    def _loop_closing(self) -> None:
        """The loop is closing: a child still running is killed, as closing its transport would."""
        if not self._closed:
            self.close()
            # last: under -W error it raises, once the child is killed
            warnings.warn(f"unclosed transport {self!r}", ResourceWarning, source=self, stacklevel=2)


class ThreadedSubprocessMixin(ThreadedIOLoopMixin):
    """loop.subprocess_exec()/subprocess_shell() on loops with no subprocess support of their own.

    The stock public methods stay (argument checks, debug logging); this
    replaces the transport factory they call, after asking the loop's own.
    """

    async def _make_subprocess_transport(
        self,
        protocol: asyncio.SubprocessProtocol,
        args: Any,
        shell: bool,
        stdin: Any,
        stdout: Any,
        stderr: Any,
        bufsize: int,
        extra: Any = None,
        **kwargs: Any,
    ) -> asyncio.SubprocessTransport:
        try:
            return await super()._make_subprocess_transport(  # type: ignore[misc,no-any-return]
                protocol, args, shell, stdin, stdout, stderr, bufsize, extra=extra, **kwargs
            )
        except NotImplementedError:
            pass  # the loop has no subprocess support of its own (Windows selector loop)
        waiter = self.create_future()
        transport = ThreadedSubprocessTransport(
            self, protocol, args, shell, stdin, stdout, stderr, bufsize, waiter=waiter, extra=extra, **kwargs
        )
        try:
            await waiter
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            transport.close()
            await transport._wait()
            raise
        return transport
