"""Loop construction: Plan -> loop class -> loop, with the selector injected.

The loop class is the stock asyncio class when the plan needs nothing, or a
subclass made once per (base class, plan shape) that overrides only the
methods the plan concerns: guards that turn NotImplementedError into
UnsupportedError, per-call checks, and the mixin methods of shipped
fallbacks. None of them is on the I/O hot path (see HOT_PATH_METHODS), so an
installed loop runs as fast as the stock one.
"""

from __future__ import annotations

import asyncio
import inspect
import selectors
import sys
from typing import Any, Callable, Dict, List, Optional, Tuple, Type

from . import _fallbacks
from ._errors import UnsupportedError
from ._guards import METHOD_CHECKS, PLAN_ATTRIBUTE, CappedSelectSelector, DeviceRefusalMigration, unsupported_error
from ._plan import FALLBACK, NATIVE, Guard, Plan
from ._vocab import FEATURE_METHODS

# Methods the loop runs per event, per callback or per read/write of a
# transport. A loop loopcompat builds must not override any of them. (Public
# add_reader/add_writer are not here: transports use the private _add_reader;
# only Python 3.8's sock_* methods call the public one, after EAGAIN.)
HOT_PATH_METHODS: Tuple[str, ...] = (
    "_run_once",
    "_process_events",
    "_add_callback",
    "_add_reader",
    "_add_writer",
    "_remove_reader",
    "_remove_writer",
    "_read_from_self",
    "_write_to_self",
    "_call_soon",
    "call_soon",
    "call_soon_threadsafe",
    "call_later",
    "call_at",
    "time",
    "create_future",
    "create_task",
    "run_forever",
    "run_until_complete",
    "sock_recv",
    "sock_recv_into",
    "sock_sendall",
    "sock_accept",
    "sock_connect",
    "_sock_recv",
    "_sock_sendall",
    "_loop_self_reading",
    "_make_socket_transport",
    "select",
)

_SELECTOR_CLASSES = {
    "select": "SelectSelector",
    "poll": "PollSelector",
    "epoll": "EpollSelector",
    "kqueue": "KqueueSelector",
    "devpoll": "DevpollSelector",
}


def stock_loop_class(loop_name: str) -> Type[asyncio.AbstractEventLoop]:
    if loop_name == "selector":
        return asyncio.SelectorEventLoop
    if loop_name == "proactor":
        cls = getattr(asyncio, "ProactorEventLoop", None)
        if cls is None:
            raise UnsupportedError("ProactorEventLoop exists only on Windows")
        return cls  # type: ignore[no-any-return]
    if loop_name in ("uvloop", "winloop"):
        import importlib

        try:
            module = importlib.import_module(loop_name)
        except ImportError as exc:
            raise UnsupportedError(
                f"the plan names {loop_name}, which cannot be imported: {exc} (pip install {loop_name})"
            ) from exc
        return module.Loop  # type: ignore[no-any-return]
    raise UnsupportedError(f"loop {loop_name!r} cannot be built by this loopcompat release")


def make_selector(plan: Plan) -> selectors.BaseSelector:
    name = plan.selector or "select"
    limit_rule = _limit_rule(plan)
    if name == "select" and limit_rule is not None:
        selector: selectors.BaseSelector = CappedSelectSelector()
        selector._loopcompat_rule = limit_rule  # type: ignore[attr-defined]
        setattr(selector, PLAN_ATTRIBUTE, plan)
        return selector
    cls = getattr(selectors, _SELECTOR_CLASSES[name], None)
    if cls is None:
        raise UnsupportedError(
            f"selector {name!r} ({_SELECTOR_CLASSES[name]}) is not available in this Python on {plan.platform}"
        )
    if _has_check(plan, "kqueue_device_refusal"):
        cls = _device_migrating(cls)
    selector = cls()
    setattr(selector, PLAN_ATTRIBUTE, plan)
    return selector  # type: ignore[no-any-return]


def _has_check(plan: Plan, check: str) -> bool:
    return any(guard.check == check for guard in plan.guards)


_MIGRATING: Dict[type, type] = {}


def _device_migrating(cls: type) -> type:
    """``cls`` with DeviceRefusalMigration (fact X8), made once per selector class."""
    made = _MIGRATING.get(cls)
    if made is None:
        made = _MIGRATING[cls] = type(cls.__name__, (DeviceRefusalMigration, cls), {"__module__": "loopcompat"})
    return made


def _limit_rule(plan: Plan) -> Optional[Guard]:
    return next((guard for guard in plan.guards if guard.effect == "limit"), None)


def _check_rules(plan: Plan) -> List[Guard]:
    return [guard for guard in plan.guards if guard.effect == "check" and guard.check in METHOD_CHECKS]


def _shape(plan: Plan) -> Tuple[Any, ...]:
    """What decides the generated class: non-native features and per-call checks."""
    features = tuple(
        (name, support.level, support.fallback)
        for name, support in plan.features.items()
        if support.level != NATIVE and FEATURE_METHODS.get(name)
    )
    checks = tuple(rule.fact for rule in _check_rules(plan))
    return features, checks


_CLASS_CACHE: Dict[Tuple[Any, ...], type] = {}


