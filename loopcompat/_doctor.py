"""`loopcompat doctor`: this machine's facts, configuration and plan, and a live probe of each feature.

Each feature is exercised for real on the loop the plan builds (a child
process, a pipe, a socket pair, a signal, a unix socket, a UDP datagram, a
terminal), so the report says what works here, not what a table predicts.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import tempfile
import threading
import time
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence

from ._plan import Plan

PROBE_TIMEOUT = 15.0


async def _probe_subprocess(loop: asyncio.AbstractEventLoop) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "print(6 * 7)", stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL
    )
    out, _ = await proc.communicate()
    if out.strip() != b"42" or proc.returncode != 0:
        raise RuntimeError(f"child printed {out!r}, exit {proc.returncode}")
    return "ran a child process and read its output"


def _probe_pipe_ends() -> "tuple[Any, int]":
    """(read end for connect_read_pipe, writable fd). On Windows the read end is opened for
    overlapped I/O, which the proactor loop needs (os.pipe() handles are not)."""
    if sys.platform == "win32":
        import msvcrt
        from asyncio import windows_utils

        read_handle, write_handle = windows_utils.pipe(overlapped=(True, False))
        return windows_utils.PipeHandle(read_handle), msvcrt.open_osfhandle(write_handle, 0)
    read_fd, write_fd = os.pipe()
    return open(read_fd, "rb", 0), write_fd


async def _probe_pipes(loop: asyncio.AbstractEventLoop) -> str:
    read_end, write_fd = _probe_pipe_ends()
    reader = asyncio.StreamReader()
    try:
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), read_end)
    except BaseException:
        read_end.close()
        os.close(write_fd)
        raise
    feeder = threading.Thread(target=_feed_and_close, args=(write_fd, b"ping"), daemon=True)
    try:
        feeder.start()
        data = await reader.read()
    finally:
        transport.close()
        feeder.join()  # the write end is closed once it returns, whatever happened here
    if data != b"ping":
        raise RuntimeError(f"read {data!r}")
    return "read a pipe through connect_read_pipe"


def _feed_and_close(write_fd: int, data: bytes) -> None:
    try:
        os.write(write_fd, data)
    finally:
        os.close(write_fd)


async def _readiness_fires(loop: asyncio.AbstractEventLoop, watched: Any, read: Callable[[], bytes],
                           poke: Callable[[], Any]) -> bytes:
    """Register a reader on ``watched``, make it readable with ``poke``, return what ``read`` got."""
    got: asyncio.Future = loop.create_future()
    loop.add_reader(watched, lambda: _resolve(got, read()))
    try:
        poke()
        return await got  # type: ignore[no-any-return]
    finally:
        loop.remove_reader(watched)


async def _probe_add_reader(loop: asyncio.AbstractEventLoop) -> str:
    left, right = socket.socketpair()
    try:
        data = await _readiness_fires(loop, left, lambda: left.recv(16), lambda: right.sendall(b"ping"))
    finally:
        left.close()
        right.close()
    if data != b"ping":
        raise RuntimeError(f"read {data!r}")
    return "a readiness callback fired for a socket"


async def _probe_signals(loop: asyncio.AbstractEventLoop) -> str:
    import signal

    got: asyncio.Future = loop.create_future()
    loop.add_signal_handler(signal.SIGINT, lambda: _resolve(got, True))
    try:
        signal.raise_signal(signal.SIGINT) if hasattr(signal, "raise_signal") else os.kill(os.getpid(), signal.SIGINT)
        await got
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    return "SIGINT reached a loop signal handler"


class _Closing(asyncio.Protocol):
    """A protocol that says when its connection is made and when it is gone."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.made: "asyncio.Future[asyncio.BaseTransport]" = loop.create_future()
        self.lost: "asyncio.Future[None]" = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        _resolve(self.made, transport)

    def connection_lost(self, exc: Optional[Exception]) -> None:
        _resolve(self.lost, None)


async def _probe_unix_sockets(loop: asyncio.AbstractEventLoop) -> str:
    # Both ends are closed, and their connection_lost awaited, before the server closes: an
    # accepted transport left open is collected after the loop is closed, and on CPython 3.13.0
    # its __del__ then fails inside the server's bookkeeping (python/cpython gh-109564).
    accepted: List[_Closing] = []
    first: "asyncio.Future[_Closing]" = loop.create_future()

    def serve() -> _Closing:
        accepted.append(_Closing(loop))
        _resolve(first, accepted[-1])
        return accepted[-1]

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "probe.sock")
        server = await loop.create_unix_server(serve, path)
        client = _Closing(loop)
        try:
            await loop.create_unix_connection(lambda: client, path)
            await (await first).made
        finally:
            for end in [client, *accepted]:
                if end.made.done():
                    end.made.result().close()
            server.close()
        await asyncio.gather(client.lost, *(peer.lost for peer in accepted))
        await server.wait_closed()
    return "connected to a unix socket server"


