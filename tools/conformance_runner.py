"""Runs one module of CPython's test_asyncio inside the interpreter under test; tools/conformance.py drives it.

    python conformance_runner.py --mode stock|loopcompat --out RESULTS.jsonl MODULE
        [--only TEST_ID ...] [--after TEST_ID] [--test-timeout SECONDS] [--needs auto|a,b]

MODULE is a name like ``test_events`` (imported as ``test.test_asyncio.test_events``).
Results go to RESULTS.jsonl, one JSON object per line, flushed as they happen, so
that a hung or crashed run still leaves everything before the hang:

    {"event": "begin", ...}        the interpreter, the mode, loopcompat's plan
    {"event": "start", "id": ...}  a test started (the last one without a result hung)
    {"event": "result", "id": ..., "outcome": "passed|failed|error|skipped|xfail|xpass", ...}
    {"event": "end", "loops": {...}, "seconds": ...}

Both modes run the very same code with the same instrumentation (a census of
the event loops the tests create); the loopcompat mode differs only in that,
before the module is imported, loopcompat is installed and every way
CPython's tests obtain a loop is routed to loopcompat:

1. ``loopcompat.install(needs, config=False)``: asyncio.new_event_loop(),
   asyncio.run(), asyncio.get_event_loop() and asyncio.Runner() build planned loops.
2. ``asyncio.set_event_loop_policy(None)`` (every module's tearDownModule, many
   tests) means "back to the default"; with loopcompat installed the default is
   a fresh loopcompat policy, not asyncio's, so None installs one.
3. Loops built by class (``asyncio.SelectorEventLoop(selector)``,
   ``asyncio.ProactorEventLoop()``, 3.13's ``asyncio.EventLoop``: test_events, test_sendfile, test_sock_lowlevel,
   test_server, ...) and by the stock policies' ``_loop_factory`` go through
   ``loopcompat.adopt()``, which is what an application does with a loop built
   elsewhere. The stand-in classes answer isinstance()/issubclass() as the stock
   ones do.

The census counts, per module, every loop created and, when each is closed,
whether it carried loopcompat's plan (``_loopcompat_plan``), so the report can
show that the loopcompat run really ran loopcompat's loops.

Python 3.8+, standard library only (plus loopcompat in the loopcompat mode).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import faulthandler
import functools
import importlib
import json
import os
import platform
import sys
import time
import traceback
import unittest
from typing import Any, Dict, Iterator, List, Optional, Sequence, TextIO

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ALL_NEEDS = ("subprocess", "pipes", "add_reader", "signals", "unix_sockets", "udp", "char_devices")
DETAIL_CHARS = 3000  # the end of a failure's traceback kept in the results
PLAN_ATTRIBUTE = "_loopcompat_plan"


class Events:
    """The JSON-lines results file; every line is flushed at once (a hang or crash keeps them)."""

    def __init__(self, path: str) -> None:
        self._file: TextIO = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed by close())

    def emit(self, event: str, **fields: Any) -> None:
        self._file.write(json.dumps({"event": event, **fields}, default=str) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


# --- the loop census (both modes) -------------------------------------------------------------


class LoopCensus:
    """Counts loops by kind as they are created, and by plan as they are closed.

    Kinds: "asyncio" (asyncio's concrete loop classes, and loopcompat's subclasses
    of them), "abstract" (BaseSelectorEventLoop/BaseProactorEventLoop built
    directly with a mock selector or proactor), "test" (classes the test modules
    define: TestLoop ...), "base" (other BaseEventLoop subclasses, e.g. a bare
    asyncio.BaseEventLoop()).
    Only the first close() of an "asyncio" loop is counted.
    """

    def __init__(self) -> None:
        self.created: Dict[str, int] = collections.Counter()
        self.closed_planned = 0
        self.closed_stock: Dict[str, int] = collections.Counter()  # class name -> loops without a plan

    # asyncio's concrete loop classes, captured before loopcompat replaces the public names.
    CONCRETE = tuple(c for c in (getattr(asyncio, "SelectorEventLoop", None), getattr(asyncio, "ProactorEventLoop", None))
                     if isinstance(c, type))

    @classmethod
    def kind(cls, loop_class: type) -> str:
        from asyncio import proactor_events, selector_events

        module = getattr(loop_class, "__module__", "") or ""
        if module.startswith("test.") or module == "__main__":
            return "test"
        if issubclass(loop_class, cls.CONCRETE):
            return "asyncio"
        if issubclass(loop_class, (selector_events.BaseSelectorEventLoop, proactor_events.BaseProactorEventLoop)):
            return "abstract"  # the bases built directly, with a mock selector or proactor
        return "base"

    def install(self) -> None:
        base = asyncio.base_events.BaseEventLoop
        census, original_init, original_close = self, base.__init__, base.close

        @functools.wraps(original_init)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            original_init(self, *args, **kwargs)
            census.created[census.kind(type(self))] += 1

        @functools.wraps(original_close)
        def close(self: Any) -> None:
            if not self.is_closed() and not self.is_running() and census.kind(type(self)) == "asyncio":
                if getattr(self, PLAN_ATTRIBUTE, None) is not None:
                    census.closed_planned += 1
                else:
                    census.closed_stock[type(self).__qualname__] += 1
            original_close(self)

        base.__init__ = __init__  # type: ignore[assignment]
        base.close = close  # type: ignore[assignment]

    def to_dict(self) -> Dict[str, Any]:
        return {"created": dict(self.created), "closed_planned": self.closed_planned,
                "closed_stock": dict(self.closed_stock)}


# --- loopcompat mode: route every loop the tests create to loopcompat --------------------------


class _Adopting(type):
    """Metaclass of the stand-ins for asyncio's loop classes.

    Calling the stand-in builds the stock loop and returns ``loopcompat.adopt(loop)``;
    a subclass a test defines is built as itself, then adopted. isinstance() and
    issubclass() against the stand-in answer as for the stock class.
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        import loopcompat

        stock = cls.__dict__.get("_conformance_stock")
        loop = stock(*args, **kwargs) if stock is not None else super().__call__(*args, **kwargs)
        return loopcompat.adopt(loop)

    def __instancecheck__(cls, obj: Any) -> bool:
        stock = cls.__dict__.get("_conformance_stock")
        return isinstance(obj, stock) if stock is not None else super().__instancecheck__(obj)

    def __subclasscheck__(cls, sub: type) -> bool:
        stock = cls.__dict__.get("_conformance_stock")
        return issubclass(sub, stock) if stock is not None else super().__subclasscheck__(sub)


