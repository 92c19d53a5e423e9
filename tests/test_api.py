"""Real loops on this machine: install/uninstall, run, factories, adopt, guards, the hot path."""

from __future__ import annotations

import asyncio
import gc
import os
import selectors
import socket
import subprocess
import sys
import tempfile

import pytest

import loopcompat
from loopcompat import Platform, UnsupportedError
from loopcompat._build import HOT_PATH_METHODS, build_loop, loop_class
from loopcompat._planner import make_plan

from .conftest import IS_WINDOWS, posix_only

SPEC_PUBLIC_NAMES = {
    "install", "uninstall", "run", "new_event_loop", "loop_factory", "adopt", "plan", "detect", "Platform",
    "Plan", "Support", "LoopCompatError", "UnsupportedError", "ConfigError",
}


def test_public_surface_is_the_spec_and_nothing_private_leaks():
    assert SPEC_PUBLIC_NAMES <= set(loopcompat.__all__)
    assert set(loopcompat.__all__) - SPEC_PUBLIC_NAMES == {"__version__"}
    for name in loopcompat.__all__:
        assert getattr(loopcompat, name) is not None
    assert issubclass(loopcompat.UnsupportedError, NotImplementedError)
    assert issubclass(loopcompat.UnsupportedError, loopcompat.LoopCompatError)
    assert issubclass(loopcompat.ConfigError, ValueError)


def _stock_base(loop):
    return getattr(type(loop), "_loopcompat_base", type(loop))


async def _loop_and_selector():
    loop = asyncio.get_running_loop()
    return loop, type(getattr(loop, "_selector", None))


def test_install_makes_asyncio_run_build_the_planned_loop():
    plan = loopcompat.install(selector="poll" if not IS_WINDOWS else None)
    loop, selector_cls = asyncio.run(_loop_and_selector())
    assert getattr(loop, "_loopcompat_plan") is plan
    if IS_WINDOWS:
        assert isinstance(loop, asyncio.ProactorEventLoop)
    else:
        assert isinstance(loop, asyncio.SelectorEventLoop) and selector_cls is selectors.PollSelector
    fresh = asyncio.new_event_loop()
    try:
        assert getattr(fresh, "_loopcompat_plan") is plan
    finally:
        fresh.close()


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.Runner is new in 3.11")
def test_install_covers_asyncio_runner():
    plan = loopcompat.install()
    with asyncio.Runner() as runner:
        loop, _ = runner.run(_loop_and_selector())
    assert loop._loopcompat_plan is plan


def test_uninstall_restores_exactly_what_was_there():
    events = asyncio.events
    saved = events._event_loop_policy
    try:
        events._event_loop_policy = None  # nothing created yet
        loopcompat.install()
        assert events._event_loop_policy is not None
        loopcompat.uninstall()
        assert events._event_loop_policy is None

        custom = asyncio.DefaultEventLoopPolicy()
        asyncio.set_event_loop_policy(custom)
        loopcompat.install()
        loopcompat.install(needs=["subprocess"])  # replaces, does not stack
        loopcompat.uninstall()
        assert events._event_loop_policy is custom
        loopcompat.uninstall()  # a second uninstall does nothing
        assert events._event_loop_policy is custom
    finally:
        events._event_loop_policy = saved


def test_install_is_idempotent_and_returns_the_plan():
    first = loopcompat.install(needs=["subprocess"])
    policy = asyncio.events._event_loop_policy
    again = loopcompat.install(needs="subprocess")
    assert again is first and asyncio.events._event_loop_policy is policy
    other = loopcompat.install(needs=["udp"])
    assert other.needs == ("udp",) and asyncio.events._event_loop_policy is not policy


