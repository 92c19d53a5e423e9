"""The selector_thread fallback: add_reader/add_writer on loops that lack them.

Some facts about the world this module lives in:

* Windows' ProactorEventLoop is built on an I/O completion port: it learns
  when an operation *finished*, never when a socket *would not block*. Its
  add_reader/add_writer raise NotImplementedError (fact S8), yet libraries
  such as pyzmq, tornado, curl_cffi or c-ares resolvers are written against
  readiness callbacks.
* Readiness on Windows sockets comes from select() (sockets only, at most
  512 per call: FD_SETSIZE is 64 in the SDK and CPython raises it to 512),
  from WSAPoll(), or from the AFD driver request both are built on.
* A Python thread that learns of readiness must take the GIL to tell the
  loop. A loop that is busy in short CPU chunks releases and retakes the GIL
  around every zero-timeout poll, so the GIL's "drop request" (which needs
  five quiet milliseconds) never fires, and the waiting thread only gets the
  GIL when it happens to win a race: tornado's selector thread, measured in
  issue 9, fell to about one round trip per second with a 7.4 s p99. The
  AFD watcher has no thread to starve; :class:`ThreadWatcher` hands the GIL
  over on purpose (see "Busy-loop hand-off" below).

Two watchers serve the four methods, behind one loop-side registry
(:class:`Watcher`) with the stock selector loop's semantics:

* :class:`AfdWatcher`, the default on the IOCP proactor loop: one
  IOCTL_AFD_POLL request per registered socket, completing on the loop's own
  completion port (see the comment above it). No thread, no 512 cap, no
  per-event rebuild; a readiness event reaches its callback in the same loop
  iteration, as on the selector loop.
* :class:`ThreadWatcher`, everywhere else (and should the AFD device be
  unavailable):

  - **Sharding.** Registered sockets are spread over shards of at most
    :data:`SHARD_SIZE` (500: Windows' select() takes 512, one slot is the
    wakeup socket). Each shard is one daemon thread blocked in select()
    (poll() where the OS has it, which has no FD_SETSIZE limit on descriptor
    values) on its own sockets only, so 2,000 sockets are four threads and an
    event costs a select over at most 500 sockets however many are registered.
  - **Incremental sets.** A shard edits its fd lists in place (O(1) per
    change); it never rebuilds them from the registry per event.
  - **Level-triggered without a round trip per event.** A ready socket is
    taken out of its shard's set (so the thread does not spin on it) and handed
    to the loop in a batch; the loop runs the callbacks, then sends the shard
    one "re-arm" command per batch. The shard keeps watching every other
    socket meanwhile: the thread never waits for the loop, so it needs the GIL
    once per batch on the way in and once per re-arm, never for a handshake.
  - **Wakeups only when needed.** Threads hand events over through a deque
    and call call_soon_threadsafe() only when no drain is already scheduled;
    the loop writes a shard's wakeup socket only when no wakeup byte is
    pending. The wakeup is a socket pair because Windows select() can wait on
    sockets only (no pipes, no events).
  - **Busy-loop hand-off.** The loop thread keeps a mirror of each shard's
    set. Once the loop has polled with a zero timeout (it always had work)
    for :data:`ASSIST_INTERVAL`, it polls the mirrors itself, without
    blocking; if a watched socket is ready, a shard thread is waiting for the
    GIL, so the loop blocks on a threading.Event (GIL released, nobody racing
    for it) until the shard has posted its batch, at most
    :data:`HANDOFF_TIMEOUT`. The events are still dispatched by the shard's
    batch alone, never twice. It costs one extra call per loop iteration
    while threads run, and one non-blocking poll per ASSIST_INTERVAL of busy
    time. It needs the loop's ``_selector.select`` (asyncio's own loops); a
    loop without one gets no hand-off.

The watcher is chosen by probing: if the stock add_reader works (a Python
that gains native support), the native method is used and nothing is
started. Nothing exists before the first add_reader/add_writer; close()
cancels every poll, or stops and joins every thread and closes its sockets;
threads are daemons, hold their loop only weakly, and an atexit hook stops
the threads of loops nobody closed, so the interpreter never hangs at exit.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import itertools
import select
import socket
import sys
import threading
import time
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
# Busy-loop hand-off (see the module docstring): how long the loop may poll with
# a zero timeout before it checks for a starved shard (and then between two
# checks), and how long it gives a shard to post once a socket is ready.
ASSIST_INTERVAL = 0.001
HANDOFF_TIMEOUT = 0.005
# How long close() waits for one shard thread; it is woken explicitly and
# exits at once, so reaching this means something is badly wrong.
JOIN_TIMEOUT = 10.0

_WINDOWS = sys.platform == "win32"
_FD_SETSIZE = 1024  # POSIX select(): descriptor *values* must be below this (fact X1); poll() has no limit

# What a shard thread hands the loop: (fd, READ/WRITE/CLOSED bits, the serial of its registration).
_Event = Tuple[int, int, Optional[int]]


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


def _is_closed(fileobj: Any) -> bool:
    """Does a registered object say it was closed? (An int cannot tell: its number is all there is.)"""
    if isinstance(fileobj, int):
        return False
    try:
        return bool(fileobj.fileno() < 0)
    except (OSError, ValueError):
        return True


class _Entry:
    """One registered descriptor, as the loop thread sees it."""

    __slots__ = ("fd", "fileobj", "reader", "writer", "closed", "slot", "serial")

    def __init__(self, fd: int, fileobj: Any, serial: int) -> None:
        self.fd = fd
        self.serial = serial  # tells this registration from a later one of the same descriptor number
        self.fileobj = fileobj
        self.reader: Optional[events.Handle] = None
        self.writer: Optional[events.Handle] = None
        self.closed = False  # closed while registered: no longer watched
        self.slot: Any = None  # the backend's per-descriptor state (a shard, a poll)

    @property
    def bits(self) -> int:
        return (READ if self.reader is not None else 0) | (WRITE if self.writer is not None else 0)

    def swap(self, bits: int, handle: Optional[events.Handle]) -> Optional[events.Handle]:
        """Put ``handle`` in the reader (READ) or writer (WRITE) slot; return what was there."""
        if bits == WRITE:
            old, self.writer = self.writer, handle
        else:
            old, self.reader = self.reader, handle
        return old


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
        self._serials = itertools.count()
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
        if entry is not None and (entry.closed or (entry.fileobj is not fileobj and _is_closed(entry.fileobj))):
            # The descriptor was closed while registered and its number reused
            # (perhaps before the watcher noticed the close): the old callbacks
            # and any report still in flight belong to the closed object.
            self._drop(entry)
            entry = None
        if entry is None:
            entry = self._entries[fd] = _Entry(fd, fileobj, next(self._serials))
        else:
            entry.fileobj = fileobj
            # A new serial: what a thread reports for the registration as it was (a
            # "closed" above all, when an int's number was closed and reused) is
            # dropped, and the thread watches afresh (see _Shard's "set").
            entry.serial = next(self._serials)
        old = entry.swap(bits, handle)
        try:
            self._changed(entry)
        except BaseException:
            entry.swap(bits, old)
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
        handle = entry.swap(bits, None)
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

    def _dispatch(self, loop: Any, entry: _Entry, bits: int, now: bool = False) -> None:
        """Queue (or, with ``now``, run) the callbacks of a ready entry, as the stock selector loop does."""
        if _is_closed(entry.fileobj):
            # A socket object closed while registered (some OSes report the
            # closing descriptor "ready"): never run its callbacks again.
            entry.closed = True
            return
        reader = entry.reader
        if bits & READ and reader is not None:
            if reader._cancelled:  # cancelled through the Handle: the stock loop unregisters
                self.remove(entry.fd, READ)
            elif now:
                reader._run()  # the Handle reports exceptions to the loop's handler
            else:
                loop._add_callback(reader)
        if not bits & WRITE or self._entries.get(entry.fd) is not entry:
            return  # (running the reader may have removed the registration, even added a new one)
        writer = entry.writer
        if writer is not None:
            if writer._cancelled:
                self.remove(entry.fd, WRITE)
            elif now:
                writer._run()
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

    def release(self) -> None:
        """After the loop itself has closed: free what had to outlive it (default: nothing)."""

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

    def any_ready(self) -> bool:
        """Non-blocking: is a descriptor of this set ready (or closed, which the shard reports too)?"""
        readers, writers = self.lists
        if not readers and not writers:
            return False
        try:
            r, w, x = select.select(readers, writers, writers if _WINDOWS else [], 0)
        except (OSError, ValueError):
            return True
        return bool(r or w or x)

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

    def any_ready(self) -> bool:
        """Non-blocking: is a descriptor of this set ready (POLLNVAL: closed, which the shard reports too)?"""
        return bool(self.masks) and bool(self.poll.poll(0))

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
        # The loop thread's copy of what this shard watches, for the busy-loop hand-off.
        self.mirror: Any = _PollSet() if use_poll else _SelectSet()
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self.thread.start()

    # -- loop thread ---------------------------------------------------------------------------

    def watch(self, fd: int, bits: int, owner: Optional[int]) -> None:
        """Have the thread watch ``fd`` for ``bits`` (0: no longer) for registration ``owner``; mirror it."""
        self.send(("set", fd, bits, owner))
        self.mirror.set(fd, bits)

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
        # The serial of the registration each fd belongs to, sent back with its events:
        # a descriptor closed, unregistered and reused by a new registration must not
        # have the old one's events (a stale "closed" above all) applied to the new.
        # (A number, not the entry: the thread must not keep the loop alive.)
        owners: Dict[int, int] = {}

        refused = 0  # select() failures in a row in which no closed descriptor was found
        while True:
            try:
                ready = waitset.wait()
                refused = 0
            except (OSError, ValueError):
                # A registered descriptor was closed: find it, stop watching it, tell the loop.
                bad = waitset.bad_fds()
                if self.wake_fd in bad:
                    raise
                if not bad:
                    # Closed, then its number reused before we probed (a socket made
                    # right after the close): nothing is bad now, so wait again; the
                    # loop's commands for the new registration are on their way.
                    # Failing with nothing to blame, again and again, is a real fault.
                    refused += 1
                    if refused > 3:
                        raise
                ready = [(fd, CLOSED) for fd in bad]
            if self.stopping:
                return
            batch: List[_Event] = []
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
                    batch.append((fd, CLOSED, owners.pop(fd, None)))
                    continue
                bits &= want.get(fd, 0) & ~pending.get(fd, 0)
                if bits:
                    # Level-triggered: stop watching this direction until the
                    # loop has run the callback and re-arms it.
                    held = pending.get(fd, 0) | bits
                    pending[fd] = held
                    waitset.set(fd, want[fd] & ~held)
                    batch.append((fd, bits, owners.get(fd)))
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
                        _, fd, bits, owner = command
                        if bits:
                            if owners.get(fd) != owner:
                                pending.pop(fd, None)  # what was handed over concerned the old registration
                            want[fd] = bits
                            owners[fd] = owner
                        else:
                            want.pop(fd, None)
                            pending.pop(fd, None)
                            owners.pop(fd, None)
                        waitset.set(fd, bits & ~pending.get(fd, 0))
                    elif kind == "rearm":
                        for fd, bits, owner in command[1]:
                            if owners.get(fd) != owner:
                                continue  # re-registered or removed since: "set" took care of it
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
        self._events: Deque[Tuple[_Shard, List[_Event]]] = collections.deque()
        self._drain_scheduled = False
        self._stock_select: Optional[Callable[..., Any]] = None  # the loop's own, once we wrap it
        self._busy_since: Optional[float] = None
        self._handoff = threading.Event()
        self._handoff_waiting = False

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
        shard.watch(entry.fd, entry.bits, entry.serial)

    def _forget(self, entry: _Entry) -> None:
        shard = entry.slot
        if shard is not None:
            entry.slot = None
            shard.load -= 1
            shard.watch(entry.fd, 0, None)  # (a no-op if the thread already dropped a closed one)

    def _pick_shard(self) -> _Shard:
        for shard in self._shards:
            if shard.load < self.shard_size:
                return shard
        shard = _Shard(self, len(self._shards), self.use_poll)
        self._shards.append(shard)
        _LIVE.add(self)
        if self._stock_select is None:
            self._wrap_select()
        return shard

    def _wrap_select(self) -> None:
        """Route the loop's readiness poll through :meth:`_select`, for the busy-loop hand-off."""
        selector = getattr(self._loop_ref(), "_selector", None)  # the proactor, on the proactor loop
        stock = getattr(selector, "select", None)
        if not callable(stock):
            return
        try:
            selector.select = self._select  # type: ignore[union-attr]
        except (AttributeError, TypeError):
            return  # a selector that takes no attributes: no hand-off, as on a foreign loop
        self._stock_select = stock

    def _unwrap_select(self) -> None:
        if self._stock_select is not None:
            selector = getattr(self._loop_ref(), "_selector", None)
            if selector is not None and selector.__dict__.get("select") == self._select:
                del selector.select
            self._stock_select = None

    def _select(self, timeout: Optional[float] = None) -> Any:
        """The loop's poll, on the loop thread: after ASSIST_INTERVAL of zero timeouts, hand the GIL to a shard with events."""
        # perf_counter: time.monotonic() ticks every 15.6 ms on Windows before 3.13
        if timeout != 0:
            self._busy_since = None  # the loop may block: a shard that needs the GIL will get it
        elif self._busy_since is None:
            self._busy_since = time.perf_counter()
        elif not self._drain_scheduled and self._shards and self._failure is None:
            if time.perf_counter() - self._busy_since >= ASSIST_INTERVAL:
                self._hand_off()
                self._busy_since = time.perf_counter()  # after: the poll and the wait are not busy time
        return self._stock_select(timeout)  # type: ignore[misc]

    def _hand_off(self) -> None:
        # Armed before polling: the poll releases the GIL, and a shard that posts
        # meanwhile must find us waiting (post() sets the event).
        self._handoff.clear()
        self._handoff_waiting = True
        try:
            if not self._drain_scheduled and any(shard.mirror.any_ready() for shard in self._shards):
                # A shard has events, or is about to: block without the GIL, so
                # that it takes the GIL uncontested, posts, and wakes us.
                self._handoff.wait(HANDOFF_TIMEOUT)
        finally:
            self._handoff_waiting = False

    def _drain(self) -> None:
        """Run on the loop: run the callbacks of every posted event, then re-arm them, one command per shard.

        The callbacks run right here, each through its own Handle (the caller's
        context, exceptions to the loop's handler), rather than queued for the
        next iteration: under a loop busy in CPU chunks an iteration is a chunk,
        and the event has already waited one to reach this drain.
        """
        self._drain_scheduled = False  # first: a post racing with this drain schedules another
        loop: Any = self._loop_ref()
        if loop is None or self.closed:
            return
        rearm: Dict[_Shard, List[_Event]] = {}
        try:
            while self._events:
                shard, batch = self._events.popleft()
                items = rearm.setdefault(shard, [])
                # All of them first: if a callback raises SystemExit/KeyboardInterrupt, the
                # events not run yet are re-armed too and, level-triggered, come back.
                items.extend(event for event in batch if not event[1] & CLOSED)
                for fd, bits, serial in batch:
                    entry = self._entries.get(fd)
                    if entry is None or entry.serial != serial or entry.slot is not shard:
                        continue  # removed or re-registered since (the shard heard of it first)
                    if bits & CLOSED:
                        entry.closed = True
                        shard.mirror.set(fd, 0)
                        continue
                    if not entry.closed:
                        self._dispatch(loop, entry, bits, now=True)
                    if entry.closed:
                        # Its socket object says it was closed: stop watching the number, which
                        # may belong to another socket by now (re-arming it would report that
                        # socket's readiness forever, to an entry that ignores it).
                        shard.watch(fd, 0, None)
        finally:
            # Batches not reached yet get a drain of their own. (A closed entry's re-arm
            # arrives after its "set" above, finds no owner, and is ignored.)
            if not self.closed:
                for shard, items in rearm.items():
                    if items and not shard.stopping:
                        shard.send(("rearm", items))
                if self._events and not self._drain_scheduled:
                    self._drain_scheduled = True
                    loop.call_soon(self._drain)

    def _shutdown(self) -> None:
        self._unwrap_select()
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

    def post(self, shard: _Shard, batch: List[_Event]) -> None:
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
        if self._handoff_waiting:
            self._handoff.set()