def _stand_in(stock: type) -> type:
    namespace = {"_conformance_stock": stock, "__module__": stock.__module__,
                 "__qualname__": stock.__qualname__, "__doc__": stock.__doc__}
    return _Adopting(stock.__name__, (stock,), namespace)


def install_loopcompat(needs_arg: str) -> Dict[str, Any]:
    """Install loopcompat and route every loop source to it; return what was done, for the report."""
    sys.path.insert(0, ROOT)  # this checkout's loopcompat
    import loopcompat

    if needs_arg == "auto":  # every need this platform can meet, natively or through a fallback
        probe = loopcompat.plan(list(ALL_NEEDS), on_unsupported="warn")
        needs = [need for need in ALL_NEEDS if need not in probe.unmet]
    else:
        needs = [need for need in needs_arg.split(",") if need]
    plan = loopcompat.install(needs=needs, config=False)

    # 2. set_event_loop_policy(None) -> a fresh loopcompat policy (only where install() uses one).
    events = asyncio.events
    installed = events._event_loop_policy  # type: ignore[attr-defined]
    sticky = installed is not None and hasattr(type(installed), "loop_factory")
    if sticky:
        policy_class = type(installed)
        original_set = events.set_event_loop_policy

        @functools.wraps(original_set)
        def set_event_loop_policy(policy: Any) -> None:
            original_set(policy_class() if policy is None else policy)

        events.set_event_loop_policy = asyncio.set_event_loop_policy = set_event_loop_policy

    # 3. Loops built by class, or by a stock policy's _loop_factory, are adopted.
    replaced: List[str] = []
    stand_ins: Dict[type, type] = {}
    modules = [asyncio] + [m for m in (getattr(asyncio, "unix_events", None), getattr(asyncio, "windows_events", None)) if m]
    for module in modules:
        for name in ("SelectorEventLoop", "ProactorEventLoop", "EventLoop"):  # EventLoop: 3.13+
            stock = module.__dict__.get(name)
            if isinstance(stock, type):
                stand_in = stand_ins.setdefault(stock, _stand_in(stock))
                setattr(module, name, stand_in)
                replaced.append(f"{module.__name__}.{name}")
    for module in modules:
        for name, value in list(module.__dict__.items()):
            if isinstance(value, type) and issubclass(value, events.BaseDefaultEventLoopPolicy):
                factory = value.__dict__.get("_loop_factory")
                if factory in stand_ins:
                    value._loop_factory = stand_ins[factory]  # type: ignore[attr-defined]
                    replaced.append(f"{module.__name__}.{name}._loop_factory")
    return {"needs": needs, "plan": plan.to_dict(), "explain": plan.explain(),
            "sticky_policy": sticky, "adopted_classes": replaced}