async def _probe_udp(loop: asyncio.AbstractEventLoop) -> str:
    got: asyncio.Future = loop.create_future()

    class Echo(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            if not got.done():
                got.set_result(data)

    transport, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    try:
        transport.sendto(b"ping", transport.get_extra_info("sockname"))
        data = await got
    finally:
        transport.close()
    if data != b"ping":
        raise RuntimeError(f"received {data!r}")
    return "a UDP datagram went out and came back"


async def _probe_char_devices(loop: asyncio.AbstractEventLoop) -> str:
    try:
        import pty
    except ImportError:
        raise _NotProbed("no terminal device to open here (no pty module)") from None
    if sys.platform == "win32":
        raise _NotProbed("no pseudo-terminal on Windows")
    master, slave = pty.openpty()
    try:
        data = await _readiness_fires(loop, master, lambda: os.read(master, 64), lambda: os.write(slave, b"ping\n"))
    finally:
        os.close(master)
        os.close(slave)
    if b"ping" not in data:
        raise RuntimeError(f"read {data!r}")
    return "a readiness callback fired for a pseudo-terminal"


class _NotProbed(Exception):
    pass


def _resolve(future: "asyncio.Future[Any]", value: Any) -> None:
    if not future.done():
        future.set_result(value)


PROBES: Dict[str, Callable[[asyncio.AbstractEventLoop], Awaitable[str]]] = {
    "subprocess": _probe_subprocess,
    "pipes": _probe_pipes,
    "add_reader": _probe_add_reader,
    "signals": _probe_signals,
    "unix_sockets": _probe_unix_sockets,
    "udp": _probe_udp,
    "char_devices": _probe_char_devices,
}


def probe_all(plan: Plan) -> Dict[str, Dict[str, str]]:
    """Run every probe on a loop built from ``plan``: {feature: {"result": ok|failed|not probed, "detail": ...}}."""
    from ._build import build_loop

    results: Dict[str, Dict[str, str]] = {}
    loop = build_loop(plan)
    try:
        asyncio.set_event_loop(loop)
        for feature, probe in PROBES.items():
            try:
                detail = loop.run_until_complete(asyncio.wait_for(probe(loop), PROBE_TIMEOUT))
                results[feature] = {"result": "ok", "detail": detail}
            except _NotProbed as exc:
                results[feature] = {"result": "not probed", "detail": str(exc)}
            except asyncio.TimeoutError:
                results[feature] = {"result": "failed", "detail": f"no result within {PROBE_TIMEOUT:.0f} s"}
            except Exception as exc:  # a probe's failure is the finding, whatever it is
                results[feature] = {"result": "failed", "detail": f"{type(exc).__name__}: {exc}"}
        # Transports close through callbacks the loop runs later: let them run before it closes.
        for _ in range(3):
            loop.run_until_complete(asyncio.sleep(0))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    return results


def clock_report() -> Dict[str, float]:
    """The monotonic clock's stated resolution and the smallest step measured here (fact S10)."""
    info = time.get_clock_info("monotonic")
    steps: List[float] = []
    last = time.monotonic()
    deadline = last + 0.2
    while len(steps) < 50 and last < deadline:
        now = time.monotonic()
        if now != last:
            steps.append(now - last)
            last = now
    return {"resolution_s": info.resolution, "measured_step_s": min(steps) if steps else float("nan")}


def _clock_line(plan: Plan, clock: Dict[str, float]) -> str:
    line = (f"  monotonic clock: resolution {clock['resolution_s'] * 1e6:.3g} us, "
            f"smallest step measured {clock['measured_step_s'] * 1e6:.3g} us")
    if plan.platform.is_windows:  # the coarse tick is a Windows fact (S10): elsewhere the note is noise
        line += " (S10: ~15600 us is usual on Windows; short timeouts round up to it)"
    return line


def report(plan: Plan, probes: Dict[str, Dict[str, str]], clock: Dict[str, float], config_lines: List[str]) -> str:
    from ._explain import human_explain

    lines = ["loopcompat doctor", "", "== This machine", f"  {plan.platform}",
             f"  Python {sys.version.split()[0]} ({sys.implementation.name}, {sys.executable})",
             _clock_line(plan, clock), "", "== Configuration", *config_lines, "",
             "== Plan", *("  " + line for line in human_explain(plan).splitlines()), "",
             "== Live probes on the planned loop", f"  {'feature':<14}{'plan says':<13}{'probe':<12}detail"]
    for feature, outcome in probes.items():
        level = plan.features[feature].level
        lines.append(f"  {feature:<14}{level:<13}{outcome['result']:<12}{outcome['detail']}")
    return "\n".join(lines)


def disagreements(plan: Plan, probes: Dict[str, Dict[str, str]]) -> List[str]:
    """Features where the plan and the probe disagree (a native/fallback feature that failed, or the reverse)."""
    found = []
    for feature, outcome in probes.items():
        level = plan.features[feature].level
        if outcome["result"] == "failed" and level != "unsupported":
            found.append(f"{feature}: planned {level}, but the probe failed: {outcome['detail']}")
        if outcome["result"] == "ok" and level == "unsupported":
            found.append(f"{feature}: planned unsupported, but the probe worked")
    return found


def main_report(plan: Plan, config_lines: List[str], as_json: bool) -> int:
    import json

    probes = probe_all(plan)
    clock = clock_report()
    if as_json:
        print(json.dumps({"plan": plan.to_dict(), "probes": probes, "clock": clock,
                          "disagreements": disagreements(plan, probes)}, indent=2))
    else:
        print(report(plan, probes, clock, config_lines))
        for problem in disagreements(plan, probes):
            print(f"  ! {problem}")
    failed_needs = [n for n in plan.needs if probes.get(n, {}).get("result") == "failed"]
    return 1 if failed_needs or plan.unmet else 0


def doctor(needs: Sequence[str], *, read_config: bool, as_json: bool) -> int:
    """`loopcompat doctor`: the configuration with its origins, the plan, and a live probe of each feature."""
    from ._explain import configuration_header, source_lines
    from ._platform import detect
    from ._project import configuration, plan_configured
    from ._startup import installed_optional_loops

    here = detect()
    config = configuration(here.system, needs=needs, read_config=read_config)
    plan = plan_configured(here, config, installed_optional_loops(config.options))
    config_lines = ["  " + configuration_header(here.system, read_config)]
    config_lines += source_lines(config, indent="    ") or ["    (nothing configured: the platform's defaults)"]
    return main_report(plan, config_lines, as_json)