# --- the AFD backend (Windows' IOCP proactor loop) ----------------------------------------------
#
# Some facts about AFD, the driver under every Winsock socket:
#
# * select() and WSAPoll() are built on one request, IOCTL_AFD_POLL, sent to
#   the driver (\Device\Afd). Sent as overlapped I/O, it completes when one of
#   the requested conditions holds on the socket (or at once if one holds
#   already), and the completion is queued on whichever I/O completion port
#   the handle it was sent through is associated with. libuv, wepoll (hence
#   ZeroMQ and mio) and trio are built on it; it is not in the SDK headers,
#   but it has been stable since Windows XP and Wine implements it.
# * So a readiness poll can complete on the proactor loop's own completion
#   port: the loop thread dequeues it in GetQueuedCompletionStatus() like any
#   other I/O. No helper thread, no GIL to win, no wakeup socket, no 512 cap,
#   and nothing is rebuilt per event: one small request per registered socket.
# * A poll is one-shot and level-triggered: resubmitted after the callback has
#   run, it completes at once if the socket is still ready. That is exactly
#   the stock selector loop's contract (a callback per loop iteration while
#   ready), with no extra work when the callback drained the socket.
# * The proactor dispatches a completion by the OVERLAPPED address it carries:
#   IocpProactor._cache maps address -> (future, overlapped, object, callback)
#   and calls callback() inside its own poll, before the loop runs its ready
#   queue. Each registered socket owns one OVERLAPPED + AFD_POLL_INFO block and
#   one cache entry while a poll is in flight; close() cancels them and the
#   proactor's own close() waits for the cancellations to complete, so Windows
#   never writes into freed memory.