# --- running the tests --------------------------------------------------------------------------


ORDER = {"error": 5, "failed": 4, "xpass": 3, "passed": 2, "xfail": 1, "skipped": 0}


class Recorder(unittest.TestResult):
    """Records one outcome per test (the worst of the test's own and its subtests')."""

    def __init__(self, events: Events, test_timeout: float) -> None:
        super().__init__()
        self.events, self.test_timeout = events, test_timeout
        self.current: Optional[str] = None
        self.outcome: Optional[str] = None
        self.detail = ""
        self.started = 0.0
        self.counts: Dict[str, int] = collections.Counter()

    def startTest(self, test: unittest.TestCase) -> None:
        super().startTest(test)
        self.current, self.outcome, self.detail = test.id(), None, ""
        self.started = time.monotonic()
        self.events.emit("start", id=self.current)
        if self.test_timeout > 0:  # a hung test: dump every thread's stack, then exit
            faulthandler.dump_traceback_later(self.test_timeout, exit=True)

    def stopTest(self, test: unittest.TestCase) -> None:
        if self.test_timeout > 0:  # re-armed, not cancelled: tearDownClass/setUpClass until the next test
            faulthandler.dump_traceback_later(self.test_timeout, exit=True)
        super().stopTest(test)
        self._emit(test.id(), self.outcome or "passed", self.detail, time.monotonic() - self.started)
        self.current = None

    def _emit(self, test_id: str, outcome: str, detail: str, seconds: float) -> None:
        self.counts[outcome] += 1
        self.events.emit("result", id=test_id, outcome=outcome, seconds=round(seconds, 3),
                         detail=detail[-DETAIL_CHARS:])

    def _record(self, test: Any, outcome: str, detail: str = "") -> None:
        if self.current is None or getattr(test, "id", lambda: None)() != self.current:
            # Class or module fixtures (setUpClass, tearDownModule ...) report outside any test.
            self._emit(str(test), outcome, detail, 0.0)
            return
        if self.outcome is None or ORDER[outcome] > ORDER[self.outcome]:
            self.outcome, self.detail = outcome, detail

    def _format(self, err: Any, test: unittest.TestCase) -> str:
        # unittest's own formatting (it drops unittest's frames); private, hence the getattr.
        return str(getattr(self, "_exc_info_to_string")(err, test))

    def addSuccess(self, test: unittest.TestCase) -> None:
        super().addSuccess(test)
        self._record(test, "passed")

    def addFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addFailure(test, err)
        self._record(test, "failed", self._format(err, test))

    def addError(self, test: unittest.TestCase, err: Any) -> None:
        super().addError(test, err)
        self._record(test, "error", self._format(err, test))

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        super().addSkip(test, reason)
        self._record(test, "skipped", reason)

    def addExpectedFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addExpectedFailure(test, err)
        self._record(test, "xfail")

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:
        super().addUnexpectedSuccess(test)
        self._record(test, "xpass")

    def addSubTest(self, test: unittest.TestCase, subtest: Any, err: Any) -> None:
        super().addSubTest(test, subtest, err)
        if err is not None:
            failed = issubclass(err[0], test.failureException)
            self._record(test, "failed" if failed else "error",
                         f"{subtest.id()}\n{self._format(err, test)}")


