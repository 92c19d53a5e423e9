#!/usr/bin/env python3
"""Run the whole test suite: every Linux CPython 3.8-3.13, then real Windows CPython under Wine.

    python3 tools/run.py                 # everything (sets up what is missing)
    python3 tools/run.py --linux 3.12    # only these Linux interpreters, no Windows stage
    python3 tools/run.py --windows 3.13  # only these Windows versions, no Linux stage
    python3 tools/run.py -- -k planner   # extra pytest arguments

Each Linux interpreter gets a cached virtual environment with the test
dependencies; the checkout itself is tested (tests/ puts it first on
sys.path), and the wheel is built and its contents checked once. The
Windows stage is tools/winbed.py. With --ci (or CI=true), an interpreter or
Wine that is missing fails the run instead of being skipped.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
VERSIONS = ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13")
TEST_DEPS = ("pytest>=7", "pytest-asyncio", "anyio", "uvicorn", "tornado", "pyzmq", "hypothesis", "jsonschema", "packaging", "platformdirs", "tomli; python_version < '3.11'",
             "uvloop; sys_platform != 'win32'")
CACHE = Path(os.environ.get("LOOPCOMPAT_VENVS", Path.home() / ".cache" / "loopcompat" / "venvs"))
SUMMARY = re.compile(r"^=*\s*(\d+ \w+.*?) in [\d.]+s\b")


def find_interpreter(version: str) -> Optional[str]:
    """A CPython of that minor version: pyenv's first, then python3.X on PATH."""
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    for candidate in sorted(glob.glob(f"{pyenv_root}/versions/{version}.*/bin/python{version}"), reverse=True):
        if re.search(rf"/versions/{re.escape(version)}\.\d+/", candidate):
            return candidate
    return shutil.which(f"python{version}")


def ensure_venv(version: str, python: str) -> Path:
    """A cached venv with the test dependencies; rebuilt when the dependency list changes."""
    venv = CACHE / f"py{version}"
    stamp = venv / ".loopcompat-deps"
    want = json.dumps([python, *TEST_DEPS])
    if stamp.exists() and stamp.read_text() == want:
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, *TEST_DEPS], check=True)
    stamp.write_text(want)
    return venv


def parse_counts(output: str) -> Dict[str, int]:
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    for line in reversed(output.splitlines()):
        match = SUMMARY.search(line)
        if match:
            for part in match.group(1).split(","):
                number, _, word = part.strip().partition(" ")
                word = {"error": "errors", "xfailed": "skipped"}.get(word, word)
                if number.isdigit() and word in counts:
                    counts[word] += int(number)
            break
    return counts


def run_linux(version: str, pytest_args: Sequence[str], ci: bool) -> Dict[str, object]:
    started = time.monotonic()
    python = find_interpreter(version)
    if python is None:
        return {"stage": f"linux {version}", "status": "missing" if ci else "skipped",
                "detail": f"no CPython {version} found (pyenv or python{version} on PATH)"}
    venv = ensure_venv(version, python)
    command = [str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *pytest_args]
    print(f"\n=== Linux CPython {version}: {' '.join(command[2:])}", flush=True)
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run(command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=env)
    sys.stdout.write(proc.stdout)
    counts = parse_counts(proc.stdout)
    ok = proc.returncode == 0 and counts["passed"] > 0
    return {"stage": f"linux {version}", "status": "ok" if ok else "failed", **counts,
            "seconds": round(time.monotonic() - started, 1)}