_IOCTL_AFD_POLL = 0x00012024
_AFD_POLL_RECEIVE = 0x0001
_AFD_POLL_SEND = 0x0004
_AFD_POLL_DISCONNECT = 0x0008
_AFD_POLL_ABORT = 0x0010
_AFD_POLL_LOCAL_CLOSE = 0x0020
_AFD_POLL_ACCEPT = 0x0080
_AFD_POLL_CONNECT_FAIL = 0x0100
# What makes a socket readable / writable for select(): data, a pending
# connection or the peer's FIN; room to send. A reset or a failed connect
# wakes both sides, as epoll's EPOLLERR/EPOLLHUP do on the stock Linux loop.
_AFD_READ = _AFD_POLL_RECEIVE | _AFD_POLL_ACCEPT | _AFD_POLL_DISCONNECT | _AFD_POLL_ABORT | _AFD_POLL_CONNECT_FAIL
_AFD_WRITE = _AFD_POLL_SEND | _AFD_POLL_ABORT | _AFD_POLL_CONNECT_FAIL
_STATUS_SUCCESS = 0
_STATUS_CANCELLED = 0xC0000120
_STATUS_INVALID_HANDLE = 0xC0000008
_ERROR_INVALID_HANDLE = 6
_ERROR_IO_PENDING = 997
_ERROR_NOT_FOUND = 1168
# WSAIoctl codes for the socket's base provider handle, in the order wepoll
# tries them: layered service providers may wrap the handle AFD knows.
_SIO_BASE_HANDLE = 0x48000022
_SIO_BSP_HANDLE_POLL = 0x4800001D
_SIO_BSP_HANDLE_SELECT = 0x4800001C
_AFD_DEVICE = "\\\\.\\GLOBALROOT\\Device\\Afd\\loopcompat"

