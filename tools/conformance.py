#!/usr/bin/env python3
"""The conformance differential: CPython's own test_asyncio, stock and with loopcompat, per module.

    python3 tools/conformance.py --python 3.12 [--python 3.13 ...] [--windows 3.13]
                                 [--report out.json] [--markdown out.md] [--jobs 2]
    python3 tools/conformance.py                      # every Linux CPython 3.8-3.13 found

For each interpreter, every module of the test_asyncio package that ships with
it (Lib/test/test_asyncio) runs twice, each module in its own process: stock,
and with loopcompat installed and every loop the tests create routed to
loopcompat (see tools/conformance_runner.py, which runs inside the interpreter).
The two runs are compared test by test. A NEW FAILURE is a test that fails or
errors with loopcompat and does not with the stock loops; each one must be
listed, with its reason, in the machine-readable list of docs/conformance.md,
or this script exits 1. A new failure that passes when re-run alone is
reported as unstable, not as a failure.

Linux interpreters are found as tools/run.py finds them (pyenv, then
python3.X) and run in its cached venvs (~/.cache/loopcompat/venvs/py3.X).
Windows versions run under the Windows test bed (tools/winbed.py, Wine); the
embeddable Windows Python has no Lib/test, so the test package of the Linux
interpreter of the same minor version is copied to a cache folder and put on
the Windows sys.path; the report records both versions.

A test that runs longer than --test-timeout is stopped (its stack is in the
module's log), counted as an error of that run, and the module resumes after it.
Exit status: 0 no unexplained new failure; 1 unexplained new failures, or an
interpreter that could not run; 2 usage error.
"""

from __future__ import annotations

import argparse
import collections
import fnmatch
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tools import winbed  # noqa: E402  (the Windows test bed: paths, stamps)
from tools.run import VERSIONS, ensure_venv, find_interpreter  # noqa: E402

RUNNER = ROOT / "tools" / "conformance_runner.py"
DOC = ROOT / "docs" / "conformance.md"
CACHE = Path(os.environ.get("LOOPCOMPAT_CONFORMANCE_HOME", Path.home() / ".cache" / "loopcompat" / "conformance"))
MODES = ("stock", "loopcompat")
GOOD, BAD = ("passed", "xfail"), ("failed", "error", "xpass")
EXPLAINED_BLOCK = re.compile(r"<!-- conformance:explained -->\s*```json\n(.*?)```", re.DOTALL)
MAX_RESUMES = 12  # hung tests per module run before giving up on the rest of the module


# --- where and how each interpreter runs ----------------------------------------------------------


@dataclass
class Target:
    """One interpreter: how to start the runner in it, and where its test_asyncio comes from."""

    system: str  # "linux" | "windows"
    version: str  # "3.12"
    python: str  # the interpreter's full version, e.g. "3.13.2"
    suite_version: str  # the version whose Lib/test is run, e.g. "3.13.0"
    suite_dir: Path  # .../test/test_asyncio on this (Linux) machine
    command: List[str]  # argv prefix that runs a Python script in the interpreter
    path: Callable[[Path], str]  # a host path as the interpreter sees it
    env: Dict[str, str] = field(default_factory=dict)
    default_test_timeout: float = 60.0

    @property
    def name(self) -> str:
        return f"{self.system} {self.version}"

    @property
    def slug(self) -> str:
        return f"{self.system}-{self.version}"

    def modules(self) -> List[str]:
        return sorted(p.stem for p in self.suite_dir.glob("test_*.py"))


