"""The selector_thread fallback: add_reader/add_writer on loops without them (fact S8).

On Windows (the test bed runs these under Wine) the loop is the real
ProactorEventLoop that loopcompat builds for needs=["add_reader"] with
max_sockets=2000. Elsewhere it is a SelectorEventLoop whose stock
add_reader/add_writer/remove_* raise NotImplementedError, as the proactor's
do, given the fallback by loopcompat's own class builder from a Windows
proactor plan. Every behaviour test runs on each watcher backend this
platform has: threads waiting in select() (Windows; on POSIX with small
shards, so that sharding is exercised) or poll() (POSIX).

Real sockets and real loops only; no test asserts a duration.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import os
import random
import socket
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest

import loopcompat
from loopcompat import Platform, UnsupportedError
from loopcompat._build import HOT_PATH_METHODS
from loopcompat._fallbacks import _selector_thread as st
from loopcompat._fallbacks._selector_thread import SelectorThreadError, SelectorThreadMixin

from .conftest import IS_WINDOWS, UNDER_WINE, windows_only
from loopcompat.testing import add_reader_loop

TIMEOUT = 30.0  # a bound that only a hang reaches

# afd: IOCTL_AFD_POLL on the proactor's completion port (the default on Windows);
# thread-*: the sharded selector threads (the default elsewhere, and where AFD is unavailable).
BACKENDS = ["afd", "thread-select"] if IS_WINDOWS else ["thread-poll", "thread-select"]
THREAD_BACKEND = "thread-select" if IS_WINDOWS else "thread-poll"


def fallback_loop() -> asyncio.AbstractEventLoop:
    """A loop whose add_reader works only through the fallback; its watcher not chosen yet."""
    loop = add_reader_loop()
    assert isinstance(loop, SelectorThreadMixin)
    assert not IS_WINDOWS or isinstance(loop, asyncio.ProactorEventLoop)
    return loop


def use_backend(loop: asyncio.AbstractEventLoop, backend: str) -> None:
    if backend == "afd":
        watcher: st.Watcher = st.AfdWatcher(loop)
    elif backend == "thread-poll":
        watcher = st.ThreadWatcher(loop, use_poll=True)
    elif backend == "thread-select":
        # On POSIX, small shards: a few hundred sockets exercise many shards.
        watcher = st.ThreadWatcher(loop, use_poll=False, shard_size=st.SHARD_SIZE if IS_WINDOWS else 40)
    else:
        raise AssertionError(backend)
    loop.__dict__[st._BACKEND] = watcher


@pytest.fixture(params=BACKENDS)
def backend(request: Any) -> str:
    return request.param  # type: ignore[no-any-return]


def recording_loop(backend: str) -> asyncio.AbstractEventLoop:
    """A fallback loop on ``backend`` whose exception handler contexts collect in ``loop.errors``."""
    loop = fallback_loop()
    use_backend(loop, backend)
    errors: List[Dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: errors.append(context))
    loop.errors = errors  # type: ignore[attr-defined]
    return loop


@pytest.fixture
def loop(backend: str) -> Iterator[asyncio.AbstractEventLoop]:
    loop = recording_loop(backend)
    try:
        yield loop
    finally:
        loop.close()
    assert watcher_threads(loop) == []


@pytest.fixture
def pairs() -> Iterator[Callable[[int], List[Tuple[socket.socket, socket.socket]]]]:
    made: List[Tuple[socket.socket, socket.socket]] = []

    def make(n: int) -> List[Tuple[socket.socket, socket.socket]]:
        new = []
        for _ in range(n):
            a, b = socket.socketpair()
            a.setblocking(False)
            b.setblocking(False)
            new.append((a, b))
        made.extend(new)
        return new

    yield make
    for a, b in made:
        a.close()
        b.close()


def watcher_threads(loop: asyncio.AbstractEventLoop) -> List[threading.Thread]:
    watcher = loop.__dict__.get(st._BACKEND)
    return [t for t in getattr(watcher, "threads", []) if t.is_alive()]


def run(loop: asyncio.AbstractEventLoop, awaitable: Any) -> Any:
    return loop.run_until_complete(asyncio.wait_for(awaitable, TIMEOUT))


def spin(loop: asyncio.AbstractEventLoop, iterations: int = 20) -> None:
    """Let the loop and the watcher threads exchange a few rounds."""

    async def rounds() -> None:
        for _ in range(iterations):
            await asyncio.sleep(0.001)

    run(loop, rounds())


async def until(predicate: Callable[[], bool]) -> None:
    while not predicate():
        await asyncio.sleep(0.001)


def drain(sock: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return data
        if not chunk:
            return data
        data += chunk


# --- the plan ----------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:loopcompat cannot meet:RuntimeWarning")
def test_plans_report_the_fallback_once_it_ships():
    for python in ("3.8", "3.13"):
        windows = Platform("windows", "10", python)
        plan = loopcompat.plan(["add_reader"], platform=windows, loop="proactor")
        assert plan.fallbacks == {"selector_thread"} and plan.unmet == ()
        assert plan.support("add_reader").level == "fallback"
        assert plan.support("add_writer").fallback == "selector_thread"
        # past select()'s 512 sockets the proactor loop with the fallback is the plan
        big = loopcompat.plan(["add_reader"], platform=windows, max_sockets=2000)
        assert (big.loop, big.fallbacks, big.unmet) == ("proactor", {"selector_thread"}, ())
        # needs together with subprocesses: one loop serves both
        both = loopcompat.plan(["add_reader", "subprocess"], platform=windows)
        assert (both.loop, both.fallbacks, both.unmet) == ("proactor", {"selector_thread"}, ())
        # not declared: not enabled (fallbacks are explicit), and the error says how
        undeclared = loopcompat.plan([], platform=windows, loop="proactor")
        assert undeclared.support("add_reader").level == "unsupported"
        assert "declare needs=['add_reader']" in undeclared.support("add_reader").reason
        # switched off: unmet
        off = loopcompat.plan(["add_reader"], platform=windows, loop="proactor", fallbacks=False,
                              on_unsupported="warn")
        assert off.unmet == ("add_reader",)


# --- behaviour, on every backend ---------------------------------------------------------------


def test_ping_pong(loop, pairs):
    rounds = 300
    done = loop.create_future()
    counts = [0, 0, 0]
    socks = pairs(3)

    def echo(sock: socket.socket) -> None:
        data = drain(sock)
        if data:
            sock.send(data)

    def back(i: int, sock: socket.socket) -> None:
        data = drain(sock)
        if not data:
            return
        assert data == b"ping %d" % counts[i]
        counts[i] += 1
        if counts[i] < rounds:
            sock.send(b"ping %d" % counts[i])
        elif all(count == rounds for count in counts) and not done.done():
            done.set_result(None)

    assert not watcher_threads(loop)  # no thread before the first add_reader
    for i, (a, b) in enumerate(socks):
        assert loop.add_reader(a, echo, a) is not None
        loop.add_reader(b.fileno(), back, i, b)  # integer descriptors work too
        b.send(b"ping 0")
    run(loop, done)
    assert counts == [rounds] * 3 and loop.errors == []
    for a, b in socks:
        assert loop.remove_reader(a) is True and loop.remove_reader(b) is True


def test_events_keep_arriving_while_the_loop_is_busy_in_short_cpu_chunks(loop, pairs):
    """The loop never idles: a task burns 1 ms chunks and yields with sleep(0) in between.

    Threads in select()/poll() then never win the GIL by themselves (the loop
    retakes it after every zero-timeout poll), and before the busy-loop
    hand-off this ping-pong stopped after its first round trip until TIMEOUT.
    """
    rounds = 100
    (a, b), = pairs(1)
    done = loop.create_future()
    count = [0]

    def echo() -> None:
        data = drain(a)
        if data:
            a.send(data)

    def back() -> None:
        if drain(b):
            count[0] += 1
            if count[0] == rounds:
                done.set_result(None)
            else:
                b.send(b"x")

    async def main() -> int:
        chunks = 0
        loop.add_reader(a, echo)
        loop.add_reader(b, back)
        b.send(b"x")
        while not done.done():
            end = time.perf_counter() + 0.001
            while time.perf_counter() < end:
                pass
            chunks += 1
            await asyncio.sleep(0)
        return chunks

    chunks = run(loop, main())
    assert count[0] == rounds and loop.errors == []
    assert chunks >= rounds  # the loop really was busy all along: at least a chunk per round trip
    if not IS_WINDOWS:
        # Each event reaches its callback within two chunks (the hand-off comes after 1 ms of busy
        # polls). Without it, a starved thread took 14-80 chunks per round trip on average, or
        # stalled for good, depending on who won the GIL race. (Under Wine every loop call is a
        # wineserver round trip, so iterations there are too uneven for a count.)
        assert chunks <= 4 * rounds, chunks / rounds
    assert loop.remove_reader(a) and loop.remove_reader(b)


def test_the_busy_loop_hand_off_wraps_the_loop_poll_only_while_threads_run(pairs):
    loop = fallback_loop()
    use_backend(loop, THREAD_BACKEND)
    selector = loop._selector  # type: ignore[attr-defined]  # the IocpProactor on the proactor loop
    try:
        assert "select" not in vars(selector)
        (a, b), = pairs(1)
        loop.add_reader(a, lambda: None)
        assert "select" in vars(selector)  # the watcher's, in front of the stock method
        assert loop.remove_reader(a)
    finally:
        loop.close()
    assert "select" not in vars(selector)


def test_writer_fires_when_writable_and_with_a_reader_on_the_same_socket(loop, pairs):
    (a, b), = pairs(1)
    written = loop.create_future()
    read = loop.create_future()
    loop.add_writer(a, lambda: written.done() or written.set_result(a.send(b"x")))
    loop.add_reader(a, lambda: read.done() or read.set_result(drain(a)))
    assert run(loop, written) == 1
    assert loop.remove_writer(a) is True
    assert drain_until(loop, b, 1) == b"x"
    b.send(b"y")
    assert run(loop, read) == b"y"

    # a full send buffer: the writer fires again once the peer has read
    while True:
        try:
            a.send(b"z" * 65536)
        except (BlockingIOError, InterruptedError):
            break
    again = loop.create_future()
    loop.add_writer(a, lambda: again.done() or again.set_result(True))
    spin(loop)
    assert not again.done()  # not writable: not called
    run(loop, until(lambda: (drain(b), again.done())[1]))  # the peer reads until the writer fires
    assert loop.remove_writer(a) is True and loop.remove_reader(a) is True


def drain_until(loop: asyncio.AbstractEventLoop, sock: socket.socket, size: int) -> bytes:
    data = bytearray()

    async def reading() -> None:
        while len(data) < size:
            data.extend(drain(sock))
            await asyncio.sleep(0.001)

    run(loop, reading())
    return bytes(data)


def test_level_triggered_until_the_data_is_read(loop, pairs):
    (a, b), = pairs(1)
    calls: List[int] = []

    def lazy() -> None:
        calls.append(1)
        if len(calls) == 5:
            drain(a)  # only now is it read

    loop.add_reader(a, lazy)
    b.send(b"!")
    run(loop, until(lambda: len(calls) >= 5))
    spin(loop)
    assert len(calls) == 5  # called again and again while readable, never once drained
    assert loop.remove_reader(a) is True


def test_reregistration_replaces_the_callback(loop, pairs):
    (a, b), = pairs(1)
    seen: List[str] = []
    first = loop.add_reader(a, lambda: seen.append("first"))
    second = loop.add_reader(a, lambda: (seen.append("second"), drain(a)))
    assert first.cancelled() and not second.cancelled()
    b.send(b"1")
    run(loop, until(lambda: "second" in seen))
    assert "first" not in seen
    loop.add_reader(a, lambda: (seen.append("third"), drain(a)))
    b.send(b"2")
    run(loop, until(lambda: "third" in seen))
    assert seen.count("first") == 0
    assert loop.remove_reader(a) is True


def test_a_reader_that_replaces_the_registration_keeps_the_new_one(loop, pairs):
    (a, b), = pairs(1)
    seen: List[str] = []

    def reader() -> None:
        drain(a)
        seen.append("reader")
        loop.remove_reader(a)
        loop.remove_writer(a)
        loop.add_writer(a, seen.append, "new writer")

    loop.add_writer(a, seen.append, "old writer")  # writable: fires every round until the reader replaces it
    loop.add_reader(a, reader)
    b.send(b"x")  # now readable and writable in the same round
    run(loop, until(lambda: "new writer" in seen))
    assert "old writer" not in seen[seen.index("reader"):]
    assert loop.remove_writer(a) is True and loop.remove_reader(a) is False


def test_remove_returns_whether_a_callback_was_removed(loop, pairs):
    (a, b), = pairs(1)
    assert loop.remove_reader(a) is False and loop.remove_writer(a) is False  # nothing yet
    handle = loop.add_reader(a, lambda: None)
    assert loop.remove_writer(a) is False  # a reader, no writer
    assert loop.remove_reader(a) is True and handle.cancelled()
    assert loop.remove_reader(a) is False
    loop.add_writer(a.fileno(), lambda: None)
    assert loop.remove_writer(a) is True  # the socket object and its descriptor are the same key
    with pytest.raises(ValueError):
        loop.add_reader(-1, lambda: None)
    with pytest.raises(ValueError):
        loop.add_reader("not a file", lambda: None)
    loop.close()
    assert loop.remove_reader(a) is False
    with pytest.raises(RuntimeError, match="closed"):
        loop.add_reader(a, lambda: None)


def test_a_removed_callback_never_runs_even_with_a_select_in_flight(loop, pairs):
    (a, b), (c, d) = pairs(2)
    seen: List[str] = []
    loop.add_reader(c, lambda: (seen.append("c"), drain(c)))
    loop.add_reader(a, lambda: seen.append("a"))
    spin(loop)  # the watcher thread now waits on a and c
    assert loop.remove_reader(a) is True
    b.send(b"late")  # readable only after removal
    d.send(b"x")
    run(loop, until(lambda: "c" in seen))
    spin(loop)
    assert "a" not in seen
    # removed and added again while data waits: the new callback gets it
    loop.add_reader(a, lambda: (seen.append("a2"), drain(a)))
    run(loop, until(lambda: "a2" in seen))
    assert loop.remove_reader(a) is True and loop.remove_reader(c) is True


def test_cancelling_the_returned_handle_unregisters_like_the_stock_loop(loop, pairs):
    (a, b), = pairs(1)
    seen: List[int] = []
    handle = loop.add_reader(a, seen.append, 1)
    handle.cancel()
    b.send(b"x")
    spin(loop)
    assert seen == []
    assert loop.remove_reader(a) is False  # the stock loop unregistered it when it saw the event


def test_callback_exceptions_reach_the_handler_and_later_events_still_fire(loop, pairs):
    (a, b), (c, d) = pairs(2)
    seen: List[str] = []

    def boom() -> None:
        drain(a)
        seen.append("boom")
        raise ZeroDivisionError("in a reader callback")

    loop.add_reader(a, boom)
    loop.add_reader(c, lambda: (seen.append("c"), drain(c)))
    for round_ in range(3):
        b.send(b"x")
        d.send(b"y")
        run(loop, until(lambda round_=round_: seen.count("boom") > round_ and seen.count("c") > round_))
    assert [type(error.get("exception")) for error in loop.errors] == [ZeroDivisionError] * 3
    assert all("Exception in callback" in error["message"] for error in loop.errors)
    assert all(isinstance(error.get("handle"), asyncio.Handle) for error in loop.errors)


def test_callbacks_run_on_the_loop_thread_in_the_context_of_registration(loop, pairs):
    (a, b), = pairs(1)
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    seen: List[Tuple[str, threading.Thread]] = []

    def reader() -> None:
        drain(a)
        seen.append((var.get(), threading.current_thread()))
        var.set("changed in the callback")

    token = var.set("at registration")
    loop.add_reader(a, reader)
    var.reset(token)
    for n in range(2):
        b.send(b"x")
        run(loop, until(lambda n=n: len(seen) > n))
    assert seen[0] == ("at registration", threading.current_thread())
    # like the stock loop: one context per registration, kept between calls
    assert seen[1] == ("changed in the callback", threading.current_thread())
    assert var.get() == "unset"
    loop.remove_reader(a)


def test_listening_sockets_are_readable_when_a_connection_waits(loop):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.setblocking(False)
    accepted: List[socket.socket] = []
    loop.add_reader(server, lambda: accepted.append(server.accept()[0]))
    clients = [socket.create_connection(server.getsockname()) for _ in range(3)]
    try:
        run(loop, until(lambda: len(accepted) == 3))
        assert loop.remove_reader(server) is True
    finally:
        for sock in clients + accepted + [server]:
            sock.close()


def test_datagram_sockets(loop):
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setblocking(False)
    got: List[bytes] = []
    writable = loop.create_future()
    try:
        loop.add_reader(receiver, lambda: got.append(receiver.recv(100)))
        loop.add_writer(sender, lambda: writable.done() or writable.set_result(True))
        assert run(loop, writable) is True and loop.remove_writer(sender) is True
        for n in range(5):
            sender.sendto(b"datagram %d" % n, receiver.getsockname())
        run(loop, until(lambda: len(got) == 5))
        assert got == [b"datagram %d" % n for n in range(5)]
    finally:
        loop.remove_reader(receiver)
        receiver.close()
        sender.close()


def test_peer_close_wakes_the_reader_and_a_failed_connect_wakes_the_writer(loop, pairs):
    (a, b), = pairs(1)
    eof = loop.create_future()
    loop.add_reader(a, lambda: eof.done() or eof.set_result(a.recv(10)))
    b.close()
    assert run(loop, eof) == b""  # readable at EOF, as select() says
    assert loop.remove_reader(a) is True

    closed_port = socket.socket()
    closed_port.bind(("127.0.0.1", 0))
    address = closed_port.getsockname()
    closed_port.close()  # nothing listens there any more
    client = socket.socket()
    client.setblocking(False)
    failed = loop.create_future()
    try:
        client.connect_ex(address)
        loop.add_writer(client, lambda: failed.done() or failed.set_result(
            client.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)))
        assert run(loop, failed) != 0  # ECONNREFUSED / WSAECONNREFUSED
        assert loop.remove_writer(client) is True
    finally:
        client.close()


def test_two_thousand_sockets_with_random_readiness_lose_nothing(loop, pairs):
    watcher = loop.__dict__[st._BACKEND]
    threaded = isinstance(watcher, st.ThreadWatcher)
    if IS_WINDOWS or not threaded or watcher.use_poll:
        count = 2000  # beyond 512 per select() on Windows
        if not IS_WINDOWS:
            _raise_fd_limit(5000)
    else:
        count = 400  # POSIX select() takes descriptors below 1024 only: 400 sockets, 10 shards of 40
    socks = pairs(count // 2)
    peer = {}
    for a, b in socks:
        peer[a.fileno()], peer[b.fileno()] = b, a
    got: Dict[int, int] = {}

    def ready(sock: socket.socket) -> None:
        got[sock.fileno()] = got.get(sock.fileno(), 0) + len(drain(sock))

    everything = [s for pair in socks for s in pair]
    for sock in everything:
        loop.add_reader(sock, ready, sock)
    rng = random.Random(9)
    expected: Dict[int, int] = {}
    for _ in range(8):
        chosen = rng.sample(everything, rng.randint(1, count // 3))
        for sock in chosen:
            size = rng.randint(1, 3)
            peer[sock.fileno()].send(b"x" * size)
            expected[sock.fileno()] = expected.get(sock.fileno(), 0) + size
        run(loop, until(lambda: got == expected))
    spin(loop)
    assert got == expected  # every byte, on the right socket, nothing extra
    assert loop.errors == []
    if threaded:
        assert len(watcher_threads(loop)) == -(-count // watcher.shard_size)  # shards of <= shard_size sockets
    else:
        assert watcher_threads(loop) == []  # AFD polls complete on the loop's own port: no thread at all
    for sock in everything:
        assert loop.remove_reader(sock) is True


async def register_reused_numbers(loop: asyncio.AbstractEventLoop, rounds: int, remove_first: bool) -> int:
    """Register a, close it (after remove_reader() or not), register the socket that gets a's
    number, and check its callback runs; how many rounds the number was reused."""
    reused = 0
    for _ in range(rounds):
        a, b = socket.socketpair()
        loop.add_reader(a, lambda: None)
        await asyncio.sleep(0)  # the watcher is watching a
        number = a.fileno()
        if remove_first:
            assert loop.remove_reader(a)
        a.close()
        b.close()
        c, d = socket.socketpair()
        c.setblocking(False)
        d.setblocking(False)
        new, peer = (d, c) if d.fileno() == number else (c, d)
        reused += new.fileno() == number
        fired = loop.create_future()
        loop.add_reader(new, lambda: fired.done() or fired.set_result(new.recv(1)))
        peer.send(b"x")
        assert await asyncio.wait_for(fired, TIMEOUT) == b"x"
        assert loop.remove_reader(new)
        c.close()
        d.close()
    return reused


def test_a_descriptor_number_reused_after_removal_serves_the_new_registration(loop):
    """remove_reader(a); a.close(); a new socket gets a's number: its callbacks must run.

    A thread that saw a's number closed reports it; that report concerns a's
    registration, not the new one (it used to mark the new one closed, now and then).
    """
    assert run(loop, register_reused_numbers(loop, 400, remove_first=True)) > 0  # the numbers were reused
    assert loop.errors == []


def test_a_number_reused_before_the_watcher_saw_its_socket_close_serves_the_new_socket(loop):
    """a.close() without remove_reader(); a new socket gets a's number in the same iteration.

    The watcher learns of the close later (a completed AFD poll, a thread's
    report); that news concerns a, and must not silence the new registration.
    """
    assert run(loop, register_reused_numbers(loop, 200, remove_first=False)) > 0  # the numbers were reused
    assert loop.errors == []


def test_a_descriptor_closed_while_registered_stops_being_watched(loop, pairs):
    (a, b), (c, d) = pairs(2)
    seen: List[str] = []
    loop.add_reader(a, lambda: seen.append("a"))
    loop.add_reader(c, lambda: (seen.append("c"), drain(c)))
    spin(loop)
    a.close()  # closed without remove_reader()
    for n in range(3):  # wake the watcher: it must cope with the closed descriptor
        d.send(b"x")
        run(loop, until(lambda n=n: seen.count("c") > n))
    spin(loop)
    assert "a" not in seen
    assert loop.remove_reader(a) is True  # found by identity, as the stock selectors do
    assert [e for e in loop.errors if "loopcompat" in e.get("message", "")] == []
    # the loop is healthy: a new socket (maybe with a's old number) works
    (e, f), = pairs(1)
    loop.add_reader(e, lambda: (seen.append("e"), drain(e)))
    f.send(b"y")
    run(loop, until(lambda: "e" in seen))


THREAD_BACKENDS = [backend for backend in BACKENDS if backend.startswith("thread")]


def wait_for_posted_events(watcher: Any) -> None:
    """Block the loop thread until a shard has posted events (the loop cannot drain them meanwhile)."""
    deadline = time.monotonic() + TIMEOUT
    while not watcher._events:
        assert time.monotonic() < deadline, "no event posted"
        time.sleep(0.001)


@pytest.mark.parametrize("backend", THREAD_BACKENDS)
def test_a_closed_socket_number_taken_by_an_unregistered_socket_is_not_watched_on(loop):
    """A writer's socket closed without remove_writer() while its event is in flight; an
    unregistered socket takes its number. That socket is always writable: re-armed, its
    readiness would come back forever to an entry that ignores it (a spinning loop)."""
    watcher = loop.__dict__[st._BACKEND]
    drains = [0]
    drain = watcher._drain

    def counting_drain() -> None:
        drains[0] += 1
        drain()

    watcher._drain = counting_drain
    calls: List[int] = []

    async def main() -> bool:
        a, b = socket.socketpair()
        a.setblocking(False)
        loop.add_writer(a, lambda: calls.append(1))
        await until(lambda: bool(calls))
        wait_for_posted_events(watcher)  # the next writable event is in flight
        number = a.fileno()
        a.close()
        others: List[socket.socket] = []
        for _ in range(200):  # unregistered sockets, until one has the closed socket's number
            # UDP: always writable; and one socket at a time (a Windows socketpair() makes
            # a listening socket first, which would take the number and give it back)
            others.append(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            if others[-1].fileno() == number:
                break
        seen_calls, seen_drains = len(calls), drains[0]
        for _ in range(100):
            await asyncio.sleep(0.001)
        assert len(calls) == seen_calls  # the closed socket's callback never runs again
        assert drains[0] - seen_drains <= 3  # (with the number re-armed: one drain per iteration)
        reused = number in (sock.fileno() for sock in others)
        for sock in [b] + others:
            sock.close()
        return reused

    assert run(loop, main())  # the number was reused


@pytest.mark.parametrize("backend", THREAD_BACKENDS)
def test_an_int_registered_again_after_its_close_was_reported_serves_the_new_socket(loop):
    """tornado/pyzmq style: ints. The thread reports number X closed; before the loop drains
    that report, a new socket gets X and add_reader(X) re-registers the same entry."""
    watcher = loop.__dict__[st._BACKEND]
    got: List[bytes] = []

    async def main() -> None:
        a, b = socket.socketpair()
        number = a.fileno()
        loop.add_reader(number, lambda: None)
        await asyncio.sleep(0.01)  # the thread watches X
        a.close()
        b.close()
        wait_for_posted_events(watcher)  # the thread has reported X closed
        spare = []
        while True:  # take numbers until a socket has X again
            c, d = socket.socketpair()
            if number in (c.fileno(), d.fileno()):
                break
            spare += [c, d]
        new, peer = (c, d) if c.fileno() == number else (d, c)
        new.setblocking(False)
        loop.add_reader(number, lambda: got.append(new.recv(10)))
        peer.send(b"hello")
        await until(lambda: bool(got))
        assert loop.remove_reader(number)
        for sock in spare + [c, d]:
            sock.close()

    run(loop, main())
    assert got == [b"hello"] and loop.errors == []


@pytest.mark.parametrize("backend", THREAD_BACKENDS)
def test_a_stale_rearm_does_not_hand_over_an_event_twice(loop, pairs):
    """A re-arm for a registration replaced since must not clear what the thread has handed
    over for the new one: the new callback would run twice for one readiness."""
    watcher = loop.__dict__[st._BACKEND]
    (a, b), = pairs(1)
    received: List[bytes] = []

    async def main() -> None:
        loop.add_reader(a, lambda: None)
        old_serial = watcher._entries[a.fileno()].serial
        shard = watcher._entries[a.fileno()].slot
        assert loop.remove_reader(a)
        loop.add_reader(a, lambda: received.append(a.recv(1)))
        await asyncio.sleep(0.01)
        b.send(b"x")
        wait_for_posted_events(watcher)  # handed over: the thread holds a's READ until re-armed
        shard.send(("rearm", [(a.fileno(), st.READ, old_serial)]))  # the race, made certain
        time.sleep(0.05)  # the thread has taken the command (and, re-armed, would report a again)
        await until(lambda: bool(received))
        for _ in range(50):
            await asyncio.sleep(0.001)

    run(loop, main())
    assert received == [b"x"] and loop.errors == []  # a second call would fail on an empty socket


def test_closing_the_loop_from_a_callback_is_refused_and_the_loop_goes_on(loop, pairs):
    (a, b), = pairs(1)
    seen: List[str] = []

    def closer() -> None:
        drain(a)
        seen.append("closer")
        loop.close()

    loop.add_reader(a, closer)
    b.send(b"x")
    run(loop, until(lambda: "closer" in seen))
    spin(loop)
    assert [type(e.get("exception")) for e in loop.errors] == [RuntimeError]
    assert "running" in str(loop.errors[0]["exception"])
    b.send(b"y")
    run(loop, until(lambda: seen.count("closer") == 2))
    assert not loop.__dict__[st._BACKEND].closed  # still watching


def test_close_with_events_in_flight_joins_every_thread(backend, pairs):
    loop = fallback_loop()
    use_backend(loop, backend)
    socks = pairs(50)
    calls: List[int] = []

    def stopper() -> None:
        calls.append(1)
        loop.stop()  # leaves the other readers' events queued or in flight

    for a, b in socks:
        loop.add_reader(a, stopper)
        b.send(b"x")  # all readable, nobody drains
    loop.run_forever()
    watcher = loop.__dict__[st._BACKEND]
    threads = watcher_threads(loop)
    assert calls and (threads or isinstance(watcher, st.AfdWatcher))
    loop.close()
    assert not any(t.is_alive() for t in threads)
    assert loop.is_closed() and not loop.remove_reader(socks[0][0])
    if isinstance(watcher, st.AfdWatcher):  # every poll completed (cancelled) before the port closed
        assert watcher._afd is None and not any(poll.pending for poll in watcher._polls)
        assert not any(poll.address in st._IN_FLIGHT for poll in watcher._polls)


def test_the_fallback_overrides_nothing_on_the_hot_path():
    assert not set(HOT_PATH_METHODS) & set(vars(SelectorThreadMixin))
    loop = fallback_loop()
    try:
        base = type(loop)._loopcompat_base
        for name in HOT_PATH_METHODS:
            if hasattr(base, name):
                assert getattr(type(loop), name) is getattr(base, name), name
    finally:
        loop.close()


def test_the_default_watcher_polls_afd_on_windows_and_uses_threads_elsewhere(pairs):
    loop = fallback_loop()
    (a, b), = pairs(1)
    try:
        got = loop.create_future()
        loop.add_reader(a, lambda: got.done() or got.set_result(drain(a)))
        b.send(b"default")
        assert run(loop, got) == b"default"
        watcher = loop.__dict__[st._BACKEND]
        assert type(watcher) is (st.AfdWatcher if IS_WINDOWS else st.ThreadWatcher)
    finally:
        loop.close()


def test_the_probe_keeps_a_working_stock_add_reader(pairs):
    class Native(SelectorThreadMixin, asyncio.SelectorEventLoop):  # type: ignore[misc,valid-type]
        pass

    loop = Native()
    (a, b), = pairs(1)
    try:
        got = loop.create_future()
        loop.add_reader(a, lambda: got.done() or got.set_result(drain(a)))
        b.send(b"native")
        assert run(loop, got) == b"native"
        assert loop.__dict__[st._BACKEND] == "native" and loop.remove_reader(a) is True
        assert loop.remove_reader(a) is False
    finally:
        loop.close()


def test_no_thread_until_the_first_add_and_none_after_close(backend, pairs):
    before = set(threading.enumerate())
    loop = fallback_loop()
    (a, b), = pairs(1)
    run(loop, asyncio.sleep(0.01))
    assert set(threading.enumerate()) == before and st._BACKEND not in loop.__dict__
    assert loop.remove_reader(a) is False  # nothing decided, nothing started
    use_backend(loop, backend)
    loop.add_reader(a, drain, a)
    assert len(set(threading.enumerate()) - before) == (0 if backend == "afd" else 1)
    loop.close()
    assert set(threading.enumerate()) == before


def test_many_loop_create_close_cycles_leak_no_thread_or_socket(pairs):
    cycles = 1000
    (a, b), = pairs(1)
    gc.collect()
    threads_before = set(threading.enumerate())
    sockets_before = _open_sockets()
    fds_before = _fd_count()
    for i in range(cycles):
        loop = fallback_loop()
        try:
            got = loop.create_future()
            loop.add_reader(a, lambda got=got: got.done() or got.set_result(drain(a)))
            if i % 2:
                b.send(b"x")  # half the loops close after an event, half with a select in flight
                run(loop, got)
        finally:
            loop.close()
    gc.collect()
    assert set(threading.enumerate()) == threads_before
    assert _open_sockets() == sockets_before
    assert _fd_count() == fds_before


def test_a_forgotten_unclosed_loop_is_collected_and_its_threads_stop(backend, pairs):
    loop = fallback_loop()
    use_backend(loop, backend)
    (a, b), = pairs(1)
    got = [loop.create_future()]
    loop.add_reader(a, lambda: got[0].done() or got[0].set_result(drain(a)))
    b.send(b"x")
    run(loop, got[0])
    threads = watcher_threads(loop)
    ref = weakref.ref(loop)
    del loop
    got.clear()
    with pytest.warns(ResourceWarning, match="unclosed event loop"):
        # The helper threads hold the loop only weakly (strongly just while they
        # hand over an event): the loop's __del__ closes it.
        for _ in range(500):
            gc.collect()
            if ref() is None:
                break
            time.sleep(0.01)
    assert ref() is None
    assert bool(threads) == backend.startswith("thread") and not any(t.is_alive() for t in threads)


def test_thread_death_is_reported_and_later_adds_fail_loudly(pairs):
    loop = fallback_loop()
    use_backend(loop, THREAD_BACKEND)
    errors: List[Dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: errors.append(context))
    (a, b), = pairs(1)
    try:
        loop.add_reader(a, drain, a)
        shard = loop.__dict__[st._BACKEND]._shards[0]
        spin(loop)
        shard.wake_r.close()  # a fault from outside: the thread's wakeup socket is gone
        b.send(b"x")  # wake the thread through the watched socket
        run(loop, until(lambda: bool(errors)))
        assert "selector thread" in errors[0]["message"] and "died" in errors[0]["message"]
        assert isinstance(errors[0]["exception"], (OSError, ValueError))
        with pytest.raises(SelectorThreadError, match="failed") as info:
            loop.add_reader(b, drain, b)
        assert info.value.__cause__ is errors[0]["exception"]
        assert loop.remove_reader(a) is True  # cleanup still works
    finally:
        loop.close()
    assert not shard.thread.is_alive()


def test_interpreter_exit_with_an_unclosed_loop_does_not_hang():
    code = textwrap.dedent(
        """
        import asyncio, socket, sys
        sys.path.insert(0, sys.argv[1])
        from loopcompat.testing import add_reader_loop
        loop = add_reader_loop()
        a, b = socket.socketpair()
        loop.add_reader(a, lambda: None)
        b.send(b"x")
        loop.run_until_complete(asyncio.sleep(0.05))
        print("exiting with the loop open")
        """
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-c", code, root], capture_output=True, text=True, cwd=root,
                            stdin=subprocess.DEVNULL, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "exiting with the loop open" in result.stdout


# --- Windows only ------------------------------------------------------------------------------


@windows_only
def test_adopt_gives_a_stock_proactor_loop_the_fallback(pairs):
    loop = loopcompat.adopt(asyncio.ProactorEventLoop(), needs=["add_reader"])
    (a, b), = pairs(1)
    try:
        assert isinstance(loop, SelectorThreadMixin)
        got = loop.create_future()
        loop.add_reader(a, lambda: got.done() or got.set_result(drain(a)))
        b.send(b"adopted")
        assert run(loop, got) == b"adopted"
    finally:
        loop.close()


def refuse_polls(monkeypatch: Any, error: int) -> None:
    """From now on Windows refuses every AFD poll with ``error`` (a fault a healthy bed never shows)."""
    import ctypes

    def refused(*args: Any) -> bool:
        ctypes.set_last_error(error)  # type: ignore[attr-defined,unused-ignore]
        return False

    monkeypatch.setattr(st, "send_poll", refused)


@windows_only
def test_a_poll_windows_refuses_is_reported_for_an_int_descriptor_too(pairs, monkeypatch):
    """tornado and pyzmq register ints: a refused re-arm must not be taken for a closed socket."""
    loop = recording_loop("afd")
    (a, b), = pairs(1)
    seen: List[bytes] = []

    def reader() -> None:
        seen.append(drain(a))
        refuse_polls(monkeypatch, 1450)  # ERROR_NO_SYSTEM_RESOURCES, for the re-arm after this callback

    try:
        loop.add_reader(a.fileno(), reader)
        b.send(b"x")
        run(loop, until(lambda: bool(loop.errors)))
        assert seen == [b"x"]
        error = loop.errors[0]
        assert "cannot poll" in error["message"] and "will not run again" in error["message"]
        assert getattr(error["exception"], "winerror", None) == 1450
    finally:
        loop.close()


@windows_only
def test_a_failure_while_handling_a_completion_is_reported_not_swallowed(pairs, monkeypatch):
    """Inside IocpProactor._poll() an OSError would land in the stand-in future's set_exception()."""
    loop = recording_loop("afd")
    (a, b), = pairs(1)
    try:
        try:
            while True:  # fill a's send buffer: a is not writable, so only data wakes its poll
                a.send(b"\0" * 65536)
        except (BlockingIOError, InterruptedError):
            pass
        loop.add_writer(a, lambda: None)
        reader = loop.add_reader(a, lambda: None)
        reader.cancel()  # the stock loop unregisters a cancelled reader when it sees the event
        spin(loop)
        assert loop.errors == []
        refuse_polls(monkeypatch, 1450)
        b.send(b"x")  # the poll completes: unregistering the reader re-polls for the writer, refused
        run(loop, until(lambda: bool(loop.errors)))
        assert getattr(loop.errors[0]["exception"], "winerror", None) == 1450
        assert "cannot poll" in loop.errors[0]["message"]
    finally:
        loop.close()