def test_install_emits_no_deprecation_warning_under_W_error():
    code = (
        "import asyncio, loopcompat\n"
        "loopcompat.install(needs=['subprocess'])\n"
        "async def main():\n"
        "    return type(asyncio.get_running_loop()).__name__\n"
        "print(asyncio.run(main()))\n"
        "loop = asyncio.new_event_loop(); loop.close()\n"
        "loopcompat.uninstall()\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, env=env,
                            cwd=root, stdin=subprocess.DEVNULL, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "EventLoop" in result.stdout


def test_run_returns_the_result_on_a_planned_loop_and_cleans_up():
    finalized = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            finalized.append(True)

    async def main():
        async for _ in agen():
            break
        loop = asyncio.get_running_loop()
        return loop, loop.get_debug()

    loop, debug = loopcompat.run(main(), needs=["subprocess"], debug=True)
    assert debug is True and loop.is_closed() and finalized == [True]
    assert loop._loopcompat_plan.needs == ("subprocess",)

    async def boom():
        raise KeyError("x")

    with pytest.raises(KeyError):
        loopcompat.run(boom())


def test_run_cancels_leftover_tasks():
    cancelled = []

    async def sleeper():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def main():
        asyncio.get_running_loop().create_task(sleeper())
        await asyncio.sleep(0)

    loopcompat.run(main())
    assert cancelled == [True]


def test_loop_factory_and_new_event_loop():
    factory = loopcompat.loop_factory(needs=["udp"])
    assert factory.plan.needs == ("udp",) and "EventLoop" in repr(factory)
    loop = factory()
    other = factory()
    try:
        assert loop is not other and loop._loopcompat_plan is factory.plan
        assert loop.run_until_complete(asyncio.sleep(0, "ok")) == "ok"
    finally:
        loop.close()
        other.close()
    loop = loopcompat.new_event_loop(["subprocess"])
    try:
        assert loop.run_until_complete(asyncio.sleep(0, 5)) == 5
    finally:
        loop.close()
    if sys.version_info >= (3, 12):
        assert asyncio.run(asyncio.sleep(0, 3), loop_factory=loopcompat.loop_factory()) == 3


@posix_only
@pytest.mark.parametrize("selector", ["epoll", "poll", "select"])
@pytest.mark.parametrize("method", ["add_reader", "add_writer"])
def test_add_reader_on_a_regular_file_is_a_clear_error(selector, method):
    loop = loopcompat.new_event_loop(selector=selector)
    try:
        with tempfile.TemporaryFile() as f:
            with pytest.raises(UnsupportedError) as info:
                getattr(loop, method)(f.fileno(), lambda: None)
            with pytest.raises(NotImplementedError):  # old handlers keep working
                getattr(loop, method)(f, lambda: None)
        message = str(info.value)
        assert f"loop.{method}()" in message and "a regular file" in message
        assert type(loop).__name__ in message and str(loopcompat.detect()) in message
        assert "(S1)" in message and "run_in_executor" in message and "to_thread" in message
        # sockets still work, through the same method
        a, b = socket.socketpair()
        with a, b:
            got = loop.create_future()
            loop.add_reader(a, lambda: got.done() or got.set_result(a.recv(10)))
            b.send(b"ping")
            assert loop.run_until_complete(asyncio.wait_for(got, 5)) == b"ping"
            assert loop.remove_reader(a) is True
    finally:
        loop.close()


@posix_only
def test_select_selector_refuses_fds_beyond_fd_setsize_with_a_clear_error():
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2400:
        pytest.skip(f"needs 2400 file descriptors, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2400), hard))
    loop = loopcompat.new_event_loop(selector="select")
    pairs = []
    try:
        assert isinstance(loop._selector, selectors.SelectSelector)
        refused = accepted = 0
        for _ in range(550):  # 1,100 sockets: the later ones have fds above 1023
            a, b = socket.socketpair()
            pairs.append((a, b))
            for sock in (a, b):
                try:
                    loop.add_reader(sock, lambda: None)
                    accepted += 1
                except UnsupportedError as exc:
                    refused += 1
                    message = str(exc)
        assert refused > 0 and accepted > 500
        assert "FD_SETSIZE (1024)" in message and "(X1)" in message and "max_sockets" in message
        # the loop still runs: the refused sockets never reached select()
        assert loop.run_until_complete(asyncio.sleep(0.01, "alive")) == "alive"
    finally:
        loop.close()
        for a, b in pairs:
            a.close()
            b.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@posix_only
def test_macos_10_8_plan_builds_a_real_select_loop_that_watches_a_terminal():
    import pty

    plan = make_plan(["char_devices"], Platform("macos", "10.8", "3.11"), {})
    assert (plan.loop, plan.selector) == ("selector", "select")
    loop = build_loop(plan)
    master, slave = pty.openpty()
    try:
        assert isinstance(loop, asyncio.SelectorEventLoop)
        assert isinstance(loop._selector, selectors.SelectSelector)
        got = loop.create_future()
        loop.add_reader(master, lambda: got.done() or got.set_result(os.read(master, 100)))
        os.write(slave, b"hi\n")
        assert b"hi" in loop.run_until_complete(asyncio.wait_for(got, 5))
        loop.remove_reader(master)
    finally:
        loop.close()
        os.close(master)
        os.close(slave)


def _plans_buildable_here():
    here = loopcompat.detect()
    plans = [make_plan([], here, {}), make_plan(["subprocess", "udp"], here, {})]
    if not IS_WINDOWS:
        plans += [make_plan([], here, {"selector": "select"}), make_plan(["add_reader"], here, {"selector": "poll"})]
    else:
        plans += [make_plan(["add_reader"], here, {}), make_plan([], here, {"loop": "selector"})]
    return plans


@pytest.mark.parametrize("plan", _plans_buildable_here(), ids=lambda p: p.describe_loop())
def test_a_plan_without_fallbacks_overrides_nothing_on_the_hot_path(plan):
    loop = build_loop(plan)
    try:
        base = _stock_base(loop)
        for cls in type(loop).__mro__:
            if cls.__module__.startswith("loopcompat"):
                assert not set(HOT_PATH_METHODS) & set(vars(cls)), cls
        for name in HOT_PATH_METHODS:
            if hasattr(base, name):
                assert getattr(type(loop), name) is getattr(base, name), name
        selector = getattr(loop, "_selector", None)
        if isinstance(selector, selectors.BaseSelector):  # (the proactor's _selector is its IocpProactor)
            stock = [c for c in type(selector).__mro__ if c.__module__ == "selectors"][0]
            assert type(selector).select is stock.select
    finally:
        loop.close()


def test_generated_classes_are_cached_and_keep_the_stock_name():
    plan = make_plan([], loopcompat.detect(), {})
    a, b = build_loop(plan), build_loop(plan)
    try:
        assert type(a) is type(b)
        assert type(a).__name__ == _stock_base(a).__name__
        assert isinstance(a, _stock_base(a))
    finally:
        a.close()
        b.close()


@posix_only
def test_adopt_gives_a_foreign_loop_the_guards_and_keeps_its_identity():
    loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
    try:
        assert loopcompat.adopt(loop) is loop
        assert loopcompat.adopt(loop) is loop  # twice: no double wrapping
        assert type(loop).__mro__[1] is asyncio.SelectorEventLoop
        with tempfile.TemporaryFile() as f, pytest.raises(UnsupportedError, match="regular file"):
            loop.add_reader(f.fileno(), lambda: None)
        assert loop._loopcompat_plan.selector == "select"
        assert loop.run_until_complete(asyncio.sleep(0, 1)) == 1
    finally:
        loop.close()


def test_adopt_keeps_a_users_subclass_of_a_loopcompat_loop():
    class Mine(type(loopcompat.new_event_loop())):  # type: ignore[misc]
        def greeting(self) -> str:
            return "mine"

    loop = Mine()
    try:
        assert loopcompat.adopt(loop) is loop
        assert isinstance(loop, Mine) and loop.greeting() == "mine"
        assert loop.run_until_complete(asyncio.sleep(0, 1)) == 1
    finally:
        loop.close()


@pytest.mark.skipif(not IS_WINDOWS, reason="the selector_thread fallback on the real proactor loop")
def test_adopting_again_never_takes_a_fallback_in_use_away():
    """A proactor loop with add_reader through the fallback; then a library calls adopt(loop) with
    no needs (nothing installed), which used to rebuild its class without the fallback."""
    import threading

    loop = loopcompat.new_event_loop(["subprocess", "add_reader"])
    assert isinstance(loop, asyncio.ProactorEventLoop) and "selector_thread" in loop._loopcompat_plan.fallbacks
    a, b = socket.socketpair()
    got: list = []
    try:
        loop.add_reader(a, lambda: got.append(a.recv(10)))
        assert loopcompat.adopt(loop) is loop
        assert "selector_thread" in loop._loopcompat_plan.fallbacks
        b.send(b"x")
        loop.run_until_complete(asyncio.wait_for(_until(lambda: bool(got)), 30))
        assert got == [b"x"] and loop.remove_reader(a) is True
    finally:
        loop.close()
        a.close()
        b.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("loopcompat-selector")]


async def _until(predicate) -> None:
    while not predicate():
        await asyncio.sleep(0.001)


def test_adopt_leaves_unknown_loop_classes_alone():
    class Strange(asyncio.AbstractEventLoop):
        pass

    strange = Strange()
    assert loopcompat.adopt(strange) is strange and type(strange) is Strange


@posix_only
def test_translated_not_implemented_error_names_method_class_platform_reason_and_remedy():
    """The guard mechanism, shown on Linux with a loop whose stock subprocess support is absent.

    The real thing (Windows' selector loop) is asserted by the Windows
    conformance tests under the Windows test bed.
    """

    class NoSubprocessLoop(asyncio.SelectorEventLoop):
        async def _make_subprocess_transport(self, *args, **kwargs):
            raise NotImplementedError

    plan = make_plan([], Platform("windows", "10", "3.7"), {})  # the selector loop is the default there
    loop = loop_class(NoSubprocessLoop, plan)(selectors.SelectSelector())
    loop._loopcompat_plan = plan
    try:
        with pytest.raises(UnsupportedError) as info:
            loop.run_until_complete(loop.subprocess_exec(asyncio.SubprocessProtocol, sys.executable, "-c", "pass"))
        message = str(info.value)
        assert message.startswith("loop.subprocess_exec() is not supported by NoSubprocessLoop on Windows 10, CPython 3.7")
        assert "cannot watch child processes" in message and "(S7)" in message
        assert "declare needs=['subprocess'] so loopcompat builds ProactorEventLoop" in message
        assert isinstance(info.value.__cause__, NotImplementedError)
        assert asyncio.iscoroutinefunction(loop.subprocess_exec)
    finally:
        loop.close()
        gc.collect()
