"""What one readiness event costs, call by call: Windows select() against an AFD poll on a completion port.

    python3 tools/winbed.py run 3.13 -- benchmarks/afd_calls.py [--calls 2000] [--rounds 5]

Explains the idle rows of selector_thread.py. Per readiness event the native
selector loop makes one select() call; the AFD watcher on the proactor loop
makes three: the GetQueuedCompletionStatus that returns the completion, the
zero-timeout one IocpProactor._poll() always adds to find the queue empty, and
the DeviceIoControl that re-arms the poll. Each is timed here on its own, on a
socket that is ready, so nothing waits. Windows only.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, List

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _stats import machine, table  # noqa: E402


def per_call(action: Callable[[], object], calls: int, rounds: int) -> float:
    """Median over rounds of the mean time of one call, in microseconds."""
    samples: List[float] = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            action()
        samples.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (the median is reported)")
    args = parser.parse_args()
    if sys.platform != "win32":
        sys.exit("afd_calls.py measures Windows calls: run it under the Windows test bed (tools/winbed.py run)")

    import _overlapped
    import _winapi
    import select

    from loopcompat._fallbacks import _selector_thread as st

    a, b = socket.socketpair()
    b.send(b"x")  # a stays readable: every call below finds it ready
    w = st._bindings()
    iocp = _overlapped.CreateIoCompletionPort(_overlapped.INVALID_HANDLE_VALUE, 0, 0, 0)
    try:
        afd = st.open_afd(iocp)
    except OSError as exc:
        sys.exit(f"cannot open the AFD device: {exc}")
    block = w.POLL_BLOCK()
    address = w.ctypes.addressof(block)
    base = st._base_handle(a.fileno())

    def submit() -> None:
        st.send_poll(afd, block, address, base, st._AFD_READ)

    def event_afd() -> None:
        submit()
        status = _overlapped.GetQueuedCompletionStatus(iocp, 1000)
        assert status is not None and status[3] == address, status
        assert _overlapped.GetQueuedCompletionStatus(iocp, 0) is None

    def afd_submit_and_dequeue() -> None:
        submit()
        assert _overlapped.GetQueuedCompletionStatus(iocp, 1000) is not None

    rows = []
    selected = per_call(lambda: select.select([a], [], [], 0), args.calls, args.rounds)
    rows.append(["select([ready socket], timeout 0): the native loop's call per event", f"{selected:.1f}", "1.00x"])
    for label, action in (
        ("GetQueuedCompletionStatus(port, 0) on an empty port", lambda: _overlapped.GetQueuedCompletionStatus(iocp, 0)),
        ("DeviceIoControl(AFD poll) + the GetQueuedCompletionStatus returning it", afd_submit_and_dequeue),
        ("all three: the AFD watcher's calls per event", event_afd),
    ):
        cost = per_call(action, args.calls, args.rounds)
        rows.append([label, f"{cost:.1f}", f"{cost / selected:.2f}x"])
    a.close()
    b.close()
    w.kernel32.CloseHandle(afd)
    _winapi.CloseHandle(iocp)

    print(f"## Readiness calls, one by one ({machine()}; median of {args.rounds} rounds of {args.calls} calls)\n")
    print(table(["call", "us per call", "vs select()"], rows))
    print("\nThe native selector loop pays the first row per readiness event; the AFD watcher pays the last. "
          "Under Wine every one of these calls is a round trip to the wineserver process, which is what the "
          "idle ratios of selector_thread.py measure; on Windows they are system calls without a process hop.")


if __name__ == "__main__":
    main()
