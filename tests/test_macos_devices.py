"""macOS facts, simulated: kqueue's refusal of terminals (X8) met by moving the loop to select().

The refusal is played by a selector double (macOS kqueue returns EINVAL for
some character devices); everything else is real: a real loop, a real
pseudo-terminal, real sockets.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import selectors
import socket

import pytest

from loopcompat import Platform
from loopcompat._build import _device_migrating, build_loop
from loopcompat._guards import CappedSelectSelector, _is_char_device
from loopcompat._planner import make_plan

from .conftest import posix_only

pytestmark = posix_only


class RefusesDevices(getattr(selectors, "PollSelector", selectors.SelectSelector)):  # (no poll on Windows)
    """Registers like kqueue on macOS: character devices fail with EINVAL."""

    def register(self, fileobj, events, data=None):
        if _is_char_device(fileobj):
            raise OSError(errno.EINVAL, "Invalid argument")
        return super().register(fileobj, events, data)


def test_macos_plans_get_the_migrating_kqueue_selector_class():
    plan = make_plan([], Platform("macos", "14", "3.12"), {})
    assert plan.selector == "kqueue"
    migrating = _device_migrating(RefusesDevices)
    assert migrating is _device_migrating(RefusesDevices)  # made once
    assert "select" not in vars(migrating) and "register" not in vars(migrating)  # the mixin's, not a copy


def test_a_refused_terminal_moves_the_loop_to_select_and_everything_keeps_working(caplog):
    import pty
    import weakref

    plan = make_plan([], Platform("macos", "14", "3.12"), {})
    loop = asyncio.SelectorEventLoop(_device_migrating(RefusesDevices)())
    loop._selector._loopcompat_loop = weakref.ref(loop)
    loop._selector._loopcompat_plan = plan
    master, slave = pty.openpty()
    left, right = socket.socketpair()
    try:
        got_socket = loop.create_future()
        loop.add_reader(left, lambda: got_socket.done() or got_socket.set_result(left.recv(16)))
        original = loop._selector
        with caplog.at_level(logging.WARNING, logger="loopcompat"):
            got_tty = loop.create_future()
            loop.add_reader(master, lambda: got_tty.done() or got_tty.set_result(os.read(master, 64)))
        assert isinstance(loop._selector, CappedSelectSelector) and loop._selector is not original
        assert "refused character device" in caplog.text and "fact X8" in caplog.text
        os.write(slave, b"typed\n")
        right.send(b"ping")
        assert b"typed" in loop.run_until_complete(asyncio.wait_for(got_tty, 5))
        assert loop.run_until_complete(asyncio.wait_for(got_socket, 5)) == b"ping"
        assert loop.remove_reader(master) and loop.remove_reader(left)
        caplog.clear()
        other_master, other_slave = pty.openpty()
        try:  # a second terminal registers directly: no second move, no second log line
            loop.add_reader(other_master, lambda: None)
            assert loop.remove_reader(other_master)
            assert "refused" not in caplog.text
        finally:
            os.close(other_master)
            os.close(other_slave)
    finally:
        loop.close()
        for fd in (master, slave):
            os.close(fd)
        left.close()
        right.close()


class RefusesEverything(getattr(selectors, "PollSelector", selectors.SelectSelector)):
    def register(self, fileobj, events, data=None):
        raise OSError(errno.EINVAL, "Invalid argument")


def test_refusals_of_anything_but_a_terminal_are_not_swallowed():
    import weakref

    loop = asyncio.SelectorEventLoop(selectors.PollSelector())
    selector = _device_migrating(RefusesEverything)()
    selector._loopcompat_loop = weakref.ref(loop)
    left, right = socket.socketpair()
    try:
        with pytest.raises(OSError) as info:
            selector.register(left, selectors.EVENT_READ)
        assert info.value.errno == errno.EINVAL and loop._selector is not selector
    finally:
        selector.close()
        loop.close()
        left.close()
        right.close()


def test_a_macos_plan_builds_a_loop_whose_selector_knows_its_loop():
    plan = make_plan([], Platform("macos", "14", "3.12"), {"selector": "poll"})
    loop = build_loop(plan)  # poll exists here; the migration applies to kqueue plans only
    try:
        assert type(loop._selector) is selectors.PollSelector
    finally:
        loop.close()