_win32: Any = None  # the ctypes bindings, made on first use (Windows only)
# Request blocks Windows may still write into, by address, until their completion
# is dequeued: if a proactor were dropped without draining its port (an interrupted
# close), the blocks leak rather than free memory that the kernel writes later.
_IN_FLIGHT: Dict[int, Any] = {}


def _bindings() -> Any:
    global _win32
    if _win32 is None:
        import ctypes
        from ctypes import wintypes

        class OVERLAPPED(ctypes.Structure):
            _fields_ = [("Internal", ctypes.c_size_t), ("InternalHigh", ctypes.c_size_t),
                        ("Offset", wintypes.DWORD), ("OffsetHigh", wintypes.DWORD), ("hEvent", wintypes.HANDLE)]

        class AFD_POLL_HANDLE_INFO(ctypes.Structure):
            _fields_ = [("Handle", wintypes.HANDLE), ("Events", wintypes.ULONG), ("Status", wintypes.LONG)]

        class AFD_POLL_INFO(ctypes.Structure):
            _fields_ = [("Timeout", ctypes.c_int64), ("NumberOfHandles", wintypes.ULONG),
                        ("Exclusive", wintypes.ULONG), ("Handles", AFD_POLL_HANDLE_INFO * 1)]

        class POLL_BLOCK(ctypes.Structure):
            # One allocation per socket: the OVERLAPPED first, so its address is the block's.
            _fields_ = [("overlapped", OVERLAPPED), ("info", AFD_POLL_INFO)]

        # Private WinDLL objects: argtypes set here cannot clash with anyone's ctypes.windll.
        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined,unused-ignore]
        ws2_32 = ctypes.WinDLL("ws2_32", use_last_error=True)  # type: ignore[attr-defined,unused-ignore]
        kernel32.CreateFileW.argtypes = [wintypes.LPCWSTR, wintypes.DWORD, wintypes.DWORD, ctypes.c_void_p,
                                         wintypes.DWORD, wintypes.DWORD, wintypes.HANDLE]
        kernel32.CreateFileW.restype = wintypes.HANDLE
        kernel32.CreateIoCompletionPort.argtypes = [wintypes.HANDLE, wintypes.HANDLE, ctypes.c_size_t, wintypes.DWORD]
        kernel32.CreateIoCompletionPort.restype = wintypes.HANDLE
        kernel32.DeviceIoControl.argtypes = [wintypes.HANDLE, wintypes.DWORD, ctypes.c_void_p, wintypes.DWORD,
                                             ctypes.c_void_p, wintypes.DWORD, ctypes.c_void_p, ctypes.c_void_p]
        kernel32.DeviceIoControl.restype = wintypes.BOOL
        kernel32.CancelIoEx.argtypes = [wintypes.HANDLE, ctypes.c_void_p]
        kernel32.CancelIoEx.restype = wintypes.BOOL
        kernel32.CloseHandle.argtypes = [wintypes.HANDLE]
        kernel32.CloseHandle.restype = wintypes.BOOL
        ws2_32.WSAIoctl.argtypes = [ctypes.c_size_t, wintypes.DWORD, ctypes.c_void_p, wintypes.DWORD, ctypes.c_void_p,
                                    wintypes.DWORD, ctypes.POINTER(wintypes.DWORD), ctypes.c_void_p, ctypes.c_void_p]
        ws2_32.WSAIoctl.restype = ctypes.c_int

        class Bindings:
            pass

        bindings = Bindings()
        bindings.ctypes = ctypes  # type: ignore[attr-defined]
        bindings.wintypes = wintypes  # type: ignore[attr-defined]
        bindings.kernel32 = kernel32  # type: ignore[attr-defined]
        bindings.ws2_32 = ws2_32  # type: ignore[attr-defined]
        bindings.POLL_BLOCK = POLL_BLOCK  # type: ignore[attr-defined]
        _win32 = bindings
    return _win32


