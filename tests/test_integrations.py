"""loopcompat with the real packages: anyio's loop_factory backend option and uvicorn's --loop."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

import loopcompat

ROOT = Path(__file__).resolve().parent.parent


def test_anyio_runs_on_a_loopcompat_loop():
    anyio = pytest.importorskip("anyio")
    import asyncio

    async def main():
        loop = asyncio.get_running_loop()
        await anyio.sleep(0)
        return loop._loopcompat_plan.needs

    factory = loopcompat.loop_factory(needs=["udp"])
    try:
        needs = anyio.run(main, backend="asyncio", backend_options={"loop_factory": factory})
    except TypeError as exc:  # anyio < 4 has no loop_factory option
        pytest.skip(f"this anyio has no loop_factory backend option: {exc}")
    assert needs == ("udp",)


APP = textwrap.dedent(
    """
    import asyncio

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        loop = asyncio.get_running_loop()
        plan = getattr(loop, "_loopcompat_plan", None)
        body = ("planned " + ",".join(plan.needs) if plan is not None else "stock").encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": body})
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_uvicorn_serves_a_request_on_a_loopcompat_loop(tmp_path):
    uvicorn = pytest.importorskip("uvicorn")
    from packaging.version import Version

    if Version(uvicorn.__version__) < Version("0.36"):
        pytest.skip(f"uvicorn {uvicorn.__version__} has no --loop module:function (0.36+; needs Python 3.9+)")
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "pyproject.toml").write_text('[tool.loopcompat]\nneeds = ["subprocess", "udp"]\n')
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app:app", "--loop", "loopcompat:new_event_loop", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        cwd=str(tmp_path), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        body = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    body = response.read().decode()
                break
            except OSError:
                time.sleep(0.2)
        assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
        assert body == "planned subprocess,udp"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if server.stdout:
            server.stdout.close()