def clean_environment() -> Dict[str, str]:
    """Our environment minus loopcompat's own settings (both runs must see the same, neutral world)."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("LOOPCOMPAT_") or k.startswith("LOOPCOMPAT_WINBED")}


def interpreter_facts(python: str) -> Tuple[str, Path]:
    """(full version, its test/test_asyncio folder) of a Linux interpreter."""
    code = "import os, platform, test; print(platform.python_version()); print(os.path.dirname(test.__file__))"
    out = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True,
                         stdin=subprocess.DEVNULL).stdout.split("\n")
    return out[0].strip(), Path(out[1].strip()) / "test_asyncio"


def linux_target(version: str) -> Target:
    python = find_interpreter(version)
    if python is None:
        raise RuntimeError(f"no CPython {version} found (pyenv or python{version} on PATH)")
    venv_python = ensure_venv(version, python) / "bin" / "python"
    full, suite = interpreter_facts(str(venv_python))
    return Target("linux", version, full, full, suite, [str(venv_python)], str, clean_environment())


def copy_test_package(version: str) -> Tuple[str, Path]:
    """The Linux interpreter's test package (what test_asyncio needs of it), copied once to the cache."""
    python = find_interpreter(version)
    if python is None:
        raise RuntimeError(f"the Windows run needs the test package of a Linux CPython {version}; none found")
    full, suite = interpreter_facts(python)
    source = suite.parent
    dest = CACHE / f"testpkg-{full}"
    if not (dest / ".complete").exists():
        shutil.rmtree(dest, ignore_errors=True)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        (dest / "test").mkdir(parents=True)
        shutil.copy2(source / "__init__.py", dest / "test" / "__init__.py")
        for sub in ("support", "test_asyncio", "certdata"):  # certdata: 3.13's TLS test data
            if (source / sub).is_dir():
                shutil.copytree(source / sub, dest / "test" / sub, ignore=ignore)
        for data in source.iterdir():  # older versions keep certificates beside the tests
            if data.is_file() and data.suffix in (".pem", ".crt", ".key", ".der", ".pkcs12", ".csr"):
                shutil.copy2(data, dest / "test" / data.name)
        (dest / ".complete").write_text(full)
    return full, dest


def winbed_command(version: str) -> List[str]:
    return [sys.executable, str(ROOT / "tools" / "winbed.py"), "run", version, "--"]


def windows_target(version: str) -> Target:
    setup = subprocess.run([sys.executable, str(ROOT / "tools" / "winbed.py"), "setup", version],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    stamp = winbed.read_stamp(version)
    if setup.returncode != 0 or stamp is None:
        raise RuntimeError(f"the Windows test bed could not set up {version} (exit {setup.returncode}):\n"
                           f"{winbed.tail(setup.stderr + setup.stdout)}")
    suite_version, package_root = copy_test_package(version)
    env = clean_environment()
    env["LOOPCOMPAT_WINBED_SYSPATH"] = winbed.to_windows_path(package_root)
    marker = package_root / f".compiled-{version}"
    if not marker.exists():  # this machine sets PYTHONDONTWRITEBYTECODE=1: compile once
        subprocess.run([*winbed_command(version), "-m", "compileall", "-q",
                        winbed.to_windows_path(package_root / "test")],
                       stdin=subprocess.DEVNULL, capture_output=True, env=env, check=False)
        marker.touch()
    return Target("windows", version, str(stamp["python"]), suite_version, package_root / "test" / "test_asyncio",
                  winbed_command(version), winbed.to_windows_path, env)


# --- running modules ------------------------------------------------------------------------------


@dataclass
class ModuleRun:
    """One module in one mode: outcome per test id, and what the runner said about itself."""

    module: str
    mode: str
    outcomes: Dict[str, str] = field(default_factory=dict)
    details: Dict[str, str] = field(default_factory=dict)
    begin: Dict[str, Any] = field(default_factory=dict)
    loops: Dict[str, Any] = field(default_factory=dict)
    hung: List[str] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)
    seconds: float = 0.0

    def counts(self) -> Dict[str, int]:
        c = collections.Counter(self.outcomes.values())
        return {"passed": c["passed"] + c["xfail"], "failed": c["failed"] + c["xpass"],
                "errors": c["error"], "skipped": c["skipped"]}