@windows_only
def test_the_proactor_closed_before_the_watcher_does_not_wait_forever():
    """IocpProactor.close() cancels every poll and waits for each: a cancelled poll must stay cancelled."""
    code = textwrap.dedent(
        """
        import asyncio, socket, sys
        sys.path.insert(0, sys.argv[1])
        from loopcompat.testing import add_reader_loop
        from loopcompat._fallbacks import _selector_thread as st
        loop = add_reader_loop()
        (a, b), (c, d) = socket.socketpair(), socket.socketpair()
        loop.add_reader(a, lambda: None)  # idle: its poll never completes by itself
        loop.add_reader(c, lambda: None)  # ready and never drained: its poll completes at once
        d.send(b"x")
        loop.run_until_complete(asyncio.sleep(0.05))
        blocks = set(st._IN_FLIGHT)
        loop._proactor.close()  # before the loop closes the watcher
        loop.close()
        print("closed; blocks still in flight:", len(blocks & set(st._IN_FLIGHT)))
        """
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-c", code, root], capture_output=True, text=True, cwd=root,
                            stdin=subprocess.DEVNULL, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "closed; blocks still in flight: 0" in result.stdout


@windows_only
def test_non_socket_handles_are_refused_clearly():
    loop = fallback_loop()
    r, w = os.pipe()
    try:
        with pytest.raises(UnsupportedError, match=r"not a socket.*\(S5\)"):
            loop.add_reader(r, lambda: None)
        assert loop.run_until_complete(asyncio.sleep(0, "alive")) == "alive"
    finally:
        loop.close()
        os.close(r)
        os.close(w)


@windows_only
def test_S8_still_a_clear_error_when_add_reader_is_not_declared():
    loop = loopcompat.new_event_loop()
    a, b = socket.socketpair()
    try:
        with pytest.raises(UnsupportedError, match=r"\(S8\).*declare needs=\['add_reader'\]"):
            loop.add_reader(a, lambda: None)
    finally:
        loop.close()
        a.close()
        b.close()


# --- helpers -----------------------------------------------------------------------------------


def _raise_fd_limit(wanted: int) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"needs {wanted} file descriptors, the hard limit is {hard}")
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _open_sockets() -> int:
    return sum(1 for obj in gc.get_objects() if isinstance(obj, socket.socket) and obj.fileno() != -1)


def _fd_count() -> int:
    # Not on Windows: under Wine /proc/self/fd is the Wine process's, whose own caches come and go.
    if not IS_WINDOWS and os.path.isdir("/proc/self/fd"):
        return len(os.listdir("/proc/self/fd"))
    return 0  # Windows: socket objects are counted instead