def _base_handle(fd: int) -> int:
    """The handle AFD knows for socket ``fd`` (through any layered providers)."""
    w = _bindings()
    out = w.ctypes.c_size_t()
    size = w.wintypes.DWORD()
    for code in (_SIO_BASE_HANDLE, _SIO_BSP_HANDLE_POLL, _SIO_BSP_HANDLE_SELECT):
        if w.ws2_32.WSAIoctl(fd, code, None, 0, w.ctypes.byref(out), w.ctypes.sizeof(out), w.ctypes.byref(size),
                             None, None) == 0 and out.value:
            return int(out.value)
    return fd


def open_afd(iocp: int) -> int:
    """A handle on the AFD device whose requests complete on completion port ``iocp`` (raises OSError)."""
    w = _bindings()
    # SYNCHRONIZE access, FILE_SHARE_READ | FILE_SHARE_WRITE, OPEN_EXISTING, FILE_FLAG_OVERLAPPED
    handle = w.kernel32.CreateFileW(_AFD_DEVICE, 0x00100000, 3, None, 3, 0x40000000, None)
    if not handle or handle == w.ctypes.c_void_p(-1).value:
        raise w.ctypes.WinError(w.ctypes.get_last_error())
    if not w.kernel32.CreateIoCompletionPort(handle, iocp, 0, 0):
        error = w.ctypes.get_last_error()
        w.kernel32.CloseHandle(handle)
        raise w.ctypes.WinError(error)
    return int(handle)