def read_events(path: Path, offset: int) -> Tuple[List[Dict[str, Any]], int]:
    try:
        with open(path, encoding="utf-8") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return [], offset
    complete = data[: data.rfind("\n") + 1]  # a line cut by a kill is dropped
    events = []
    for line in complete.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            pass
    return events, offset + len(complete.encode("utf-8"))


def stop_group(proc: "subprocess.Popen[bytes]") -> None:
    """Stop the process group we started for one runner: the runner, and whatever its tests left.

    After a normal exit the group is usually empty already, and this returns at once.
    """
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                try:
                    os.killpg(proc.pid, 0)  # anyone left in the group?
                except (ProcessLookupError, PermissionError):
                    return
            time.sleep(0.05)


# Runner processes alive now, so that Ctrl-C or SIGTERM stops them (each has a session of its own).
_LIVE: "set[subprocess.Popen[bytes]]" = set()
_LIVE_LOCK = threading.Lock()
_STOPPING = threading.Event()


def stop_all() -> None:
    _STOPPING.set()
    with _LIVE_LOCK:
        live = list(_LIVE)
    for proc in live:
        stop_group(proc)


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def run_module(target: Target, module: str, mode: str, work: Path, test_timeout: float,
               module_timeout: float, only: Sequence[str] = (), tag: str = "") -> ModuleRun:
    """Run one module in one mode; resume after each hung test; never raise for what the tests do."""
    result = ModuleRun(module, mode)
    out = work / f"{module}.{mode}{tag}.jsonl"
    log = work / f"{module}.{mode}{tag}.log"
    for stale in (out, log):
        stale.unlink(missing_ok=True)
    started = time.monotonic()
    offset, after = 0, None
    for _attempt in range(MAX_RESUMES + 1):
        if _STOPPING.is_set():
            result.problems.append("interrupted")
            break
        argv = [*target.command, target.path(RUNNER), module, "--mode", mode, "--out", target.path(out),
                "--test-timeout", str(test_timeout)]
        for test_id in only:
            argv += ["--only", test_id]
        if after:
            argv += ["--after", after]
        remaining = module_timeout - (time.monotonic() - started)
        with open(log, "ab") as log_file:
            log_file.write(f"\n### {' '.join(argv)}\n".encode())
            log_file.flush()
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                                    cwd=work / "cwd", env=target.env, start_new_session=True)
            with _LIVE_LOCK:
                _LIVE.add(proc)
            killed = False
            try:
                proc.wait(max(remaining, 1))
            except subprocess.TimeoutExpired:
                killed = True
            stop_group(proc)  # also reaps what a test left running
            with _LIVE_LOCK:
                _LIVE.discard(proc)
        events, offset = read_events(out, offset)
        ended = False
        running: Optional[str] = None
        for event in events:
            kind = event.get("event")
            if kind == "begin" and not result.begin:
                result.begin = event
            elif kind == "start":
                running = event["id"]
            elif kind == "result":
                result.outcomes[event["id"]] = event["outcome"]
                if event.get("detail"):
                    result.details[event["id"]] = event["detail"]
                running = None
            elif kind == "end":
                ended = True
                for key, value in event.get("loops", {}).items():
                    merge_loops(result.loops, key, value)
        if ended:
            break
        if running is None:  # died outside any test (import, fixture, crash)
            result.problems.append(f"runner exited {proc.returncode} outside a test"
                                   f"{' (module timeout)' if killed else ''}; log {log}")
            result.outcomes.setdefault(f"{module} (runner)", "error")
            result.details[f"{module} (runner)"] = log_tail(log)
            break
        why = "module timeout" if killed else f"no result within {test_timeout:g} s"
        result.hung.append(running)
        result.outcomes[running] = "error"
        result.details[running] = f"HUNG ({why}); the stacks at that moment are in {log}\n{log_tail(log, 60)}"
        if killed:
            break
        after = running
    result.seconds = round(time.monotonic() - started, 1)
    return result


