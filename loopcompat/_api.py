"""The public entry points: plan, install/uninstall, run, loop factories, adopt.

How asyncio is told to build planned loops lives in one place,
:class:`_Hook`: through an event loop policy where policies are the
supported mechanism, and by replacing ``asyncio.new_event_loop`` where the
knowledge base says policies are deprecated (fact S15, Python 3.14+). When
3.16 removes policies, only that class changes.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any, Awaitable, Callable, Dict, Iterable, Optional, Tuple, TypeVar, Union

from ._plan import Plan
from ._platform import Platform, detect

T = TypeVar("T")
Needs = Union[str, Iterable[str], None]


def plan(needs: Needs = (), *, platform: Optional[Platform] = None, **options: Any) -> Plan:
    """Plan the loop for ``needs`` on ``platform`` (default: this machine).

    Pure: reads no configuration and builds nothing; the other entry points
    add the configuration layers (pyproject.toml, user file, environment).

    :raises ConfigError: for unknown needs, options or values.
    :raises UnsupportedError: when a need cannot be met and on_unsupported="error" (the default).
    """
    from ._planner import make_plan

    if platform is not None:
        return make_plan(needs, platform, options)
    from ._startup import installed_optional_loops

    return make_plan(needs, detect(), options, installed=installed_optional_loops(options))


def configured_plan(
    needs: Needs,
    options: Dict[str, Any],
    *,
    config: bool = True,
    start_dir: Optional[str] = None,
    raise_unmet: bool = True,
) -> Plan:
    """The plan for arguments layered over configuration (see loopcompat._config).

    A plan computed before for the same inputs comes from the start-up cache
    (loopcompat._startup), without importing the config reader or the planner.
    """
    from ._startup import StartupCache, cached_plan, installed_optional_loops, plan_key, remember_plan

    here = detect()
    needs = _as_list(needs)
    cache = StartupCache()
    try:
        key = plan_key(here, needs, options, config=config, start_dir=start_dir, cache=cache)
        if key is not None:
            found = cached_plan(key, cache, here)
            if found is not None:
                return found
        if config:
            from ._config import effective

            settings, need_origins = effective(options, needs, system=here.system, start_dir=start_dir, cache=cache)
            options = {k: s.value for k, s in settings.items() if k != "needs"}
            needs = list(need_origins)
        from ._planner import make_plan

        installed = installed_optional_loops(options)
        result = make_plan(needs, here, options, raise_unmet=raise_unmet, installed=installed)
        if key is not None and not result.unmet:  # a plan with unmet needs raises or warns: never reuse it
            remember_plan(key, cache, result, installed)
        return result
    finally:
        cache.save()


def _as_list(needs: Needs) -> list:
    if needs is None:
        return []
    if isinstance(needs, str):
        return [part for part in needs.split(",") if part.strip()]
    return list(needs)


class LoopFactory:
    """A callable that builds a new planned loop on each call; ``.plan`` says which."""

    __slots__ = ("plan",)

    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    def __call__(self) -> asyncio.AbstractEventLoop:
        from ._build import build_loop

        return build_loop(self.plan)

    def __repr__(self) -> str:
        return f"<loopcompat.LoopFactory {self.plan.describe_loop()}>"


def loop_factory(needs: Needs = (), *, config: bool = True, **options: Any) -> Callable[[], asyncio.AbstractEventLoop]:
    """A loop factory for asyncio.run(loop_factory=...), asyncio.Runner, anyio, uvicorn ...

    ``config=False`` ignores configuration files and environment variables.

    :raises ConfigError: for bad needs, options or configuration.
    :raises UnsupportedError: when a need cannot be met and on_unsupported="error".
    """
    return LoopFactory(configured_plan(needs, options, config=config))


def new_event_loop(needs: Needs = (), *, config: bool = True, **options: Any) -> asyncio.AbstractEventLoop:
    """A new planned event loop (not set as current).

    :raises ConfigError: for bad needs, options or configuration.
    :raises UnsupportedError: when a need cannot be met and on_unsupported="error".
    """
    return LoopFactory(configured_plan(needs, options, config=config))()


def run(
    main: Awaitable[T], *, needs: Needs = (), debug: Optional[bool] = None, config: bool = True, **options: Any
) -> T:
    """Like asyncio.run(main), on a planned loop.

    :raises ConfigError: for bad needs, options or configuration.
    :raises UnsupportedError: when a need cannot be met and on_unsupported="error".
    """
    factory = LoopFactory(configured_plan(needs, options, config=config))
    if sys.version_info >= (3, 11):
        with asyncio.Runner(debug=debug, loop_factory=factory) as runner:
            return runner.run(main)  # type: ignore[arg-type]  # Runner.run checks for a coroutine itself
    return _run_before_311(main, factory, debug)


def _run_before_311(main: Awaitable[T], factory: LoopFactory, debug: Optional[bool]) -> T:
    """asyncio.run() with a loop factory, for Pythons without asyncio.Runner."""
    if asyncio.events._get_running_loop() is not None:
        raise RuntimeError("loopcompat.run() cannot be called from a running event loop")
    if not asyncio.iscoroutine(main):
        raise ValueError(f"a coroutine was expected, got {main!r}")
    loop = factory()
    try:
        asyncio.set_event_loop(loop)
        if debug is not None:
            loop.set_debug(debug)
        return loop.run_until_complete(main)
    finally:
        try:
            _cancel_all_tasks(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            if hasattr(loop, "shutdown_default_executor"):
                loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    if not pending:
        return
    for task in pending:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    for task in pending:
        if not task.cancelled() and task.exception() is not None:
            loop.call_exception_handler(
                {"message": "unhandled exception during loopcompat.run() shutdown", "exception": task.exception(), "task": task}
            )


def plan_for_loop(loop: Any, needs: Needs = None, **options: Any) -> Plan:
    """The plan describing an existing loop (its own loop and selector forced)."""
    from ._build import loop_kind

    kind, selector = loop_kind(loop)
    if kind is None:
        from ._errors import UnsupportedError

        raise UnsupportedError(f"loopcompat cannot adopt {type(loop).__name__}: not a stock asyncio loop")
    if needs is None:
        needs = _installed.plan.needs if _installed is not None else ()
    options = {**options, "loop": kind, "selector": selector}
    installed = frozenset([kind]) if kind in ("uvloop", "winloop") else None
    from ._guards import PLAN_ATTRIBUTE

    current = getattr(loop, PLAN_ATTRIBUTE, None)
    if isinstance(current, Plan):
        # Adopted again: widen, never narrow. The loop may be using a fallback of
        # its plan (a watcher with registrations, bridged signals): dropping the
        # mixin would leave that state running with nothing to remove or close it.
        needs = list(dict.fromkeys([*current.needs, *_as_list(needs)]))
        for key in ("max_sockets", "fallbacks"):
            if current.options.get(key) is not None:
                options.setdefault(key, current.options[key])
    if _installed is not None:
        for key in ("max_sockets", "fallbacks"):
            options.setdefault(key, _installed.plan.options.get(key))
    from ._planner import make_plan

    return make_plan(needs, detect(), options, raise_unmet=False, installed=installed)


def adopt(loop: asyncio.AbstractEventLoop, needs: Needs = None, **options: Any) -> asyncio.AbstractEventLoop:
    """Give a loop built elsewhere loopcompat's fallbacks and clear errors; returns the same loop.

    ``needs`` defaults to those of the installed plan. A loop loopcompat built
    or adopted before keeps the needs it has, plus these: adopting never takes a
    fallback away. uvloop and winloop loops get their plan's checks; a loop of a
    class loopcompat does not know (a third-party loop) is returned unchanged.

    :raises ConfigError: for bad needs or options.
    """
    from ._build import adopt_loop, loop_kind

    if loop_kind(loop)[0] is None:
        return loop
    return adopt_loop(loop, plan_for_loop(loop, needs, **options))


class _Hook:
    """Makes asyncio.new_event_loop()/asyncio.run()/asyncio.Runner() build planned loops."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.factory = LoopFactory(plan)
        # Policies are deprecated from Python 3.14 (fact S15).
        self.use_policy = not any(fact == "S15" for fact, _, _ in plan.deprecations)
        self._saved: Any = None

    def apply(self) -> None:
        events = asyncio.events
        if self.use_policy:
            # The private global, not get_event_loop_policy(): that would create a
            # default policy where there was none, and uninstall must restore "none".
            self._saved = events._event_loop_policy  # type: ignore[attr-defined]
            events.set_event_loop_policy(_make_policy(self.factory))
        else:
            self._saved = (events.new_event_loop, asyncio.new_event_loop)
            factory = self.factory

            def new_event_loop() -> asyncio.AbstractEventLoop:
                return factory()

            events.new_event_loop = asyncio.new_event_loop = new_event_loop

    def restore(self) -> None:
        events = asyncio.events
        if self.use_policy:
            events._event_loop_policy = self._saved  # type: ignore[attr-defined]
        else:
            events.new_event_loop, asyncio.new_event_loop = self._saved