def send_poll(afd: int, block: Any, address: int, base: int, mask: int) -> bool:
    """Fill POLL_BLOCK ``block`` (at ``address``) for one socket and send it; DeviceIoControl's result.

    False with ERROR_IO_PENDING is the usual outcome; completed or pending, the
    completion is queued on the device's port.
    """
    w = _bindings()
    block.overlapped.Internal = 0x103  # STATUS_PENDING, as DeviceIoControl would set
    block.overlapped.InternalHigh = 0
    info = block.info
    info.Timeout = 0x7FFFFFFFFFFFFFFF
    info.NumberOfHandles = 1
    info.Exclusive = 0
    info.Handles[0].Handle = base
    info.Handles[0].Events = mask
    info.Handles[0].Status = 0
    info_address = address + type(block).info.offset
    info_size = w.ctypes.sizeof(info)
    return bool(w.kernel32.DeviceIoControl(afd, _IOCTL_AFD_POLL, info_address, info_size, info_address, info_size,
                                           None, address))


class _AfdPoll:
    """One registered socket's poll: its request block, and its slot in the proactor's cache.

    It stands in for the future in ``IocpProactor._cache``: the proactor calls
    ``done()``, then ``complete()`` (our callback) and ``set_result()`` when
    the poll completes, and ``cancel()`` when it closes with the poll in flight.
    """

    __slots__ = ("watcher", "entry", "block", "address", "base", "pending", "mask", "cancelling", "rearming",
                 "rearm", "__weakref__")

    _source_traceback = None  # read by IocpProactor.close() when a cancel fails

    def __init__(self, watcher: "AfdWatcher", entry: _Entry, loop: Any) -> None:
        w = _bindings()
        self.watcher = watcher
        self.entry: Optional[_Entry] = entry
        self.block = w.POLL_BLOCK()
        self.address: int = w.ctypes.addressof(self.block)
        self.base = _base_handle(entry.fd)
        self.pending = False  # a request is in flight (and in the proactor's cache)
        self.mask = 0  # the AFD events of the request in flight
        self.cancelling = False
        self.rearming = False  # callbacks queued; resubmit once they have run
        self.rearm = events.Handle(watcher._rearm, (self,), loop, None)

    # -- the future protocol IocpProactor uses ------------------------------------------------------

    def done(self) -> bool:
        return False  # so the proactor always calls complete()

    def cancelled(self) -> bool:
        return False

    def set_result(self, value: Any) -> None:
        pass

    def set_exception(self, exc: BaseException) -> None:  # complete() raises nothing
        pass

    def cancel(self, msg: Any = None) -> bool:
        # Only IocpProactor.close() cancels: the port is closing, so this poll is
        # final. (Resubmitted, it would keep close() waiting for its completion.)
        entry, self.entry = self.entry, None
        if entry is not None and entry.slot is self:
            entry.slot = None
        self.watcher._cancel(self)
        return True

    def complete(self, transferred: Any, key: Any, ov: Any) -> None:
        _IN_FLIGHT.pop(self.address, None)
        try:
            self.watcher._completed(self)
        except Exception as exc:  # noqa: BLE001 - the proactor would swallow it (set_exception) or stop the loop
            entry = self.entry
            if entry is not None:
                self.watcher._lost(entry, exc)