def merge_loops(into: Dict[str, Any], key: str, value: Any) -> None:
    if isinstance(value, dict):
        bucket = into.setdefault(key, {})
        for k, v in value.items():
            bucket[k] = bucket.get(k, 0) + v
    else:
        into[key] = into.get(key, 0) + value


# --- the differential -----------------------------------------------------------------------------


# Kinds of explanation: "intended" excuses a new failure (loopcompat differs on purpose); the
# others only label tests that fail in BOTH runs, i.e. causes outside loopcompat.
EXPLANATION_KINDS = ("intended", "wine", "embeddable", "machine")


@dataclass
class Explanation:
    test: str  # fnmatch pattern over test ids
    reason: str
    kind: str = "intended"  # one of EXPLANATION_KINDS
    platform: str = "*"
    python: Any = "*"  # "3.12", ["3.8", "3.9"] or "*"
    used: int = 0

    def matches(self, test_id: str, target: Target) -> bool:
        pythons = [self.python] if isinstance(self.python, str) else list(self.python)
        return (fnmatch.fnmatchcase(test_id, self.test)
                and self.platform in ("*", target.system)
                and ("*" in pythons or target.version in pythons))


def load_explanations(path: Path) -> List[Explanation]:
    """The machine-readable list in docs/conformance.md (a ```json block after its marker)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    match = EXPLAINED_BLOCK.search(text)
    if not match:
        return []
    explanations = []
    for entry in json.loads(match.group(1)):
        explanation = Explanation(**{k: v for k, v in entry.items() if k in Explanation.__dataclass_fields__})
        if explanation.kind not in EXPLANATION_KINDS:
            raise ValueError(f"{path}: explanation {explanation.test!r}: kind {explanation.kind!r} is not one of "
                             f"{', '.join(EXPLANATION_KINDS)}")
        explanations.append(explanation)
    return explanations


def explain(row: Dict[str, Any], target: Target, explanations: List[Explanation], kinds: Sequence[str]) -> None:
    """Label ``row`` with the first explanation of one of ``kinds`` that matches it."""
    for explanation in explanations:
        if explanation.kind in kinds and explanation.matches(row["test"], target):
            explanation.used += 1
            row["explained"], row["kind"] = explanation.reason, explanation.kind
            return


@dataclass
class TargetResult:
    target: Target
    runs: Dict[Tuple[str, str], ModuleRun]
    seconds: float
    rerun_seconds: float = 0.0
    new_failures: List[Dict[str, Any]] = field(default_factory=list)
    unstable: List[Dict[str, Any]] = field(default_factory=list)
    new_passes: List[Dict[str, Any]] = field(default_factory=list)
    both_failed: List[Dict[str, Any]] = field(default_factory=list)
    skip_changes: List[Dict[str, Any]] = field(default_factory=list)
    incomparable: List[str] = field(default_factory=list)  # modules whose stock run crashed: no baseline
    error: Optional[str] = None


def compare(runs: Dict[Tuple[str, str], ModuleRun], modules: Iterable[str]) -> Dict[str, List[Dict[str, Any]]]:
    found: Dict[str, List[Dict[str, Any]]] = {"new": [], "fixed": [], "both": [], "skips": []}
    for module in modules:
        stock, lc = runs[(module, "stock")], runs[(module, "loopcompat")]
        for test_id in sorted(set(stock.outcomes) | set(lc.outcomes)):
            s, l_ = stock.outcomes.get(test_id), lc.outcomes.get(test_id)
            row = {"module": module, "test": test_id, "stock": s, "loopcompat": l_,
                   "detail": lc.details.get(test_id, ""), "stock_detail": stock.details.get(test_id, "")}
            if l_ in BAD and s not in BAD:
                found["new"].append(row)
            elif s in BAD and l_ in BAD:
                found["both"].append(row)
            elif s in BAD and l_ not in BAD:
                found["fixed"].append(row)
            elif (s == "skipped") != (l_ == "skipped"):
                found["skips"].append(row)
    return found


def run_target(target: Target, args: argparse.Namespace, explanations: List[Explanation]) -> TargetResult:
    work = CACHE / "runs" / target.slug
    shutil.rmtree(work, ignore_errors=True)
    (work / "cwd").mkdir(parents=True)
    modules = [m for m in target.modules() if not args.modules or m in args.modules]
    test_timeout = args.test_timeout or target.default_test_timeout
    # The largest modules first, each module's two runs side by side (same load on both).
    sizes = {m: (target.suite_dir / f"{m}.py").stat().st_size for m in modules}
    tasks = [(m, mode) for m in sorted(modules, key=lambda m: -sizes[m]) for mode in MODES]
    print(f"\n=== {target.name}: CPython {target.python}, test_asyncio of {target.suite_version}, "
          f"{len(modules)} modules x 2 runs, {args.jobs} at a time; logs in {work}", flush=True)
    lock = threading.Lock()
    started = time.monotonic()

    def job(task: Tuple[str, str], tag: str = "") -> ModuleRun:
        run = run_module(target, task[0], task[1], work, test_timeout, args.module_timeout, tag=tag)
        with lock:
            c = run.counts()
            extra = f"  HUNG: {', '.join(run.hung)}" if run.hung else ""
            extra += f"  PROBLEM: {'; '.join(run.problems)}" if run.problems else ""
            print(f"  {target.slug} {task[0]:<28} {task[1]:<10} {c['passed']:>5} passed {c['failed']:>3} failed "
                  f"{c['errors']:>3} errors {c['skipped']:>4} skipped {run.seconds:>7.1f} s{extra}", flush=True)
        return run

    pool = ThreadPoolExecutor(max_workers=args.jobs)
    try:
        runs = dict(zip(tasks, pool.map(job, tasks)))
    except BaseException:  # Ctrl-C / SIGTERM: stop the runners before waiting for the threads
        stop_all()
        raise
    finally:
        pool.shutdown(wait=True)
    # A runner that died outside any test (a crash, or the test bed changing under it) gets one
    # more chance; what still fails stays in the report.
    for task, run in list(runs.items()):
        if run.problems and not _STOPPING.is_set():
            print(f"  {target.slug} {task[0]} {task[1]}: {run.problems[-1]}; running it again", flush=True)
            again = job(task, tag=".retry")
            again.problems[:0] = [f"first attempt: {p}" for p in run.problems]
            runs[task] = again
    result = TargetResult(target, runs, round(time.monotonic() - started, 1))
    result.incomparable = [m for m in modules if runs[(m, "stock")].outcomes.get(f"{m} (runner)")]
    found = compare(runs, [m for m in modules if m not in result.incomparable])
    result.new_passes, result.both_failed, result.skip_changes = found["fixed"], found["both"], found["skips"]

    # New failures once more, alone, in the loopcompat mode: one that passes then is unstable.
    rerun_started = time.monotonic()
    by_module: Dict[str, List[Dict[str, Any]]] = collections.defaultdict(list)
    for row in found["new"]:
        by_module[row["module"]].append(row)
    for module, rows in by_module.items():
        ids = [r["test"] for r in rows if r["test"].startswith("test.")]  # fixtures cannot be re-run alone
        passes: Dict[str, int] = collections.Counter()
        for attempt in range(args.reruns if ids else 0):
            again = run_module(target, module, "loopcompat", work, test_timeout, args.module_timeout,
                               only=ids, tag=f".rerun{attempt + 1}")
            for test_id in ids:
                if again.outcomes.get(test_id) in GOOD:
                    passes[test_id] += 1
        for row in rows:
            row["reruns"], row["rerun_passes"] = (args.reruns if row["test"] in ids else 0), passes[row["test"]]
            if passes[row["test"]]:
                result.unstable.append(row)
                continue
            explain(row, target, explanations, ("intended",))
            result.new_failures.append(row)
    for row in result.both_failed + result.new_passes:  # causes outside loopcompat, where known
        explain(row, target, explanations, EXPLANATION_KINDS[1:])
    result.rerun_seconds = round(time.monotonic() - rerun_started, 1)
    return result


# --- reporting ------------------------------------------------------------------------------------


def totals(result: TargetResult, mode: str) -> Dict[str, int]:
    total: Dict[str, int] = collections.Counter()
    for (_, m), run in result.runs.items():
        if m == mode:
            total.update(run.counts())
    return {k: total[k] for k in ("passed", "failed", "errors", "skipped")}


def census(result: TargetResult) -> Dict[str, Any]:
    loops: Dict[str, Any] = {}
    for (_, mode), run in result.runs.items():
        if mode == "loopcompat":
            for key, value in run.loops.items():
                merge_loops(loops, key, value)
    stock_classes = loops.get("closed_stock", {})
    return {"asyncio_loops_created": loops.get("created", {}).get("asyncio", 0),
            "other_loops_created": sum(v for k, v in loops.get("created", {}).items() if k != "asyncio"),
            "closed_with_plan": loops.get("closed_planned", 0),
            "closed_without_plan": sum(stock_classes.values()), "classes_without_plan": stock_classes}


def plan_summary(result: TargetResult) -> Dict[str, Any]:
    for (_, mode), run in sorted(result.runs.items()):
        info = run.begin.get("loopcompat") if mode == "loopcompat" else None
        if info:
            plan = info["plan"]
            loop = f"{plan['loop']}" + (f"/{plan['selector']}" if plan.get("selector") else "")
            return {"loop": loop, "fallbacks": plan.get("fallbacks", []), "needs": info["needs"],
                    "unmet": plan.get("unmet", []), "sticky_policy": info["sticky_policy"],
                    "adopted_classes": info["adopted_classes"]}
    return {}


def fmt(c: Dict[str, int]) -> str:
    return f"{c['passed']} / {c['failed']} / {c['errors']} / {c['skipped']}"


def diff(a: Dict[str, int], b: Dict[str, int], key: str) -> str:
    d = b[key] - a[key]
    return f"{d:+d}" if d else "0"


def first_line(detail: str) -> str:
    lines = [ln.strip() for ln in detail.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if re.match(r"^[A-Za-z_.]+(Error|Exception|Failure|Warning)\b|^HUNG", ln)]
    line = errors[-1] if errors else (lines[-1] if lines else "")
    return (line.split(";")[0] if line.startswith("HUNG") else line)[:160]


def markdown(results: List[TargetResult]) -> str:
    out = [("| interpreter | test suite | stock passed / failed / errors / skipped | loopcompat passed / failed "
            "/ errors / skipped | new failures (explained) | unstable | loops with plan | wall time |"),
           "|---|---|---|---|---|---|---|---|"]
    for r in results:
        if r.error:
            out.append(f"| {r.target.name} | - | could not run: {r.error.splitlines()[0]} | | | | | |")
            continue
        s, l_ = totals(r, "stock"), totals(r, "loopcompat")
        explained = sum(1 for row in r.new_failures if row.get("explained"))
        c = census(r)
        out.append(f"| {r.target.system} CPython {r.target.python} | {r.target.suite_version} | {fmt(s)} | {fmt(l_)} "
                   f"| {len(r.new_failures)} ({explained}) | {len(r.unstable)} "
                   f"| {c['closed_with_plan']} of {c['closed_with_plan'] + c['closed_without_plan']} "
                   f"| {r.seconds + r.rerun_seconds:.0f} s |")
    for r in results:
        if r.error:
            continue
        p, c = plan_summary(r), census(r)
        out += ["", f"### {r.target.system} CPython {r.target.python} (test_asyncio of {r.target.suite_version})", "",
                f"loopcompat plan: {p.get('loop')}, fallbacks {', '.join(p.get('fallbacks') or []) or 'none'}; "
                f"needs {', '.join(p.get('needs') or [])}"
                + (f" (unmet here: {', '.join(p['unmet'])})" if p.get("unmet") else "") + ".",
                f"Loops in the loopcompat run: {c['asyncio_loops_created']} asyncio loops created "
                f"(besides {c['other_loops_created']} test-defined loops and mock-driven base classes); of those closed, {c['closed_with_plan']} "
                f"carried `_loopcompat_plan`, {c['closed_without_plan']} did not"
                + (f" ({', '.join(f'{k}: {v}' for k, v in c['classes_without_plan'].items())})"
                   if c["classes_without_plan"] else "") + ".",
                f"Wall time: {r.seconds:.0f} s for both runs, {r.rerun_seconds:.0f} s re-running new failures.", "",
                "| module | stock P / F / E / S | loopcompat P / F / E / S | Δ passed | Δ failed | Δ errors | Δ skipped | s (stock / lc) |",
                "|---|---|---|---|---|---|---|---|"]
        for module in sorted({m for m, _ in r.runs}):
            a, b = r.runs[(module, "stock")], r.runs[(module, "loopcompat")]
            ca, cb = a.counts(), b.counts()
            out.append(f"| {module} | {fmt(ca)} | {fmt(cb)} | {diff(ca, cb, 'passed')} | {diff(ca, cb, 'failed')} "
                       f"| {diff(ca, cb, 'errors')} | {diff(ca, cb, 'skipped')} | {a.seconds:.0f} / {b.seconds:.0f} |")
        if r.incomparable:
            out += ["", "**Not compared** (the stock run of these modules crashed twice, so there is no baseline): "
                    + ", ".join(r.incomparable)]
        sections = (("New failures (fail with loopcompat, pass stock)", r.new_failures, "**UNEXPLAINED**"),
                    ("Unstable (failed with loopcompat once, passed when re-run alone)", r.unstable, ""),
                    ("Passing with loopcompat, failing stock (fixed, or unstable in the stock run)", r.new_passes, ""),
                    ("Failing in both runs, so not loopcompat's (" + ("Wine, or the embeddable Windows Python"
                     if r.target.system == "windows" else "this machine") + ")", r.both_failed, "cause not recorded"))
        for title, rows, missing in sections:
            if not rows:
                continue
            out += ["", f"{title}:", ""]
            for row in rows:
                why = f" — {row['kind']}: {row['explained']}" if row.get("explained") else (f" — {missing}" if missing else "")
                out.append(f"- `{row['test']}` ({row['stock']} → {row['loopcompat']}): "
                           f"{first_line(row['detail'] or row['stock_detail'])}{why}")
    return "\n".join(out) + "\n"


def json_report(results: List[TargetResult], explanations: List[Explanation]) -> Dict[str, Any]:
    targets = []
    for r in results:
        entry: Dict[str, Any] = {"target": r.target.name, "system": r.target.system, "version": r.target.version}
        if r.error:
            entry["error"] = r.error
            targets.append(entry)
            continue
        entry.update(python=r.target.python, suite_version=r.target.suite_version, seconds=r.seconds,
                     rerun_seconds=r.rerun_seconds, stock=totals(r, "stock"), loopcompat=totals(r, "loopcompat"),
                     plan=plan_summary(r), loops=census(r), new_failures=r.new_failures, unstable=r.unstable,
                     fixed=r.new_passes, both_failed=r.both_failed, skip_changes=r.skip_changes,
                     incomparable=r.incomparable,
                     modules={m: {mode: {**run.counts(), "seconds": run.seconds, "hung": run.hung,
                                         "problems": run.problems}
                                  for (mm, mode), run in r.runs.items() if mm == m}
                              for m in sorted({m for m, _ in r.runs})})
        targets.append(entry)
    return {"checkout": checkout_state(), "targets": targets, "unused_explanations": [{"test": e.test, "kind": e.kind} for e in explanations if not e.used]}


def checkout_state() -> str:
    """The commit of the checkout under test, and whether it has changes ('unknown' without git)."""
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True,
                             text=True, stdin=subprocess.DEVNULL, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out or "unknown"


def update_doc(path: Path, table: str) -> None:
    """Replace what follows the "latest" marker, up to the next "## " heading, with ``table``."""
    text = path.read_text(encoding="utf-8")
    marker = "<!-- conformance:latest -->\n"
    start = text.index(marker) + len(marker)
    end = text.find("\n## ", start)
    end = len(text) if end < 0 else end + 1
    stamp = time.strftime("%Y-%m-%d")
    path.write_text(f"{text[:start]}Run on {stamp}, checkout {checkout_state()}; "
                    f"`python3 tools/conformance.py ... --update-doc` rewrites this "
                    f"section.\n\n{table}\n{text[end:]}", encoding="utf-8")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", action="append", default=[], metavar="X.Y", help="a Linux CPython (repeatable)")
    parser.add_argument("--windows", action="append", default=[], metavar="X.Y",
                        help="a Windows CPython under the test bed (repeatable)")
    parser.add_argument("--report", metavar="FILE", help="write the results as JSON")
    parser.add_argument("--markdown", metavar="FILE", help="write the tables as Markdown")
    parser.add_argument("--jobs", type=int, default=2, help="module runs at a time (default 2)")
    parser.add_argument("--modules", help="only these modules (comma-separated, e.g. test_events,test_tasks)")
    parser.add_argument("--test-timeout", type=float, default=0,
                        help="seconds one test may take (default 60)")
    parser.add_argument("--module-timeout", type=float, default=1200, help="seconds one module run may take")
    parser.add_argument("--reruns", type=int, default=2, help="re-runs of each new failure, alone (default 2)")
    parser.add_argument("--update-doc", action="store_true",
                        help="put the tables into docs/conformance.md (its 'Latest results' section)")
    args = parser.parse_args(argv)
    args.modules = [m.strip() for m in args.modules.split(",")] if args.modules else []
    for version in args.python + args.windows:
        if version not in VERSIONS:
            parser.error(f"unsupported version {version!r} (supported: {' '.join(VERSIONS)})")
    wanted = [("linux", v) for v in args.python] + [("windows", v) for v in args.windows]
    if not wanted:
        wanted = [("linux", v) for v in VERSIONS]

    def terminate(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    explanations = load_explanations(DOC)
    results: List[TargetResult] = []
    for system, version in wanted:
        try:
            target = linux_target(version) if system == "linux" else windows_target(version)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            print(f"=== {system} {version}: cannot run: {exc}", file=sys.stderr, flush=True)
            dummy = Target(system, version, "-", "-", Path("."), [], str)
            results.append(TargetResult(dummy, {}, 0.0, error=str(exc)))
            continue
        try:
            results.append(run_target(target, args, explanations))
        except KeyboardInterrupt:
            print(f"conformance: interrupted during {system} {version}", file=sys.stderr)
            return 130

    table = markdown(results)
    print("\n" + table)
    if args.markdown:
        Path(args.markdown).write_text(table, encoding="utf-8")
    if args.report:
        Path(args.report).write_text(json.dumps(json_report(results, explanations), indent=2) + "\n")
    if args.update_doc:
        update_doc(DOC, table)
    unexplained = [row for r in results for row in r.new_failures if not row.get("explained")]
    failed = [r.target.name for r in results if r.error]
    failed += [f"{r.target.name} {m} (stock run crashed)" for r in results for m in r.incomparable]
    if unexplained:
        print(f"conformance: {len(unexplained)} unexplained new failure(s); explain each in {DOC.relative_to(ROOT)} "
              "or fix it in loopcompat", file=sys.stderr)
    if failed:
        print(f"conformance: could not run: {', '.join(failed)}", file=sys.stderr)
    return 1 if unexplained or failed else 0


if __name__ == "__main__":
    sys.exit(main())
