"""The selector_thread fallback: add_reader/add_writer on loops that lack them.

Some facts about the world this module lives in:

* Windows' ProactorEventLoop is built on an I/O completion port: it learns
  when an operation *finished*, never when a socket *would not block*. Its
  add_reader/add_writer raise NotImplementedError (fact S8), yet libraries
  such as pyzmq, tornado, curl_cffi or c-ares resolvers are written against
  readiness callbacks.
* Readiness on Windows sockets comes from select() (sockets only, at most
  512 per call: FD_SETSIZE is 64 in the SDK and CPython raises it to 512),
  from WSAPoll(), or from the AFD driver that both are built on.
* A Python thread that learns of readiness must take the GIL to tell the
  loop. A loop that is busy in short CPU chunks releases and retakes the GIL
  around every zero-timeout poll, so the GIL's "drop request" (which needs
  five quiet milliseconds) never fires, and the waiting thread only gets the
  GIL when it happens to win a race: tornado's selector thread, measured in
  issue 9, fell to about one round trip per second with a 7.4 s p99. The
  fewer times per event a helper thread has to take the GIL, the rarer that
  race.

So this module keeps the loop thread's part small and lets helper threads
run without the loop's help:

* **Sharding.** Registered sockets are spread over shards of at most
  :data:`SHARD_SIZE` (500: Windows' select() takes 512, one slot is the wakeup
  socket). Each shard is one daemon thread blocked in select() (poll() where
  the OS has it, which has no FD_SETSIZE limit on descriptor values) on its own
  sockets only, so 2,000 sockets are four threads and an event costs a select
  over at most 500 sockets however many are registered.
* **Incremental sets.** A shard keeps its fd lists and edits them in place
  (O(1) per change); it never rebuilds them from the registry per event.
* **Level-triggered without a round trip per event.** A ready socket is taken
  out of its shard's set (so the thread does not spin on it) and handed to the
  loop in a batch; the loop runs the callbacks as ordinary Handles, then sends
  the shard one "re-arm" command per batch. The shard keeps watching every
  other socket meanwhile: nothing waits for the loop unless it is that very
  socket's turn.
* **One wakeup per batch, only when needed.** Threads hand events over through
  a deque and call call_soon_threadsafe() only when no drain is already
  scheduled; the loop writes a shard's wakeup socket only when no wakeup byte
  is already pending. The wakeup is a socket pair because Windows select()
  can wait on sockets only (no pipes, no events).

The backend is chosen by probing: if the stock add_reader works (a Python
that gains native support), the native method is used and no thread is ever
started. No thread exists before the first add_reader/add_writer; close()
stops and joins every thread and closes its sockets; threads are daemons and
an atexit hook stops the threads of loops nobody closed, so the interpreter
never hangs at exit.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import select
import socket
import sys
import threading
import weakref
from asyncio import events
from typing import Any, Callable, Deque, Dict, List, Optional, Set, Tuple

from .._errors import LoopCompatError

# Event bits, shared by the loop side and the shard threads.
READ = 1
WRITE = 2
CLOSED = 4  # the descriptor was closed while registered

# At most this many sockets per shard thread (Windows select(): 512 per call,
# one of which is the shard's wakeup socket).
SHARD_SIZE = 500
# How long close() waits for one shard thread; it is woken explicitly and
# exits at once, so reaching this means something is badly wrong.
JOIN_TIMEOUT = 10.0

_WINDOWS = sys.platform == "win32"
_FD_SETSIZE = 1024  # POSIX select(): descriptor *values* must be below this (fact X1); poll() has no limit


def _fileobj_to_fd(fileobj: Any) -> int:
    """The descriptor of ``fileobj``, with the stock selectors' errors."""
    if isinstance(fileobj, int):
        fd = fileobj
    else:
        try:
            fd = int(fileobj.fileno())
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"Invalid file object: {fileobj!r}") from None
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    return fd


class _Entry:
    """One registered descriptor, as the loop thread sees it."""

    __slots__ = ("fd", "fileobj", "reader", "writer", "closed", "slot")

    def __init__(self, fd: int, fileobj: Any) -> None:
        self.fd = fd
        self.fileobj = fileobj
        self.reader: Optional[events.Handle] = None
        self.writer: Optional[events.Handle] = None
        self.closed = False  # closed while registered: no longer watched
        self.slot: Any = None  # the backend's per-descriptor state (a shard, a poll)

    @property
    def bits(self) -> int:
        return (READ if self.reader is not None else 0) | (WRITE if self.writer is not None else 0)