def loop_class(base: type, plan: Plan) -> type:
    """The class to build (or adopt into) for ``plan``: ``base`` itself if nothing is needed."""
    shape = _shape(plan)
    if shape == ((), ()):
        return base
    key = (base, shape)
    cls = _CLASS_CACHE.get(key)
    if cls is None:
        cls = _CLASS_CACHE[key] = _make_class(base, plan)
    return cls


def _make_class(base: type, plan: Plan) -> type:
    owner: List[type] = []  # filled once the class exists; wrappers call super(owner[0], self)
    namespace: Dict[str, Any] = {"__module__": "loopcompat", "_loopcompat_base": base}
    mixins: List[type] = []
    for feature, support in plan.features.items():
        methods = FEATURE_METHODS.get(feature, ())
        if support.level == NATIVE or not methods:
            continue
        if support.level == FALLBACK and support.fallback:
            mixin = _fallbacks.mixin(support.fallback)
            if mixin is not None:
                if mixin not in mixins:
                    mixins.append(mixin)
                continue
        for method in methods:
            namespace[method] = _translating(owner, base, method, feature)
    # Wrapped in reverse table order, so the first fact in the table is checked first
    # (S1, a regular file, before S5, not a socket: a file is both, and S1 says what to do).
    for rule in reversed(_check_rules(plan)):
        for method in rule.methods:
            namespace[method] = _checked(owner, method, rule, namespace.get(method))
    cls = type(base.__name__, tuple(mixins) + (base,), namespace)
    cls.__qualname__ = base.__qualname__
    owner.append(cls)
    return cls


def _translating(owner: List[type], base: type, method: str, feature: str) -> Callable[..., Any]:
    """A method that calls the stock one and turns NotImplementedError into UnsupportedError."""
    if inspect.iscoroutinefunction(getattr(base, method, None)):

        async def guarded_coroutine(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return await getattr(super(owner[0], self), method)(*args, **kwargs)
            except UnsupportedError:
                raise
            except NotImplementedError as exc:
                raise unsupported_error(self, method, feature) from exc

        guarded_coroutine.__name__ = guarded_coroutine.__qualname__ = method
        return guarded_coroutine

    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(super(owner[0], self), method)(*args, **kwargs)
        except UnsupportedError:
            raise
        except NotImplementedError as exc:
            raise unsupported_error(self, method, feature) from exc

    guarded.__name__ = guarded.__qualname__ = method
    return guarded


def _checked(
    owner: List[type], method: str, rule: Guard, inner: Optional[Callable[..., Any]]
) -> Callable[..., Any]:
    """A method that runs a per-call check on its first argument (the fd) first."""
    check = METHOD_CHECKS[rule.check or ""]

    def checked(self: Any, fileobj: Any, *args: Any, **kwargs: Any) -> Any:
        check(self, method, rule, fileobj)
        if inner is not None:
            return inner(self, fileobj, *args, **kwargs)
        return getattr(super(owner[0], self), method)(fileobj, *args, **kwargs)

    checked.__name__ = checked.__qualname__ = method
    return checked


def build_loop(plan: Plan) -> asyncio.AbstractEventLoop:
    """A new loop as ``plan`` says: stock class or guarded subclass, selector injected."""
    base = stock_loop_class(plan.loop)
    cls = loop_class(base, plan)
    if plan.loop == "selector":
        loop = cls(make_selector(plan))
    else:
        loop = cls()
    setattr(loop, PLAN_ATTRIBUTE, plan)
    selector = getattr(loop, "_selector", None)
    if isinstance(selector, DeviceRefusalMigration):
        import weakref

        selector._loopcompat_loop = weakref.ref(loop)
    return loop  # type: ignore[no-any-return]


def loop_kind(loop: asyncio.AbstractEventLoop) -> Tuple[Optional[str], Optional[str]]:
    """(loop name, selector name) of an existing loop; (None, None) when not a stock loop."""
    proactor = getattr(asyncio, "ProactorEventLoop", None)
    if proactor is not None and isinstance(loop, proactor):
        return "proactor", None
    for name in ("uvloop", "winloop"):
        module = sys.modules.get(name)
        if module is not None and isinstance(loop, module.Loop):
            return name, None
    from asyncio import selector_events

    if isinstance(loop, selector_events.BaseSelectorEventLoop):
        selector = getattr(loop, "_selector", None)
        for name, class_name in _SELECTOR_CLASSES.items():
            cls = getattr(selectors, class_name, None)
            if cls is not None and isinstance(selector, cls):
                return "selector", name
        return "selector", None
    return None, None


def adopt_loop(loop: asyncio.AbstractEventLoop, plan: Plan) -> asyncio.AbstractEventLoop:
    """Give an existing stock loop the guards and fallbacks of ``plan`` (made for its kind)."""
    # The stock class under a class loopcompat made; a subclass of one (the user's own)
    # is kept, with the new mixins in front of it.
    base = vars(type(loop)).get("_loopcompat_base", type(loop))
    loop.__class__ = loop_class(base, plan)
    setattr(loop, PLAN_ATTRIBUTE, plan)
    selector = getattr(loop, "_selector", None)
    limit_rule = _limit_rule(plan)
    if type(selector) is selectors.SelectSelector and limit_rule is not None:
        selector.__class__ = CappedSelectSelector
        selector._loopcompat_rule = limit_rule  # type: ignore[attr-defined]
        setattr(selector, PLAN_ATTRIBUTE, plan)
    return loop
