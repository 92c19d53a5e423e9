"""Subprocesses and pipes: the threaded fallbacks on the selector loop against the native proactor loop.

    python tools/winbed.py run 3.13 -- benchmarks/subprocess_pipes.py [--rounds 9]   # Windows (Wine)
    python benchmarks/subprocess_pipes.py                                            # elsewhere

Workloads, each timed in alternating rounds on a fresh loop of each kind:

* spawn + communicate: start a small Python child, send it 5 bytes on stdin,
  read them back from its stdout, wait for its exit;
* 50 MB out: a child writes 50 MB to its stdout, read through proc.stdout;
* 50 MB in: 50 MB written to a child's stdin (write + drain), which reads it all.

On Windows "native" is the stock ProactorEventLoop and "fallback" is
``loopcompat.new_event_loop(["subprocess"], loop="selector")``, the selector
loop with the threaded_subprocess fallback (whose pipes are the
threaded_pipes transports). Elsewhere "native" is the stock selector loop and
"fallback" the same loop with its own subprocess and pipe support switched
off and the fallbacks on top, which measures the threads' cost there.

Reported: medians, IQR, and ratio = fallback time / native time (goal: at most 1.25).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _stats import machine, summarize, table  # noqa: E402
from loopcompat.testing import threaded_io_loop  # noqa: E402


MB = 1024 * 1024
STREAM_MB = 50
ECHO = "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())"
PRODUCE = f"import sys\nblock = b'x' * {MB}\nfor _ in range({STREAM_MB}): sys.stdout.buffer.write(block)"
CONSUME = (
    "import sys\nn = 0\nwhile True:\n    data = sys.stdin.buffer.read1(1 << 20)\n"
    "    if not data: break\n    n += len(data)\nsys.stdout.write(str(n))"
)


async def spawn_communicate() -> float:
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", ECHO, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    out, _ = await proc.communicate(b"hello")
    elapsed = time.perf_counter() - started
    assert out == b"hello" and proc.returncode == 0, (out, proc.returncode)
    return elapsed


async def stream_out() -> float:
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", PRODUCE, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    total = 0
    while True:
        data = await proc.stdout.read(MB)
        if not data:
            break
        total += len(data)
    await proc.wait()
    elapsed = time.perf_counter() - started
    assert total == STREAM_MB * MB, total
    return elapsed


async def stream_in() -> float:
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CONSUME, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert proc.stdin is not None
    block = b"y" * MB
    for _ in range(STREAM_MB):
        proc.stdin.write(block)
        await proc.stdin.drain()
    out, _ = await proc.communicate(b"")  # b"": closes stdin on every version (None does only from 3.12)
    elapsed = time.perf_counter() - started
    assert int(out) == STREAM_MB * MB, out
    return elapsed


WORKLOADS: Dict[str, Callable[[], Any]] = {
    "spawn + communicate": spawn_communicate,
    f"{STREAM_MB} MB out (child stdout)": stream_out,
    f"{STREAM_MB} MB in (child stdin)": stream_in,
}


def native_loop() -> asyncio.AbstractEventLoop:
    if sys.platform == "win32":
        return asyncio.ProactorEventLoop()
    return asyncio.SelectorEventLoop()


def fallback_loop() -> asyncio.AbstractEventLoop:
    return threaded_io_loop(["subprocess"])


def timed(make_loop: Callable[[], asyncio.AbstractEventLoop], workload: Callable[[], Any]) -> float:
    loop = make_loop()
    try:
        return float(loop.run_until_complete(workload()))
    finally:
        loop.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--only", help="run only the workloads whose name contains this text (e.g. spawn)")
    args = parser.parse_args()
    probe = fallback_loop()
    described = f"{type(probe).__name__} + threaded fallbacks"
    probe.close()
    probe = native_loop()
    reference = type(probe).__name__
    probe.close()

    rows: List[List[object]] = []
    for name, workload in WORKLOADS.items():
        if args.only and args.only not in name:
            continue
        samples: Dict[str, List[float]] = {"native": [], "fallback": []}
        timed(native_loop, workload)  # warm-up (and the OS file cache for python.exe)
        timed(fallback_loop, workload)
        for round_number in range(args.rounds):
            order = (("native", native_loop), ("fallback", fallback_loop))
            for label, make in order if round_number % 2 == 0 else order[::-1]:
                samples[label].append(timed(make, workload) * 1000)
        native, fallback = summarize(samples["native"]), summarize(samples["fallback"])
        rows.append([
            name,
            f"{native['median']:.1f}",
            f"{native['q1']:.1f}-{native['q3']:.1f}",
            f"{fallback['median']:.1f}",
            f"{fallback['q1']:.1f}-{fallback['q3']:.1f}",
            f"{fallback['median'] / native['median']:.2f}",
        ])
    print(f"## Subprocesses and pipes ({machine()}; native: {reference}; fallback: {described}; "
          f"{args.rounds} alternating rounds)\n")
    print(table(["workload", "native ms", "native IQR", "fallback ms", "fallback IQR", "ratio (<=1.25)"], rows))


if __name__ == "__main__":
    main()