class AfdWatcher(Watcher):
    """Readiness from IOCTL_AFD_POLL requests completing on the proactor's own completion port."""

    name = "afd"

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        proactor = getattr(loop, "_proactor", None)
        iocp = getattr(proactor, "_iocp", None)
        if iocp is None or not isinstance(getattr(proactor, "_cache", None), dict):
            raise OSError("not an IocpProactor loop: AFD polls need its completion port and cache")
        self._afd: Optional[int] = open_afd(iocp)
        self._proactor = proactor
        self._cache: Dict[int, Any] = proactor._cache  # type: ignore[union-attr]
        self._polls: "weakref.WeakSet[_AfdPoll]" = weakref.WeakSet()

    @staticmethod
    def _mask(bits: int) -> int:
        return ((_AFD_READ if bits & READ else 0) | (_AFD_WRITE if bits & WRITE else 0)) | _AFD_POLL_LOCAL_CLOSE

    # -- loop thread: registrations --------------------------------------------------------------

    def _changed(self, entry: _Entry) -> None:
        poll = entry.slot
        if poll is None:
            poll = entry.slot = _AfdPoll(self, entry, self._loop_ref())
            self._polls.add(poll)
        if poll.pending:
            if poll.mask != self._mask(entry.bits) and not poll.cancelling:
                self._cancel(poll)  # its completion resubmits with the new interest
        elif not poll.rearming:
            self._submit(poll)

    def _forget(self, entry: _Entry) -> None:
        poll = entry.slot
        if poll is not None:
            entry.slot = None
            poll.entry = None
            if poll.pending and not poll.cancelling:
                self._cancel(poll)

    def _submit(self, poll: _AfdPoll) -> None:
        """Send the poll request (raises OSError when Windows refuses it)."""
        assert poll.entry is not None and self._afd is not None
        if self._proactor._iocp is None:  # type: ignore[attr-defined]
            raise RuntimeError("IocpProactor is closed")
        w = _bindings()
        mask = self._mask(poll.entry.bits)
        # In the cache first: the completion is only dequeued by this thread, later.
        # (The poll as the cache's "object": the proactor cancels polls of objects it
        # stops serving, and a user's socket may be one of them.)
        self._cache[poll.address] = (poll, poll, poll, poll.complete)
        _IN_FLIGHT[poll.address] = poll.block
        if not send_poll(self._afd, poll.block, poll.address, poll.base, mask):
            error = w.ctypes.get_last_error()
            if error != _ERROR_IO_PENDING:
                del self._cache[poll.address]  # refused: no completion will come
                del _IN_FLIGHT[poll.address]
                raise w.ctypes.WinError(error)
        # (Completed at once or not, the completion is queued on the port.)
        poll.pending = True
        poll.mask = mask
        poll.cancelling = False

    def _cancel(self, poll: _AfdPoll) -> None:
        if not poll.pending or poll.cancelling or self._afd is None:
            return
        poll.cancelling = True
        w = _bindings()
        if not w.kernel32.CancelIoEx(self._afd, poll.address):
            # ERROR_NOT_FOUND: it completed meanwhile; the completion is queued.
            pass

    # -- loop thread: completions, inside IocpProactor._poll() -------------------------------------

    def _completed(self, poll: _AfdPoll) -> None:
        poll.pending = False
        poll.cancelling = False
        entry = poll.entry
        if entry is None or self.closed:
            return
        status = poll.block.overlapped.Internal & 0xFFFFFFFF
        info = poll.block.info
        happened = info.Handles[0].Events if status == _STATUS_SUCCESS and info.NumberOfHandles else 0
        if happened & _AFD_POLL_LOCAL_CLOSE or status == _STATUS_INVALID_HANDLE:
            entry.closed = True  # the socket was closed while registered: stop watching it
            return
        if status not in (_STATUS_SUCCESS, _STATUS_CANCELLED):
            self._lost(entry, OSError(f"the AFD poll completed with NTSTATUS {status:#010x}"))
            return
        bits = (READ if happened & _AFD_READ else 0) | (WRITE if happened & _AFD_WRITE else 0)
        bits &= entry.bits
        loop: Any = self._loop_ref()
        if bits and loop is not None:
            self._dispatch(loop, entry, bits)
            if entry.slot is poll and not entry.closed:
                # Queued after the callbacks: resubmitted once they have run.
                poll.rearming = True
                loop._add_callback(poll.rearm)
            return
        self._resubmit(poll)  # cancelled for a new interest, or an event nobody wants now

    def _rearm(self, poll: _AfdPoll) -> None:
        poll.rearming = False
        if not self.closed:
            self._resubmit(poll)

    def _resubmit(self, poll: _AfdPoll) -> None:
        entry = poll.entry
        if entry is None or entry.closed or poll.pending or not entry.bits:
            return
        try:
            self._submit(poll)
        except (OSError, RuntimeError) as exc:
            self._lost(entry, exc)

    def _lost(self, entry: _Entry, exc: BaseException) -> None:
        """Stop watching ``entry``: silently if its socket was closed, else saying why on the loop."""
        entry.closed = True
        fileobj = entry.fileobj
        if getattr(exc, "winerror", None) == _ERROR_INVALID_HANDLE or _is_closed(fileobj):
            return  # closed between two polls: as for a close seen by a poll, nothing to report
        loop = self._loop_ref()
        if loop is not None and not loop.is_closed():
            loop.call_exception_handler({
                "message": f"loopcompat selector_thread fallback: cannot poll {fileobj!r} any more; "
                "its add_reader/add_writer callbacks will not run again",
                "exception": exc,
            })

    # -- close ---------------------------------------------------------------------------------------

    def _shutdown(self) -> None:
        for poll in list(self._polls):
            poll.cancel()  # final, as when the proactor cancels it
        # The cancelled requests complete on the port: IocpProactor.close() waits
        # for every cache entry, ours included, before it closes the port.

    def release(self) -> None:
        afd, self._afd = self._afd, None
        if afd is not None:
            _bindings().kernel32.CloseHandle(afd)


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
        if isinstance(backend, Watcher) and self.is_closed():  # type: ignore[attr-defined]
            backend.release()


# Watchers by name, for tests and benchmarks: "thread" always works.
def _default_watcher(loop: Any) -> Watcher:
    """AFD polls on the IOCP proactor loop; otherwise (or if the AFD device cannot be opened) threads."""
    if _WINDOWS and hasattr(loop, "_proactor"):
        try:
            return AfdWatcher(loop)
        except OSError as exc:
            from asyncio.log import logger

            logger.debug("loopcompat selector_thread fallback: AFD polling unavailable (%r); using threads", exc)
    return ThreadWatcher(loop)


def _check_socket(loop: Any, method: str, fileobj: Any) -> None:
    """Windows: select() and AFD polling watch sockets only (fact S5); say so at registration."""
    from .._guards import check_socket_only
    from .._knowledge import RULES

    rule = next(rule for rule in RULES if rule.fact == "S5")
    check_socket_only(loop, method, rule, fileobj)


if _WINDOWS:
    # tornado and pyzmq would start a select() thread of their own next to this fallback.
    from ._peers import share_add_reader

    share_add_reader(SelectorThreadMixin)