class SelectorThreadError(LoopCompatError, RuntimeError):
    """The fallback's watcher failed (a selector thread died): its sockets are no longer watched."""


class Watcher:
    """The loop-side registry shared by every backend; runs on the loop thread only.

    A backend implements :meth:`_changed` (the interest of an entry changed),
    :meth:`_forget` (an entry is gone) and :meth:`_shutdown`.
    """

    name = "abstract"

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Weak: helper threads reach the loop through the watcher, and must not
        # keep a loop nobody closed alive (its __del__ closes it, and us).
        self._loop_ref = weakref.ref(loop)
        self._entries: Dict[int, _Entry] = {}
        self._failure: Optional[BaseException] = None
        self.closed = False

    # -- the four loop methods ------------------------------------------------------------------

    def add(self, fileobj: Any, bits: int, callback: Callable[..., Any], args: Tuple[Any, ...]) -> events.Handle:
        loop = self._loop_ref()
        assert loop is not None
        if self._failure is not None:
            raise SelectorThreadError(
                f"cannot watch {fileobj!r}: the {self.name} backend of loopcompat's selector_thread fallback "
                f"failed ({self._failure!r}); create a new event loop"
            ) from self._failure
        fd = _fileobj_to_fd(fileobj)
        handle = events.Handle(callback, args, loop, None)  # the caller's context, as the stock loop
        entry = self._entries.get(fd)
        if entry is not None and entry.closed:
            # The descriptor was closed while registered and its number reused:
            # the old callbacks belong to the closed object.
            self._drop(entry)
            entry = None
        if entry is None:
            entry = self._entries[fd] = _Entry(fd, fileobj)
        else:
            entry.fileobj = fileobj
        old = entry.writer if bits == WRITE else entry.reader
        if bits == WRITE:
            entry.writer = handle
        else:
            entry.reader = handle
        try:
            self._changed(entry)
        except BaseException:
            if bits == WRITE:
                entry.writer = old
            else:
                entry.reader = old
            if entry.reader is None and entry.writer is None:
                self._drop(entry)
            raise
        if old is not None:
            old.cancel()
        return handle

    def remove(self, fileobj: Any, bits: int) -> bool:
        entry = self._lookup(fileobj)
        if entry is None:
            return False
        handle = entry.writer if bits == WRITE else entry.reader
        if bits == WRITE:
            entry.writer = None
        else:
            entry.reader = None
        if entry.reader is None and entry.writer is None:
            self._drop(entry)
        elif not entry.closed:
            self._changed(entry)
        if handle is None:
            return False
        handle.cancel()
        return True

    def _lookup(self, fileobj: Any) -> Optional[_Entry]:
        try:
            return self._entries.get(_fileobj_to_fd(fileobj))
        except ValueError:
            # A closed socket object reports fileno() -1: find it by identity,
            # as the stock selectors do.
            for entry in self._entries.values():
                if entry.fileobj is fileobj:
                    return entry
            raise

    def _drop(self, entry: _Entry) -> None:
        del self._entries[entry.fd]
        self._forget(entry)
        for handle in (entry.reader, entry.writer):
            if handle is not None:
                handle.cancel()

    # -- events -----------------------------------------------------------------------------------

    def _dispatch(self, loop: Any, entry: _Entry, bits: int) -> None:
        """Queue the callbacks of a ready entry, exactly as the stock selector loop does."""
        fileobj = entry.fileobj
        if not isinstance(fileobj, int) and fileobj.fileno() < 0:
            # A socket object closed while registered (some OSes report the
            # closing descriptor "ready"): never run its callbacks again.
            entry.closed = True
            return
        reader, writer = entry.reader, entry.writer
        if bits & READ and reader is not None:
            if reader._cancelled:  # cancelled through the Handle: the stock loop unregisters
                self.remove(entry.fd, READ)
            else:
                loop._add_callback(reader)
        if bits & WRITE and writer is not None:
            if writer._cancelled:
                self.remove(entry.fd, WRITE)
            else:
                loop._add_callback(writer)

    def _failed(self, exc: BaseException, what: str) -> None:
        """Record a backend failure (any thread) and report it on the loop."""
        if self._failure is None:
            self._failure = exc
        loop = self._loop_ref()
        if loop is None or loop.is_closed() or self.closed:
            return
        try:
            loop.call_soon_threadsafe(self._report, exc, what)
        except RuntimeError:  # closed meanwhile
            pass

    def _report(self, exc: BaseException, what: str) -> None:
        loop = self._loop_ref()
        if loop is not None and not loop.is_closed():
            loop.call_exception_handler({
                "message": f"loopcompat selector_thread fallback: {what}; add_reader/add_writer callbacks "
                f"on its sockets will not run again, and new add_reader/add_writer calls raise "
                f"{SelectorThreadError.__name__}",
                "exception": exc,
            })

    # -- backend interface ------------------------------------------------------------------------

    def _changed(self, entry: _Entry) -> None:
        raise NotImplementedError

    def _forget(self, entry: _Entry) -> None:
        raise NotImplementedError

    def _shutdown(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Stop watching everything and release every thread and socket (loop thread, loop not running)."""
        if self.closed:
            return
        self.closed = True
        try:
            self._shutdown()
        finally:
            self._entries.clear()


# --- the threaded backend ----------------------------------------------------------------------


class _SelectSet:
    """Descriptors one shard thread waits on with select(): lists edited in place."""

    def __init__(self) -> None:
        self.lists: Tuple[List[int], List[int]] = ([], [])
        self.index: Tuple[Dict[int, int], Dict[int, int]] = ({}, {})

    def set(self, fd: int, bits: int) -> None:
        for side, bit in ((0, READ), (1, WRITE)):
            fds, where = self.lists[side], self.index[side]
            if bits & bit:
                if fd not in where:
                    where[fd] = len(fds)
                    fds.append(fd)
            elif fd in where:
                # swap-remove: O(1), order does not matter to select()
                position = where.pop(fd)
                last = fds.pop()
                if last != fd:
                    fds[position] = last
                    where[last] = position

    def wait(self) -> List[Tuple[int, int]]:
        readers, writers = self.lists
        if _WINDOWS:
            # Windows reports a failed connect() in the "exceptional" set only,
            # as the stock SelectSelector knows: watch writers there too.
            r, w, x = select.select(readers, writers, writers)
            w = w + x
        else:
            r, w, _ = select.select(readers, writers, [])
        ready: Dict[int, int] = {}
        for fd in r:
            ready[fd] = READ
        for fd in w:
            ready[fd] = ready.get(fd, 0) | WRITE
        return list(ready.items())

    def fds(self) -> Set[int]:
        return set(self.index[0]) | set(self.index[1])

    def bad_fds(self) -> List[int]:
        """Descriptors select() refuses (closed): probed one by one, only after select() failed."""
        bad = []
        for fd in self.fds():
            try:
                select.select([fd], [], [], 0)
            except (OSError, ValueError):
                bad.append(fd)
        return bad


class _PollSet:
    """Descriptors one shard thread waits on with poll() (POSIX: no FD_SETSIZE limit on values)."""

    def __init__(self) -> None:
        self.poll = select.poll()  # type: ignore[attr-defined,unused-ignore]
        self.masks: Dict[int, int] = {}

    def set(self, fd: int, bits: int) -> None:
        mask = (select.POLLIN if bits & READ else 0) | (select.POLLOUT if bits & WRITE else 0)  # type: ignore[attr-defined,unused-ignore]
        old = self.masks.get(fd)
        if mask == (old or 0):
            return
        if not mask:
            # poll() reports POLLHUP/POLLERR even with an empty mask: unregister instead
            del self.masks[fd]
            self.poll.unregister(fd)
        elif old is None:
            self.masks[fd] = mask
            self.poll.register(fd, mask)
        else:
            self.masks[fd] = mask
            self.poll.modify(fd, mask)

    def wait(self) -> List[Tuple[int, int]]:
        ready = []
        for fd, event in self.poll.poll():
            if event & select.POLLNVAL:  # type: ignore[attr-defined,unused-ignore]
                ready.append((fd, CLOSED))
                continue
            bits = 0
            if event & ~select.POLLOUT:  # type: ignore[attr-defined,unused-ignore]  # POLLIN, POLLHUP, POLLERR
                bits |= READ
            if event & ~select.POLLIN:  # type: ignore[attr-defined,unused-ignore]
                bits |= WRITE
            ready.append((fd, bits & self._armed(fd)))
        return ready

    def _armed(self, fd: int) -> int:
        mask = self.masks.get(fd, 0)
        return (READ if mask & select.POLLIN else 0) | (WRITE if mask & select.POLLOUT else 0)  # type: ignore[attr-defined,unused-ignore]

    def fds(self) -> Set[int]:
        return set(self.masks)

    def bad_fds(self) -> List[int]:
        return []  # poll() reports closed descriptors as POLLNVAL instead of failing


class _Shard:
    """One daemon thread waiting on at most SHARD_SIZE descriptors (plus its wakeup socket).

    Commands travel loop -> thread through ``commands`` (a deque: appends and
    pops are atomic) and a wakeup byte; events travel thread -> loop through
    the watcher's ``post``. Only the thread touches ``want``, ``pending`` and
    the wait set.
    """

    def __init__(self, watcher: "ThreadWatcher", index: int, use_poll: bool) -> None:
        # Weak: a running thread must not keep an unclosed, forgotten loop alive
        # (loop -> watcher -> registrations -> handles -> loop is a plain cycle).
        self._watcher = weakref.ref(watcher)
        self.name = f"loopcompat-selector-{index}"
        self.load = 0  # descriptors assigned to this shard (loop thread's count)
        self.commands: Deque[Tuple[Any, ...]] = collections.deque()
        self.wake_pending = False
        self.stopping = False
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)
        self.wake_fd = self.wake_r.fileno()
        self.use_poll = use_poll
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self.thread.start()

    # -- loop thread ---------------------------------------------------------------------------

    def send(self, command: Tuple[Any, ...]) -> None:
        self.commands.append(command)
        if not self.wake_pending:
            self.wake_pending = True
            self.wake()

    def wake(self) -> None:
        try:
            self.wake_w.send(b"\0")
        except (BlockingIOError, InterruptedError):
            pass  # the buffer is full of wakeup bytes: the thread will wake anyway
        except OSError:
            pass  # socket closed: the thread has stopped or died (and said so)

    def stop(self) -> None:
        self.stopping = True
        self.commands.append(("stop",))
        self.wake()

    def join_and_close(self, timeout: float) -> bool:
        stopped = True
        if self.thread is not threading.current_thread():
            self.thread.join(timeout)
            stopped = not self.thread.is_alive()
        if stopped:  # never close sockets a live thread may be waiting on
            self.wake_r.close()
            self.wake_w.close()
        return stopped

    # -- shard thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._serve()
        except BaseException as exc:  # noqa: BLE001 - reported on the loop, never silent
            watcher = self._watcher()
            if watcher is not None and not self.stopping:
                watcher._failed(exc, f"selector thread {self.name} died")

    def _serve(self) -> None:
        waitset: Any = _PollSet() if self.use_poll else _SelectSet()
        waitset.set(self.wake_fd, READ)
        want: Dict[int, int] = {}
        pending: Dict[int, int] = {}  # bits handed to the loop and not re-armed yet

        while True:
            try:
                ready = waitset.wait()
            except (OSError, ValueError):
                # A registered descriptor was closed: find it, stop watching it, tell the loop.
                bad = waitset.bad_fds()
                if self.wake_fd in bad or not bad:
                    raise
                ready = [(fd, CLOSED) for fd in bad]
            if self.stopping:
                return
            batch: List[Tuple[int, int]] = []
            woken = False
            for fd, bits in ready:
                if fd == self.wake_fd:
                    woken = True
                    if bits & CLOSED:
                        raise OSError(f"the wakeup socket of {self.name} was closed")
                    continue
                if bits & CLOSED:
                    want.pop(fd, None)
                    pending.pop(fd, None)
                    waitset.set(fd, 0)
                    batch.append((fd, CLOSED))
                    continue
                bits &= want.get(fd, 0) & ~pending.get(fd, 0)
                if bits:
                    # Level-triggered: stop watching this direction until the
                    # loop has run the callback and re-arms it.
                    held = pending.get(fd, 0) | bits
                    pending[fd] = held
                    waitset.set(fd, want[fd] & ~held)
                    batch.append((fd, bits))
            if batch:
                watcher = self._watcher()
                if watcher is None:
                    return  # the loop and its watcher are gone
                watcher.post(self, batch)
                del watcher
            if woken:
                # Order matters (see send()): drain the bytes, clear the flag, then
                # run the commands. Clearing first could swallow the byte of a
                # command sent in between and leave the flag set with no byte.
                try:
                    while self.wake_r.recv(4096):
                        pass
                except (BlockingIOError, InterruptedError):
                    pass
                self.wake_pending = False
                while self.commands:
                    command = self.commands.popleft()
                    kind = command[0]
                    if kind == "stop":
                        return
                    if kind == "set":
                        _, fd, bits = command
                        if bits:
                            want[fd] = bits
                        else:
                            want.pop(fd, None)
                            pending.pop(fd, None)
                        waitset.set(fd, bits & ~pending.get(fd, 0))
                    elif kind == "rearm":
                        for fd, bits in command[1]:
                            held = pending.get(fd, 0) & ~bits
                            if held:
                                pending[fd] = held
                            else:
                                pending.pop(fd, None)
                            if fd in want:
                                waitset.set(fd, want[fd] & ~held)


# Watchers whose threads may still run; stopped at interpreter exit if nobody closed their loop.
_LIVE: "weakref.WeakSet[ThreadWatcher]" = weakref.WeakSet()


def _stop_live_watchers() -> None:
    for watcher in list(_LIVE):
        watcher._stop_threads(timeout=1.0)


atexit.register(_stop_live_watchers)


class ThreadWatcher(Watcher):
    """Readiness from select()/poll() in sharded daemon threads (see the module docstring)."""

    name = "thread"

    def __init__(
        self, loop: asyncio.AbstractEventLoop, *, shard_size: int = SHARD_SIZE, use_poll: Optional[bool] = None
    ) -> None:
        super().__init__(loop)
        if use_poll is None:
            use_poll = hasattr(select, "poll") and not _WINDOWS
        self.shard_size = shard_size
        self.use_poll = use_poll
        self._shards: List[_Shard] = []
        self._events: Deque[Tuple[_Shard, List[Tuple[int, int]]]] = collections.deque()
        self._drain_scheduled = False

    @property
    def threads(self) -> List[threading.Thread]:
        return [shard.thread for shard in self._shards]

    # -- loop thread -------------------------------------------------------------------------------

    def _changed(self, entry: _Entry) -> None:
        shard = entry.slot
        if shard is None:
            if not self.use_poll and not _WINDOWS and entry.fd >= _FD_SETSIZE:
                raise ValueError(f"fd {entry.fd} is at or above FD_SETSIZE ({_FD_SETSIZE}): select() cannot watch it")
            shard = entry.slot = self._pick_shard()
            shard.load += 1
        shard.send(("set", entry.fd, entry.bits))

    def _forget(self, entry: _Entry) -> None:
        shard = entry.slot
        if shard is not None:
            entry.slot = None
            shard.load -= 1
            shard.send(("set", entry.fd, 0))  # (a no-op if the thread already dropped a closed one)

    def _pick_shard(self) -> _Shard:
        for shard in self._shards:
            if shard.load < self.shard_size:
                return shard
        shard = _Shard(self, len(self._shards), self.use_poll)
        self._shards.append(shard)
        _LIVE.add(self)
        return shard

    def _drain(self) -> None:
        """Run on the loop: queue the callbacks of every posted event, then one re-arm per batch."""
        self._drain_scheduled = False  # first: a post racing with this drain schedules another
        loop: Any = self._loop_ref()
        if loop is None or self.closed:
            return
        rearm: Dict[_Shard, List[Tuple[int, int]]] = {}
        while self._events:
            shard, batch = self._events.popleft()
            for fd, bits in batch:
                entry = self._entries.get(fd)
                if bits & CLOSED:
                    if entry is not None and entry.slot is shard:
                        entry.closed = True
                    continue
                rearm.setdefault(shard, []).append((fd, bits))
                if entry is not None and entry.slot is shard and not entry.closed:
                    self._dispatch(loop, entry, bits)
        if rearm:
            # Queued after the callbacks just queued: the shard watches these
            # descriptors again only once their callbacks have run.
            loop._add_callback(events.Handle(self._rearm, (rearm,), loop, None))

    def _rearm(self, rearm: Dict[_Shard, List[Tuple[int, int]]]) -> None:
        if self.closed:
            return
        for shard, batch in rearm.items():
            if not shard.stopping:
                shard.send(("rearm", batch))

    def _shutdown(self) -> None:
        stuck = self._stop_threads(JOIN_TIMEOUT)
        loop = self._loop_ref()
        if stuck and loop is not None and not loop.is_closed():
            loop.call_exception_handler({
                "message": f"loopcompat selector_thread fallback: thread(s) {', '.join(stuck)} did not stop "
                f"within {JOIN_TIMEOUT} s of loop.close(); they are daemon threads and will not block exit",
            })

    def _stop_threads(self, timeout: float) -> List[str]:
        for shard in self._shards:
            shard.stop()
        stuck = [shard.name for shard in self._shards if not shard.join_and_close(timeout)]
        self._shards = []
        self._events.clear()
        _LIVE.discard(self)
        return stuck

    # -- shard threads -----------------------------------------------------------------------------

    def post(self, shard: _Shard, batch: List[Tuple[int, int]]) -> None:
        self._events.append((shard, batch))
        if not self._drain_scheduled:
            self._drain_scheduled = True
            loop = self._loop_ref()
            if loop is None:
                shard.stopping = True  # the loop is gone: nothing left to serve
                return
            try:
                loop.call_soon_threadsafe(self._drain)
            except RuntimeError:  # the loop was closed under us: stop quietly
                shard.stopping = True
            finally:
                del loop


# --- the mixin ---------------------------------------------------------------------------------

_NATIVE = "native"
_BACKEND = "_loopcompat_selector"  # instance attribute: the watcher, or _NATIVE after the probe


class SelectorThreadMixin:
    """add_reader/add_writer/remove_reader/remove_writer for loops whose stock ones raise NotImplementedError.

    Mixed in before the stock loop class by loopcompat's builder (or adopt()).
    The first add_reader/add_writer probes the stock method: if it works, the
    loop keeps using it; otherwise a watcher (see the module docstring) serves
    this loop from then on. Sockets only on Windows; on POSIX any descriptor
    poll() accepts.
    """

    def _loopcompat_add(
        self, method: str, fd: Any, bits: int, callback: Callable[..., Any], args: Tuple[Any, ...]
    ) -> Any:
        if self.is_closed():  # type: ignore[attr-defined]
            raise RuntimeError("Event loop is closed")
        stock = getattr(super(), method)
        backend = self.__dict__.get(_BACKEND)
        if backend is None:
            # Probe: a Python whose loop gained native support keeps it.
            try:
                result = stock(fd, callback, *args)
            except NotImplementedError:
                backend = self.__dict__[_BACKEND] = _default_watcher(self)
            else:
                self.__dict__[_BACKEND] = _NATIVE
                return result
        if backend is _NATIVE:
            return stock(fd, callback, *args)
        if _WINDOWS and not isinstance(fd, socket.socket):
            _check_socket(self, method, fd)
        return backend.add(fd, bits, callback, args)

    def _loopcompat_remove(self, method: str, fd: Any, bits: int) -> bool:
        backend = self.__dict__.get(_BACKEND)
        if backend is _NATIVE:
            return getattr(super(), method)(fd)  # type: ignore[no-any-return]
        if backend is None or self.is_closed():  # type: ignore[attr-defined]
            return False
        return backend.remove(fd, bits)  # type: ignore[no-any-return]

    def add_reader(self, fd: Any, callback: Callable[..., Any], *args: Any) -> Any:
        return self._loopcompat_add("add_reader", fd, READ, callback, args)

    def add_writer(self, fd: Any, callback: Callable[..., Any], *args: Any) -> Any:
        return self._loopcompat_add("add_writer", fd, WRITE, callback, args)

    def remove_reader(self, fd: Any) -> bool:
        return self._loopcompat_remove("remove_reader", fd, READ)

    def remove_writer(self, fd: Any) -> bool:
        return self._loopcompat_remove("remove_writer", fd, WRITE)

    def close(self) -> None:
        backend = self.__dict__.get(_BACKEND)
        if isinstance(backend, Watcher) and not self.is_running() and not self.is_closed():  # type: ignore[attr-defined]
            backend.close()
        super().close()  # type: ignore[misc]


# Watchers by name, for tests and benchmarks: "thread" always works.
BACKENDS: Dict[str, Callable[[Any], Watcher]] = {"thread": ThreadWatcher}


def _default_watcher(loop: Any) -> Watcher:
    return ThreadWatcher(loop)


def _check_socket(loop: Any, method: str, fileobj: Any) -> None:
    """Windows: select() and AFD polling watch sockets only (fact S5); say so at registration."""
    from .._guards import check_socket_only
    from .._knowledge import RULES

    rule = next(rule for rule in RULES if rule.fact == "S5")
    check_socket_only(loop, method, rule, fileobj)

