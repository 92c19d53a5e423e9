"""add_reader round trips: native readiness against loopcompat's selector_thread fallback (and tornado's).

    python benchmarks/selector_thread.py [--rounds 2000] [--busy-rounds 300] [--sizes 0,100,500,2000]
    python3 tools/winbed.py run 3.13 -- benchmarks/selector_thread.py     # Windows CPython under Wine

One round trip: socket B sends a byte; A's reader callback echoes it; B's
reader callback receives it and records the time since the send. Both ends
use loop.add_reader, so a round trip is two readiness events. Around them sit
0, 100, 500 or 2,000 idle registered sockets (readers on socket pairs that
never see traffic). Two loads: "idle" (the loop does nothing else) and "busy"
(a task burns the CPU in 1 ms chunks, yielding with asyncio.sleep(0) between
chunks, the load under which tornado's selector thread starves).

Backends, all measured in this one process and run:

* native: the stock SelectorEventLoop's own add_reader (on Windows it stops
  at 512 sockets: select()'s limit);
* loopcompat: the loop loopcompat builds for needs=["add_reader"],
  max_sockets=2000 (Windows: ProactorEventLoop with the fallback's default
  watcher); on Linux a SelectorEventLoop whose add_reader is made unavailable
  gets the fallback, which then uses its watcher threads (poll());
* loopcompat-thread: the same, forced onto the threaded watcher (select()
  shards on Windows), where the default is another watcher;
* tornado: tornado.platform.asyncio.AddThreadSelectorEventLoop around the
  same loop, when tornado is importable (never a loopcompat dependency).

Reported per cell: median and p99 round-trip latency, round trips per second,
and the median relative to native at the same size and load.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _stats import machine, table  # noqa: E402
from loopcompat._fallbacks import _selector_thread as st  # noqa: E402
from loopcompat.testing import add_reader_loop, bare_add_reader_loop  # noqa: E402

WINDOWS = sys.platform == "win32"
CHUNK = 0.001  # busy mode: seconds of CPU per chunk
DEADLINE = 20.0  # seconds per cell at most; a starving backend reports what it managed

# Each factory returns (object whose add_reader is measured, the loop that runs, cleanup).
Made = Tuple[Any, asyncio.AbstractEventLoop, Callable[[], None]]


def make_native() -> Made:
    loop = asyncio.SelectorEventLoop()
    return loop, loop, loop.close


def make_loopcompat() -> Made:
    loop = add_reader_loop()
    return loop, loop, loop.close


def make_loopcompat_thread() -> Made:
    loop = add_reader_loop()
    loop.__dict__[st._BACKEND] = st.ThreadWatcher(loop)
    return loop, loop, loop.close


def make_tornado() -> Made:
    from tornado.platform.asyncio import AddThreadSelectorEventLoop

    loop = bare_add_reader_loop()
    wrapper = AddThreadSelectorEventLoop(loop)
    return wrapper, loop, wrapper.close


def backends() -> Dict[str, Callable[[], Made]]:
    result: Dict[str, Callable[[], Made]] = {"native": make_native, "loopcompat": make_loopcompat}
    probe = add_reader_loop()
    default = st._default_watcher(probe)
    default.close()
    probe.close()
    default.release()
    if not isinstance(default, st.ThreadWatcher):
        result["loopcompat-thread"] = make_loopcompat_thread
    try:
        import tornado.platform.asyncio  # noqa: F401
    except ImportError:
        pass
    else:
        result["tornado"] = make_tornado
    return result


async def _busy(stop: asyncio.Event) -> None:
    while not stop.is_set():
        end = time.perf_counter() + CHUNK
        while time.perf_counter() < end:
            pass
        await asyncio.sleep(0)


def measure(make: Callable[[], Made], idle_sockets: List[socket.socket], busy: bool, rounds: int,
            ) -> Optional[Tuple[List[float], float]]:
    """Round-trip latencies (seconds) and total seconds, or None when the backend failed."""
    target, loop, cleanup = make()
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    registered: List[socket.socket] = []
    try:
        for sock in idle_sockets:
            target.add_reader(sock, _idle)
            registered.append(sock)
        latencies: List[float] = []
        done = loop.create_future()
        sent = [0.0]
        started = [0.0]

        def echo() -> None:
            try:
                a.send(a.recv(64))
            except (BlockingIOError, InterruptedError):
                pass

        def back() -> None:
            try:
                b.recv(64)
            except (BlockingIOError, InterruptedError):
                return
            now = time.perf_counter()
            latencies.append(now - sent[0])
            if len(latencies) >= rounds or now - started[0] > DEADLINE:
                if not done.done():
                    done.set_result(None)
                return
            sent[0] = time.perf_counter()
            b.send(b"p")

        target.add_reader(a, echo)
        target.add_reader(b, back)
        registered += [a, b]

        async def main() -> float:
            stop = asyncio.Event()
            burner = asyncio.ensure_future(_busy(stop)) if busy else None
            try:
                await asyncio.sleep(0.02)  # let every watcher settle
                started[0] = sent[0] = time.perf_counter()
                b.send(b"p")
                await asyncio.wait_for(done, DEADLINE + 10)
                return time.perf_counter() - started[0]
            finally:
                stop.set()
                if burner is not None:
                    await burner

        measuring = main()
        try:
            elapsed = loop.run_until_complete(measuring)
        except asyncio.TimeoutError:
            print("  stalled: no round trip completed for 30 s", file=sys.stderr)
            _stalled.add(id(make))
            return None
        except (OSError, ValueError) as exc:
            print(f"  failed: {exc!r}", file=sys.stderr)
            if inspect.getcoroutinestate(measuring) == inspect.CORO_CREATED:
                measuring.close()  # the loop failed before starting it (select()'s 512 sockets)
            return None
        return latencies, elapsed
    except (OSError, ValueError) as exc:
        print(f"  failed: {exc!r}", file=sys.stderr)
        return None
    finally:
        try:
            for sock in registered:
                target.remove_reader(sock)
        except Exception:  # noqa: BLE001 - a broken backend may refuse; the loop is closed next
            pass
        try:
            cleanup()
        finally:
            a.close()
            b.close()


def _idle() -> None:
    pass


_stalled: Set[int] = set()  # the backends (by factory) whose last failed cell stalled rather than raised


def p99(samples: List[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def main(argv: Optional[List[str]] = None, variants: Optional[Dict[str, Callable[[], Made]]] = None,
         title: str = "add_reader round trips") -> None:
    """Measure and print the table; ``variants`` replaces the backends (native is always added first)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000, help="round trips per idle cell and backend")
    parser.add_argument("--busy-rounds", type=int, default=300, help="round trips per busy cell and backend")
    parser.add_argument("--repeats", type=int, default=5, help="alternating batches per cell")
    parser.add_argument("--sizes", default="0,100,500,2000", help="idle registered sockets")
    parser.add_argument("--loads", default="idle,busy", help="idle and/or busy")
    parser.add_argument("--backends", default="", help="comma-separated subset (default: all available)")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    loads = [load.strip() for load in args.loads.split(",")]
    chosen = backends() if variants is None else {"native": make_native, **variants}
    if args.backends:
        wanted = [name.strip() for name in args.backends.split(",")]
        chosen = {name: make for name, make in chosen.items() if name in wanted or name == "native"}
    for make in chosen.values():
        make()[2]()  # warm-up: imports, first loop
    rows: List[List[object]] = []
    stalled_cells: Set[Tuple[str, int, bool]] = set()
    for busy in [load == "busy" for load in loads]:
        for size in sizes:
            pairs = [socket.socketpair() for _ in range(size // 2)]
            idle_sockets = [sock for pair in pairs for sock in pair]
            samples: Dict[str, List[float]] = {name: [] for name in chosen}
            elapsed: Dict[str, float] = {name: 0.0 for name in chosen}
            failed: Set[str] = set()
            rounds = max(1, (args.busy_rounds if busy else args.rounds) // args.repeats)
            names = list(chosen)
            for repeat in range(args.repeats):
                # Alternate the order so that drift on a shared machine hits every backend alike.
                for name in names[repeat % len(names):] + names[:repeat % len(names)]:
                    if name in failed:
                        continue
                    print(f"{name}: {size} idle sockets, {'busy' if busy else 'idle'} loop, batch {repeat + 1}",
                          file=sys.stderr, flush=True)
                    _stalled.discard(id(chosen[name]))
                    result = measure(chosen[name], idle_sockets, busy, rounds)
                    if result is None or not result[0]:
                        failed.add(name)
                        if id(chosen[name]) in _stalled:
                            stalled_cells.add((name, size, busy))
                        continue
                    samples[name] += result[0]
                    elapsed[name] += result[1]
            for sock in idle_sockets:
                sock.close()
            load = "busy 1 ms" if busy else "idle"
            native = statistics.median(samples["native"]) if "native" not in failed else None
            for name in names:
                if name in failed:
                    reason = "fails (select(): 512 sockets)" if WINDOWS and size > 500 else "fails"
                    if (name, size, busy) in stalled_cells:
                        reason = "stalls"
                    rows.append([name, size, load, reason, "", "", ""])
                    continue
                median = statistics.median(samples[name])
                ratio = f"{median / native:.2f}x" if native else "n/a"
                rows.append([name, size, load, f"{median * 1e6:,.0f}", f"{p99(samples[name]) * 1e6:,.0f}",
                             f"{len(samples[name]) / elapsed[name]:,.0f}", ratio])
    fallback = add_reader_loop()
    watcher = st._default_watcher(fallback)
    described = f"{type(fallback).__name__} + {type(watcher).__name__}"
    watcher.close()
    fallback.close()
    watcher.release()
    print(f"## {title} ({machine()}; loopcompat: {described}; "
          f"{args.repeats} alternating batches per cell)\n")
    print(table(["backend", "idle sockets", "loop", "median us", "p99 us", "round trips/s", "median vs native"], rows))
    if stalled_cells:
        print("\n\"stalls\": the round trips stopped (no event for 30 s). A helper thread whose select()/poll() "
              "has returned needs the GIL back, and CPython hands it over only when its holder has kept it for "
              "a whole switch interval (5 ms) without releasing it: a loop that runs 1 ms CPU chunks and "
              "releases the GIL for a fast zero-timeout select() between them never does, so the thread "
              "waits for as long as the loop stays busy. tornado's thread is exposed; loopcompat's thread "
              "watcher hands the GIL over on purpose when it has events (docs/fallbacks.md), and the AFD "
              "watcher, loopcompat's default on Windows, has no thread. A thread that dies also shows as \"stalls\": tornado's, at 2,000 sockets on "
              "Linux, on \"filedescriptor out of range in select()\" (fds past FD_SETSIZE), printed on its "
              "stderr only.")


if __name__ == "__main__":
    main()
