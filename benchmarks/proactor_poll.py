"""The AFD watcher's round trip under three ways of taking completions off the proactor's port.

    python3 tools/winbed.py run 3.13 -- benchmarks/proactor_poll.py [selector_thread.py options]

Why it exists: under Wine the AFD watcher misses selector_thread.py's idle goal
(a round trip at most 1.2x native) at 0 and 100 sockets, and afd_calls.py shows
that CPython's IocpProactor._poll() ends every wait with one more
GetQueuedCompletionStatus call, which finds the port empty. This measures, in
one run and on the same sockets, what replacing that method would buy:

* loopcompat: CPython's own _poll(), which loopcompat keeps;
* batch poll: one GetQueuedCompletionStatusEx call per loop iteration taking up
  to 64 completions (libuv's design: never more calls than CPython's);
* one per poll: one GetQueuedCompletionStatus call per loop iteration and no
  closing call (the fewest calls, but a burst of N completions then takes N
  loop iterations instead of one).

Each variant hands a completion to its future exactly as CPython's _poll()
does. They are measured here, not shipped: docs/performance.md says why.
Windows only; by default the idle loop only (pass --loads idle,busy for both).
"""

from __future__ import annotations

import math
import sys
import types
from pathlib import Path
from typing import Any, Callable, Dict, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
import selector_thread as bench  # noqa: E402

BATCH = 64  # completions one GetQueuedCompletionStatusEx call may take
WAIT_TIMEOUT = 258


def _timeout_ms(timeout: Optional[float]) -> int:
    """IocpProactor._poll()'s timeout rule: None waits forever; round up to whole milliseconds."""
    from asyncio.windows_events import INFINITE

    if timeout is None:
        return INFINITE
    if timeout < 0:
        raise ValueError("negative timeout")
    ms = math.ceil(timeout * 1e3)
    if ms >= INFINITE:
        raise ValueError("timeout too big")
    return ms


def _finish(proactor: Any, address: int, transferred: int, key: int) -> None:
    """Hand one completion to the future waiting for it, as IocpProactor._poll() does."""
    import _overlapped
    import _winapi

    try:
        future, ov, obj, callback = proactor._cache.pop(address)
    except KeyError:
        # Nobody waits for it. A non-zero key is a pipe handle to close, or it leaks.
        if key not in (0, _overlapped.INVALID_HANDLE_VALUE):
            _winapi.CloseHandle(key)
        return
    if obj in proactor._stopped_serving:
        future.cancel()
    elif not future.done():  # (done: read at submission, or cancelled)
        try:
            value = callback(transferred, key, ov)
        except OSError as exc:
            future.set_exception(exc)
        else:
            future.set_result(value)
        proactor._results.append(future)


def _forget_unregistered(proactor: Any) -> None:
    for ov in proactor._unregistered:
        proactor._cache.pop(ov.address, None)
    proactor._unregistered.clear()


def _batch_poll() -> Callable[[Any, Optional[float]], None]:
    """A _poll() taking every completion of one GetQueuedCompletionStatusEx call."""
    import ctypes
    from ctypes import wintypes

    class OVERLAPPED_ENTRY(ctypes.Structure):
        _fields_ = [("lpCompletionKey", ctypes.c_size_t), ("lpOverlapped", ctypes.c_size_t),
                    ("Internal", ctypes.c_size_t), ("dwNumberOfBytesTransferred", wintypes.DWORD)]

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined,unused-ignore]
    dequeue = kernel32.GetQueuedCompletionStatusEx
    dequeue.argtypes = [wintypes.HANDLE, ctypes.c_void_p, wintypes.ULONG, ctypes.POINTER(wintypes.ULONG),
                        wintypes.DWORD, wintypes.BOOL]
    dequeue.restype = wintypes.BOOL
    entries = (OVERLAPPED_ENTRY * BATCH)()  # one proactor per poll function: see _with_poll()
    taken = wintypes.ULONG()

    def poll(proactor: Any, timeout: Optional[float] = None) -> None:
        if dequeue(proactor._iocp, entries, BATCH, ctypes.byref(taken), _timeout_ms(timeout), False):
            for entry in entries[:taken.value]:
                _finish(proactor, entry.lpOverlapped, entry.dwNumberOfBytesTransferred, entry.lpCompletionKey)
        else:
            error = ctypes.get_last_error()
            if error != WAIT_TIMEOUT:
                raise ctypes.WinError(error)  # type: ignore[attr-defined,unused-ignore]
        _forget_unregistered(proactor)

    return poll


def _one_per_poll() -> Callable[[Any, Optional[float]], None]:
    """A _poll() taking at most one completion, with no call to find the port empty."""
    import _overlapped

    def poll(proactor: Any, timeout: Optional[float] = None) -> None:
        status = _overlapped.GetQueuedCompletionStatus(proactor._iocp, _timeout_ms(timeout))
        if status is not None:
            _error, transferred, key, address = status
            _finish(proactor, address, transferred, key)
        _forget_unregistered(proactor)

    return poll


def _with_poll(make_poll: Callable[[], Callable[[Any, Optional[float]], None]]) -> Callable[[], bench.Made]:
    def make() -> bench.Made:
        target, loop, cleanup = bench.make_loopcompat()
        proactor = loop._proactor  # type: ignore[attr-defined]
        proactor._poll = types.MethodType(make_poll(), proactor)  # close() drains through it too
        return target, loop, cleanup

    return make


def main() -> None:
    if sys.platform != "win32":
        sys.exit("proactor_poll.py measures the Windows proactor: run it under the Windows test bed "
                 "(tools/winbed.py run)")
    variants: Dict[str, Callable[[], bench.Made]] = {
        "loopcompat": bench.make_loopcompat,
        "loopcompat, batch poll": _with_poll(_batch_poll),
        "loopcompat, one per poll": _with_poll(_one_per_poll),
    }
    # Defaults first: argparse keeps the last value, so the caller's options win.
    bench.main(["--loads", "idle", *sys.argv[1:]], variants=variants,
               title="AFD watcher round trips by proactor poll")


if __name__ == "__main__":
    main()
