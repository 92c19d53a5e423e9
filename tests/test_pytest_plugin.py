"""The pytest plugin, run for real through pytester in subprocesses."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PROBE = textwrap.dedent(
    """
    import asyncio

    def test_loop(loopcompat_plan, record_property):
        loop = asyncio.new_event_loop()
        try:
            plan = getattr(loop, "_loopcompat_plan", None)
            print("PLAN", None if plan is None else list(plan.needs), list(loopcompat_plan.needs))
        finally:
            loop.close()
    """
)


def _registered_by_entry_point() -> bool:
    """True when loopcompat is installed as a distribution: pytest then loads the plugin itself."""
    try:
        from importlib.metadata import entry_points
    except ImportError:  # pragma: no cover
        return False
    found = entry_points()
    group = found.select(group="pytest11") if hasattr(found, "select") else found.get("pytest11", [])
    return any(ep.name == "loopcompat" for ep in group)


@pytest.fixture
def run(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    load = [] if _registered_by_entry_point() else ["-p", "loopcompat._pytest_plugin"]

    def run(*args: str):
        return pytester.runpytest_subprocess(*load, "-s", *args)

    return run


def test_inactive_unless_asked(pytester, run):
    pytester.makepyfile(test_probe=PROBE)
    result = run()
    result.assert_outcomes(passed=1)
    assert "PLAN None []" in result.stdout.str()


def test_ini_needs_apply_to_every_loop_and_the_fixture(pytester, run):
    pytester.makeini("[pytest]\nloopcompat_needs = subprocess udp\n")
    pytester.makepyfile(test_probe=PROBE)
    result = run()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["loopcompat: *needs: subprocess, udp"])
    assert "PLAN ['subprocess', 'udp'] ['subprocess', 'udp']" in result.stdout.str()


def test_pyproject_table_activates_and_adds_needs(pytester, run):
    pytester.makepyprojecttoml('[tool.loopcompat]\nneeds = ["udp"]\n')
    pytester.makepyfile(test_probe=PROBE)
    result = run("--loopcompat-needs", "subprocess")
    result.assert_outcomes(passed=1)
    assert "PLAN ['udp', 'subprocess'] ['udp', 'subprocess']" in result.stdout.str()


def test_bad_needs_fail_the_session_with_a_clear_message(pytester, run):
    pytester.makeini("[pytest]\nloopcompat_needs = subproces\n")
    pytester.makepyfile(test_probe=PROBE)
    result = run()
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*Did you mean 'subprocess'*"])


def test_pytest_asyncio_tests_run_on_loopcompat_loops(pytester, run):
    pytest_asyncio = pytest.importorskip("pytest_asyncio")
    pytester.makeini("[pytest]\nloopcompat_needs = subprocess\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_async=textwrap.dedent(
        """
        import asyncio, sys
        import pytest

        @pytest.mark.asyncio
        async def test_loop():
            loop = asyncio.get_running_loop()
            assert loop._loopcompat_plan.needs == ("subprocess",)
            proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
            assert await proc.wait() == 0
        """
    ))
    result = run()
    result.assert_outcomes(passed=1)
    version = getattr(pytest_asyncio, "__version__", "?")
    print("pytest-asyncio", version)
