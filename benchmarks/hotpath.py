"""Hot-path overhead: a loop loopcompat built against the stock asyncio loop, same process, same run.

    python benchmarks/hotpath.py [--rounds 15] [--scale 1.0]

Two workloads, each timed in alternating rounds on a fresh stock loop
(asyncio.new_event_loop() with nothing installed) and a fresh installed loop
(loopcompat.install(); asyncio.new_event_loop()):

* call_soon: 200,000 callbacks scheduled and run (throughput);
* tcp echo: 5,000 round trips of 100 bytes over loopback with streams.

Reported: medians, IQR, and ratio = stock time / loopcompat time (1.0 = same
speed; budget: at least 0.98). ``--scale`` multiplies both counts: under Wine
every loop iteration of the proactor loop is a wineserver round trip (~100 µs),
so run_all uses 0.1 there.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import loopcompat  # noqa: E402
from _stats import machine, summarize, table  # noqa: E402

CALLBACKS = 200_000
ROUND_TRIPS = 5_000


def bench_call_soon(loop: asyncio.AbstractEventLoop) -> float:
    done = loop.create_future()
    remaining = [CALLBACKS]

    def tick() -> None:
        remaining[0] -= 1
        if remaining[0]:
            loop.call_soon(tick)
        else:
            done.set_result(None)

    started = time.perf_counter()
    loop.call_soon(tick)
    loop.run_until_complete(done)
    return time.perf_counter() - started


async def _echo_round_trips() -> float:
    handled = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            data = await reader.read(100)
            if not data:
                break
            writer.write(data)
        writer.close()
        handled.set_result(None)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    payload = b"x" * 100
    started = time.perf_counter()
    for _ in range(ROUND_TRIPS):
        writer.write(payload)
        await reader.readexactly(100)
    elapsed = time.perf_counter() - started
    writer.close()
    await handled
    server.close()
    await server.wait_closed()
    return elapsed


def bench_tcp_echo(loop: asyncio.AbstractEventLoop) -> float:
    return loop.run_until_complete(_echo_round_trips())


def timed(make_loop: Callable[[], asyncio.AbstractEventLoop], bench: Callable[[asyncio.AbstractEventLoop], float]) -> float:
    loop = make_loop()
    try:
        return bench(loop)
    finally:
        loop.close()


def stock_loop() -> asyncio.AbstractEventLoop:
    loopcompat.uninstall()
    return asyncio.new_event_loop()


def installed_loop() -> asyncio.AbstractEventLoop:
    loopcompat.install()
    loop = asyncio.new_event_loop()
    loopcompat.uninstall()
    return loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the callback and round-trip counts")
    args = parser.parse_args()
    global CALLBACKS, ROUND_TRIPS
    CALLBACKS, ROUND_TRIPS = int(CALLBACKS * args.scale), int(ROUND_TRIPS * args.scale)
    probe = installed_loop()
    described = f"{type(probe).__name__} ({getattr(probe, '_loopcompat_plan').describe_loop()})"
    probe.close()

    rows: List[List[object]] = []
    for name, bench in ((f"call_soon x{CALLBACKS:,}", bench_call_soon), (f"tcp echo x{ROUND_TRIPS:,}", bench_tcp_echo)):
        samples: Dict[str, List[float]] = {"stock": [], "loopcompat": []}
        timed(stock_loop, bench)  # warm-up
        timed(installed_loop, bench)
        for round_number in range(args.rounds):
            order = (("stock", stock_loop), ("loopcompat", installed_loop))
            for label, make in order if round_number % 2 == 0 else order[::-1]:
                samples[label].append(timed(make, bench) * 1000)
        stock, ours = summarize(samples["stock"]), summarize(samples["loopcompat"])
        rows.append([name, f"{stock['median']:.1f}", f"{stock['q1']:.1f}-{stock['q3']:.1f}", f"{ours['median']:.1f}",
                     f"{ours['q1']:.1f}-{ours['q3']:.1f}", f"{stock['median'] / ours['median']:.3f}"])
    print(f"## Hot path ({machine()}; installed loop: {described}; {args.rounds} alternating rounds)\n")
    print(table(["workload", "stock ms", "stock IQR", "loopcompat ms", "loopcompat IQR", "ratio (>=0.98)"], rows))


if __name__ == "__main__":
    main()
