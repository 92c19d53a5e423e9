"""uvloop: planned when preferred, installed and able; built for real on Linux."""

from __future__ import annotations

import asyncio
import tempfile

import pytest

import loopcompat
from loopcompat import ConfigError, Platform, UnsupportedError
from loopcompat._planner import make_plan


def test_planned_when_preferred_on_posix():
    plan = make_plan(["subprocess", "signals", "char_devices"], Platform("linux", "6.1", "3.12"), {"prefer": ["uvloop"]})
    assert (plan.loop, plan.selector, plan.unmet) == ("uvloop", None, ())
    assert any("X7" in w for w in plan.warnings)  # millisecond timers
    mac = make_plan(["char_devices"], Platform("macos", "10.8", "3.12"), {"prefer": ["uvloop"]})
    assert mac.loop == "uvloop"  # libuv watches terminals itself; S13 concerns kqueue


@pytest.mark.parametrize(
    "platform, options, installed, expected_loop, note",
    [
        (Platform("linux", "6.1", "3.12"), {"prefer": ["uvloop"]}, frozenset(), "selector", "not installed"),
        (Platform("windows", "10", "3.12"), {"prefer": ["uvloop"]}, None, "proactor", "does not exist for Windows"),
        (Platform("windows", "10", "3.12"), {"prefer": ["winloop"]}, None, "proactor", "does not build winloop"),
        (Platform("linux", "6.1", "3.7"), {"prefer": ["uvloop"]}, None, "selector", "does not exist"),
    ],
)
def test_not_planned_when_absent_or_impossible_and_the_plan_says_why(platform, options, installed, expected_loop, note):
    plan = make_plan([], platform, options, installed=installed)
    assert plan.loop == expected_loop
    assert any(note in w for w in plan.warnings), plan.warnings


def test_forcing_an_impossible_optional_loop_is_a_config_error():
    with pytest.raises(ConfigError, match="uvloop does not exist for Windows"):
        make_plan([], Platform("windows", "10", "3.12"), {"loop": "uvloop"})
    with pytest.raises(ConfigError, match="pip install uvloop"):
        make_plan([], Platform("linux", "6.1", "3.12"), {"loop": "uvloop"}, installed=frozenset())


@pytest.fixture
def uvloop():
    return pytest.importorskip("uvloop", reason="uvloop installs on POSIX only (a Linux test dependency)")


def test_install_with_prefer_builds_a_real_uvloop_loop_with_guards(uvloop):
    plan = loopcompat.install(prefer=["uvloop"], needs=["subprocess"])
    assert plan.loop == "uvloop"

    async def main():
        loop = asyncio.get_running_loop()
        proc = await asyncio.create_subprocess_exec("true")
        return loop, await proc.wait()

    loop, code = asyncio.run(main())
    assert isinstance(loop, uvloop.Loop) and code == 0 and loop._loopcompat_plan is plan
    fresh = asyncio.new_event_loop()
    try:
        with tempfile.TemporaryFile() as f, pytest.raises(UnsupportedError, match=r"regular file.*\(S1\)"):
            fresh.add_reader(f.fileno(), lambda: None)
    finally:
        fresh.close()


def test_adopt_a_uvloop_loop(uvloop):
    loop = uvloop.new_event_loop()
    try:
        assert loopcompat.adopt(loop) is loop
        assert loop._loopcompat_plan.loop == "uvloop" and isinstance(loop, uvloop.Loop)
        with tempfile.TemporaryFile() as f, pytest.raises(UnsupportedError):
            loop.add_writer(f.fileno(), lambda: None)
        assert loop.run_until_complete(asyncio.sleep(0, 7)) == 7
    finally:
        loop.close()