def flatten(suite: Any) -> Iterator[Any]:
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from flatten(item)
        else:
            yield item


def select(tests: List[Any], only: Sequence[str], after: Optional[str]) -> List[Any]:
    if only:
        wanted = set(only)
        tests = [t for t in tests if t.id() in wanted]
    if after:
        ids = [t.id() for t in tests]
        if after in ids:
            tests = tests[ids.index(after) + 1:]
    return tests


def run_module(module_name: str, events: Events, only: Sequence[str], after: Optional[str],
               test_timeout: float) -> Recorder:
    recorder = Recorder(events, test_timeout)
    full_name = f"test.test_asyncio.{module_name}"
    if test_timeout > 0:  # an import or fixture that hangs
        faulthandler.dump_traceback_later(test_timeout * 2, exit=True)
    try:
        module = importlib.import_module(full_name)
    except unittest.SkipTest as exc:  # e.g. test_windows_events off Windows
        recorder._emit(full_name, "skipped", f"module skipped: {exc}", 0.0)
        return recorder
    except Exception:  # the module cannot even be imported: one error, as unittest reports it
        recorder._emit(full_name, "error", traceback.format_exc(), 0.0)
        return recorder
    finally:
        if test_timeout > 0:
            faulthandler.cancel_dump_traceback_later()
    tests = select(list(flatten(unittest.defaultTestLoader.loadTestsFromModule(module))), only, after)
    events.emit("collected", count=len(tests))
    # One flat suite: unittest still runs setUpModule/setUpClass and their tearDowns around it.
    unittest.TestSuite(tests).run(recorder)
    if test_timeout > 0:
        faulthandler.cancel_dump_traceback_later()
    return recorder


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("module", help="a module of test.test_asyncio, e.g. test_events")
    parser.add_argument("--mode", choices=("stock", "loopcompat"), required=True)
    parser.add_argument("--out", required=True, help="results file (JSON lines, appended)")
    parser.add_argument("--needs", default="auto", help="loopcompat needs: 'auto' (all this platform can meet) or a,b")
    parser.add_argument("--only", action="append", default=[], metavar="TEST_ID", help="run only these tests")
    parser.add_argument("--after", metavar="TEST_ID", help="skip the tests up to and including this one")
    parser.add_argument("--test-timeout", type=float, default=60.0, help="seconds per test (0: none)")
    args = parser.parse_args(argv)

    # The script's own folder (tools/) must not shadow anything; the checkout is added in loopcompat mode.
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
    events = Events(args.out)
    started = time.monotonic()
    census = LoopCensus()
    census.install()
    begin: Dict[str, Any] = {"module": args.module, "mode": args.mode, "python": platform.python_version(),
                             "implementation": platform.python_implementation(), "platform": sys.platform,
                             "executable": sys.executable, "after": args.after, "only": args.only}
    if args.mode == "loopcompat":
        begin["loopcompat"] = install_loopcompat(args.needs)
    events.emit("begin", **begin)
    recorder = run_module(args.module, events, args.only, args.after, args.test_timeout)
    events.emit("end", counts=dict(recorder.counts), loops=census.to_dict(),
                seconds=round(time.monotonic() - started, 2))
    events.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