def _make_policy(factory: LoopFactory) -> Any:
    base = asyncio.DefaultEventLoopPolicy

    watcher_rule = next((fact for fact in factory.plan.deprecations if fact[0] == "S11"), None)

    class LoopCompatPolicy(base):  # type: ignore[valid-type,misc]
        """The platform's default policy, building loops from a loopcompat factory."""

        loop_factory = factory

        def new_event_loop(self) -> asyncio.AbstractEventLoop:
            return self.loop_factory()

        if watcher_rule is not None:  # Windows: no child watchers (S11)

            def get_child_watcher(self) -> Any:
                raise _child_watcher_error("get_child_watcher", watcher_rule)

            def set_child_watcher(self, watcher: Any) -> None:
                raise _child_watcher_error("set_child_watcher", watcher_rule)

    return LoopCompatPolicy()


def _child_watcher_error(method: str, deprecation: Tuple[str, str, str]) -> Exception:
    from ._errors import UnsupportedError

    fact, reason, remedy = deprecation
    error = UnsupportedError(f"policy.{method}() is not supported on {detect()}: {reason} ({fact}). "
                             f"Remedy: {remedy}")
    error.__cause__ = NotImplementedError(method)
    return error


_installed: Optional[_Hook] = None


def install(needs: Needs = (), *, config: bool = True, **options: Any) -> Plan:
    """Make asyncio.run(), asyncio.new_event_loop() and asyncio.Runner() build planned loops.

    Needs and options are layered over the configuration (user file,
    pyproject.toml, LOOPCOMPAT_* variables; ``config=False`` skips them).
    Idempotent: installing the same plan again changes nothing; a different
    plan replaces the installed one. Returns the plan. With LOOPCOMPAT_DISABLE=1
    nothing is installed and the plan of asyncio's own default loop is returned.

    :raises ConfigError: for bad needs, options or configuration.
    :raises UnsupportedError: when a need cannot be met and on_unsupported="error".
    """
    from ._startup import is_disabled

    if config and is_disabled():
        uninstall()
        from ._planner import make_plan

        return make_plan((), detect(), {}, raise_unmet=False)
    return install_plan(configured_plan(needs, options, config=config))


def install_plan(new_plan: Plan) -> Plan:
    """Install an already computed plan (see install())."""
    global _installed
    if _installed is not None:
        if _installed.plan == new_plan:
            return _installed.plan
        uninstall()
    hook = _Hook(new_plan)
    hook.apply()
    _installed = hook
    return new_plan


def uninstall() -> None:
    """Restore exactly what install() replaced. Does nothing when not installed."""
    global _installed
    if _installed is not None:
        _installed.restore()
        _installed = None


def installed_plan() -> Optional[Plan]:
    return _installed.plan if _installed is not None else None