def check_wheel() -> Dict[str, object]:
    """Build the wheel once and check it carries the package, py.typed and the right metadata."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as out:
        # Build from a copy: setuptools writes loopcompat.egg-info into the source tree, and an
        # egg-info on sys.path would register the pytest plugin's entry point in later test runs.
        source = Path(out) / "src"
        shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", "*.egg-info", "build", "dist",
                                                                    "__pycache__", ".venv*"))
        proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", out, str(source)],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True)
        wheels = glob.glob(f"{out}/loopcompat-*.whl")
        problems = [] if proc.returncode == 0 and wheels else [proc.stderr.strip()[-2000:] or "no wheel built"]
        if wheels:
            with zipfile.ZipFile(wheels[0]) as wheel:
                names = set(wheel.namelist())
                metadata = next(wheel.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
            for needed in ("loopcompat/__init__.py", "loopcompat/py.typed", "loopcompat/_fallbacks/__init__.py"):
                if needed not in names:
                    problems.append(f"wheel lacks {needed}")
            if any(n.startswith(("tests/", "tools/")) for n in names):
                problems.append("wheel ships tests/ or tools/")
            for line in ("Requires-Python: >=3.8", "Requires-Dist: packaging", "Requires-Dist: platformdirs",
                         'Requires-Dist: tomli>=1.1; python_version < "3.11"'):
                if line not in metadata:
                    problems.append(f"wheel metadata lacks {line!r}")
    for problem in problems:
        print(f"wheel: {problem}")
    return {"stage": "wheel", "status": "failed" if problems else "ok", "passed": 0 if problems else 1,
            "failed": len(problems), "seconds": round(time.monotonic() - started, 1)}


def run_windows(versions: Sequence[str], pytest_args: Sequence[str], ci: bool) -> List[Dict[str, object]]:
    report = Path(tempfile.mkstemp(suffix=".json")[1])
    # Two versions at a time: Wine runs are partly waiting (process starts, timeouts), so this
    # nearly halves the stage on 2 cores.
    command = [sys.executable, str(ROOT / "tools" / "winbed.py"), "test", *versions, "--jobs", "2",
               "--report", str(report)]
    if pytest_args:
        command += ["--", *pytest_args]
    print(f"\n=== Windows stage: {' '.join(command[1:])}", flush=True)
    proc = subprocess.run(command, cwd=ROOT, stdin=subprocess.DEVNULL)
    try:
        rows = json.loads(report.read_text() or "[]")
    except (OSError, ValueError):
        rows = []
    finally:
        report.unlink(missing_ok=True)
    if proc.returncode == 3 and not ci:  # Wine is not installed
        return [{"stage": "windows", "status": "skipped", "detail": "Wine is not installed (apt-get install wine64)"}]
    results = []
    for row in rows:
        status = "ok" if row.get("ok") else "failed"
        results.append({"stage": f"windows {row.get('version')}", "status": status,
                        **{k: row.get(k, 0) for k in ("passed", "failed", "errors", "skipped")},
                        "seconds": row.get("seconds")})
    if proc.returncode != 0 and all(r["status"] == "ok" for r in results):
        results.append({"stage": "windows", "status": "failed", "detail": f"winbed exited {proc.returncode}"})
    return results


def run_conformance(versions: Sequence[str], ci: bool) -> List[Dict[str, object]]:
    """The conformance differential (tools/conformance.py): CPython's test_asyncio, stock and with
    loopcompat, on these Linux interpreters; fails on a new failure docs/conformance.md does not explain."""
    missing = [v for v in versions if find_interpreter(v) is None]
    rows: List[Dict[str, object]] = [{"stage": f"conformance {v}", "status": "missing" if ci else "skipped",
                                      "detail": f"no CPython {v} found"} for v in missing]
    versions = [v for v in versions if v not in missing]
    if not versions:
        return rows
    report = Path(tempfile.mkstemp(suffix=".json")[1])
    command = [sys.executable, str(ROOT / "tools" / "conformance.py"), "--report", str(report)]
    for version in versions:
        command += ["--python", version]
    print(f"\n=== Conformance differential: {' '.join(command[1:])}", flush=True)
    proc = subprocess.run(command, cwd=ROOT, stdin=subprocess.DEVNULL)
    try:
        targets = json.loads(report.read_text() or "{}").get("targets", [])
    except (OSError, ValueError):
        targets = []
    finally:
        report.unlink(missing_ok=True)
    for t in targets:
        new = t.get("new_failures", [])
        unexplained = [row for row in new if not row.get("explained")]
        ok = not unexplained and "error" not in t
        stock = t.get("stock", {})
        rows.append({"stage": f"conformance {t['version']}", "status": "ok" if ok else "failed",
                     "passed": t.get("loopcompat", {}).get("passed", 0), "failed": len(unexplained),
                     "seconds": round(t.get("seconds", 0) + t.get("rerun_seconds", 0), 1),
                     "detail": t.get("error") or f"stock passed {stock.get('passed', 0)}; "
                               f"new failures {len(new)} ({len(new) - len(unexplained)} explained)"})
    if proc.returncode != 0 and all(row["status"] == "ok" for row in rows):
        rows.append({"stage": "conformance", "status": "failed", "detail": f"conformance.py exited {proc.returncode}"})
    return rows


def install_prerequisites(need_wine: bool) -> None:
    """What a fresh machine lacks: Wine (Debian's wine64) for the Windows stage."""
    if need_wine and not any(shutil.which(name) for name in ("wine", "wine64", "wine-stable")):
        if not shutil.which("apt-get"):
            print("tools/run.py: Wine is missing and apt-get is not available; install Wine by hand", file=sys.stderr)
            return
        sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        print("=== installing wine64 (apt-get)", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run([*sudo, "apt-get", "update", "-qq"], check=False, env=env, stdin=subprocess.DEVNULL)
        subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "wine64"], check=False, env=env,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--linux", nargs="*", metavar="X.Y", help="Linux interpreters (default: all; none with --windows)")
    parser.add_argument("--windows", nargs="*", metavar="X.Y", help="Windows versions (default: all; none with --linux)")
    parser.add_argument("--ci", action="store_true", default=os.environ.get("CI", "").lower() in ("1", "true"),
                        help="missing interpreters or Wine fail the run (default when CI=true)")
    parser.add_argument("--install", action="store_true", help="install what is missing first (Wine, via apt-get)")
    parser.add_argument("--conformance", metavar="X.Y,X.Y",
                        help="also run the conformance differential (tools/conformance.py) on these Linux interpreters")
    parser.add_argument("pytest_args", nargs="*", help="after --: arguments for pytest")
    args = parser.parse_args(argv)
    only_linux, only_windows = args.linux is not None, args.windows is not None
    linux = (args.linux or VERSIONS) if (only_linux or not only_windows) else ()
    windows = (args.windows or VERSIONS) if (only_windows or not only_linux) else ()

    if args.install:
        install_prerequisites(need_wine=bool(windows))
    results: List[Dict[str, object]] = []
    for version in linux:
        results.append(run_linux(version, args.pytest_args, args.ci))
    if linux and not args.pytest_args:
        results.append(check_wheel())
    if args.conformance:
        results.extend(run_conformance([v.strip() for v in args.conformance.split(",") if v.strip()], args.ci))
    if windows:
        results.extend(run_windows(windows, args.pytest_args, args.ci))

    print("\n=== Summary")
    print(f"{'stage':<16}{'status':<9}{'passed':>7}{'failed':>7}{'errors':>7}{'skipped':>8}{'seconds':>9}")
    for row in results:
        print(f"{row['stage']:<16}{row['status']:<9}{row.get('passed', ''):>7}{row.get('failed', ''):>7}"
              f"{row.get('errors', ''):>7}{row.get('skipped', ''):>8}{row.get('seconds', ''):>9}  {row.get('detail', '')}")
    bad = [row for row in results if row["status"] not in ("ok", "skipped")]
    total_passed = sum(int(row.get("passed", 0) or 0) for row in results)
    total_failed = sum(int(row.get("failed", 0) or 0) + int(row.get("errors", 0) or 0) for row in results)
    print(f"{total_passed} passed, {total_failed} failed")
    return 1 if bad or not results else 0


if __name__ == "__main__":
    sys.exit(main())
