"""pytest plugin (entry point ``loopcompat``): every test's event loop is a loopcompat loop.

Opt-in, because the plugin loads wherever loopcompat is installed: it acts
when ``--loopcompat`` is given, the ini option ``loopcompat = true`` or
``loopcompat_needs = ...`` is set, or the project's pyproject.toml has a
``[tool.loopcompat]`` table. Then loopcompat is installed for the session
(asyncio.run(), new_event_loop() and pytest-asyncio before 1.4 build planned
loops) and pytest-asyncio 1.4+ gets the factory through its
``pytest_asyncio_loop_factories`` hook. The ``loopcompat_plan`` fixture
returns the plan.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional

import pytest

from . import _api
from ._plan import Plan

_STATE: Dict[str, Any] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("loopcompat")
    group.addoption("--loopcompat", action="store_true", default=False,
                    help="build every test's event loop with loopcompat")
    group.addoption("--loopcompat-needs", default=None, metavar="NEEDS",
                    help="comma-separated needs, added to loopcompat_needs and [tool.loopcompat]")
    parser.addini("loopcompat", "build every test's event loop with loopcompat", type="bool", default=False)
    parser.addini("loopcompat_needs", "needs declared for the test session's loops (e.g. subprocess add_reader)",
                  type="args", default=[])


def _active(config: pytest.Config) -> bool:
    if config.getoption("loopcompat") or config.getoption("loopcompat_needs") or config.getini("loopcompat"):
        return True
    if config.getini("loopcompat_needs"):
        return True
    from ._startup import find_pyproject

    pyproject = find_pyproject(str(config.rootpath))
    if pyproject is None:
        return False
    with open(pyproject, "rb") as f:
        return b"[tool.loopcompat" in f.read()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if not _active(config):
        return
    needs = list(config.getini("loopcompat_needs"))
    extra = config.getoption("loopcompat_needs")
    if extra:
        needs += [part.strip() for part in extra.split(",") if part.strip()]
    plan = _api.configured_plan(needs, {}, start_dir=str(config.rootpath))
    _api.install_plan(plan)
    _STATE["plan"] = plan
    _STATE["factory"] = _api.LoopFactory(plan)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _STATE.pop("plan", None) is not None:
        _STATE.pop("factory", None)
        _api.uninstall()


def pytest_report_header(config: pytest.Config) -> Optional[str]:
    plan = _STATE.get("plan")
    if plan is None:
        return None
    return f"loopcompat: {plan.describe_loop()}; needs: {', '.join(plan.needs) or 'none'}"


@pytest.hookimpl(optionalhook=True)
def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> Optional[Dict[str, Any]]:
    factory = _STATE.get("factory")
    return {"loopcompat": factory} if factory is not None else None


@pytest.fixture
def loopcompat_plan() -> Plan:
    """The plan loopcompat follows in this session (or, when the plugin is off, this machine's default)."""
    plan = _STATE.get("plan")
    if plan is None:
        plan = _api.configured_plan((), {}, start_dir=os.getcwd(), raise_unmet=False)
    return plan  # type: ignore[no-any-return]
