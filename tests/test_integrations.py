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

from .conftest import windows_only

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


# --- libraries with a selector thread of their own (tornado, pyzmq) -----------------------------

PEERS_CHILD = textwrap.dedent(
    """
    import asyncio, socket, sys, threading, warnings
    warnings.simplefilter("error")  # pyzmq warns when it starts tornado's selector thread
    mode = sys.argv[1]  # early: imported before the loop is built; late: inside main(); bare: no loopcompat
    if mode != "late":
        import tornado.ioloop, tornado.platform.asyncio, zmq, zmq.asyncio
    import loopcompat

    if mode == "bare":
        warnings.simplefilter("ignore", RuntimeWarning)
        loop = asyncio.ProactorEventLoop()
    else:
        loop = loopcompat.new_event_loop(["subprocess", "add_reader"], config=False)

    async def main():
        global tornado, zmq
        if mode == "late":
            assert "tornado.platform.asyncio" not in sys.modules
            import tornado.ioloop, zmq, zmq.asyncio
        io = tornado.ioloop.IOLoop.current()
        a, b = socket.socketpair()
        got = loop.create_future()
        io.add_handler(a.fileno(), lambda fd, events: got.done() or got.set_result(a.recv(16)), io.READ)
        b.send(b"tornado")
        tornado_got = await asyncio.wait_for(got, 20)
        io.remove_handler(a.fileno())
        context = zmq.asyncio.Context()
        server, client = context.socket(zmq.PAIR), context.socket(zmq.PAIR)
        port = server.bind_to_random_port("tcp://127.0.0.1")
        client.connect("tcp://127.0.0.1:%d" % port)
        await client.send(b"zmq")
        zmq_got = await asyncio.wait_for(server.recv(), 20)
        server.close(linger=0); client.close(linger=0); context.term()
        a.close(); b.close()
        threads = sorted(t.name for t in threading.enumerate() if t is not threading.main_thread())
        print(tornado_got.decode(), zmq_got.decode(), io.selector_loop is loop, "threads:", threads)

    loop.run_until_complete(main())
    loop.close()
    """
)


def _run_peers_child(tmp_path: Path, mode: str) -> str:
    script = tmp_path / "peers_child.py"
    script.write_text(PEERS_CHILD)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, str(script), mode], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode().strip()


@windows_only
@pytest.mark.parametrize("mode", ["early", "late"])
def test_tornado_and_pyzmq_use_the_fallback_instead_of_a_selector_thread_of_their_own(tmp_path, mode):
    # The control first: on asyncio's own proactor loop each starts a thread (pyzmq borrows tornado's
    # class; tornado 6.x names it "Tornado selector").
    control = _run_peers_child(tmp_path, "bare")
    assert control.startswith("tornado zmq False threads: ['Tornado selector'"), control
    # On loopcompat's proactor loop (subprocess + add_reader) they use its add_reader (no thread at
    # all: the AFD watcher has none), whether imported before the loop was built or after.
    assert _run_peers_child(tmp_path, mode) == "tornado zmq True threads: []"


def test_the_peer_patches_answer_only_for_loops_with_the_fallback():
    """Off Windows tornado and pyzmq never wrap a loop; the patches themselves are checked here on real tornado."""
    code = textwrap.dedent(
        """
        import importlib, importlib.util, sys
        from loopcompat._fallbacks import _peers
        from loopcompat.testing import add_reader_loop, bare_add_reader_loop
        assert "tornado.platform.asyncio" not in sys.modules and "zmq.asyncio" not in sys.modules
        from loopcompat._fallbacks._selector_thread import SelectorThreadMixin
        _peers.share_add_reader(SelectorThreadMixin)  # before the imports: the import hook patches them
        spec = importlib.util.find_spec("zmq.asyncio")  # a probe, not an import
        assert spec is not None
        import copy
        assert copy.copy(spec.loader).__class__ is spec.loader.__class__  # copies (pickle too) do not recurse
        import tornado.platform.asyncio
        import zmq.asyncio
        patched_new = vars(tornado.platform.asyncio.AddThreadSelectorEventLoop)["__new__"].__func__
        assert getattr(patched_new, _peers.PATCHED) and getattr(zmq.asyncio._get_selector, _peers.PATCHED)
        ours, bare = add_reader_loop(), bare_add_reader_loop()
        assert tornado.platform.asyncio.AddThreadSelectorEventLoop(ours) is ours
        wrapper = tornado.platform.asyncio.AddThreadSelectorEventLoop(bare)  # anything else: tornado's own
        assert type(wrapper) is tornado.platform.asyncio.AddThreadSelectorEventLoop and wrapper._real_loop is bare
        assert zmq.asyncio._get_selector(ours) is ours
        wrapper.close()  # closes bare too
        reloaded = importlib.reload(tornado.platform.asyncio)  # new classes: patched again
        assert reloaded.AddThreadSelectorEventLoop(ours) is ours
        ours.close()
        print("ok")
        """
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-c", code], cwd=str(ROOT), env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().strip() == "ok"
