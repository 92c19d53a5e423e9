"""The opt-in start-up hook, in a throwaway Python environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import IS_WINDOWS

ROOT = Path(__file__).resolve().parent.parent


def _throwaway_environment(folder: Path) -> Path:
    """A virtual environment; where there is no venv module (the Windows test bed's embeddable
    Python), a copy of the interpreter with an empty site-packages, which is what a venv gives."""
    try:
        import venv  # noqa: F401
    except ImportError:
        if not (IS_WINDOWS and list(Path(sys.base_prefix).glob("python3*._pth"))):
            raise
        # copyfile: shutil.copy2 calls CopyFile2 on 3.12+, which Wine 8 does not implement
        shutil.copytree(sys.base_prefix, str(folder), ignore=shutil.ignore_patterns("site-packages", "__pycache__"),
                        copy_function=shutil.copyfile)
        (folder / "Lib" / "site-packages").mkdir(parents=True)
        return folder / "python.exe"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    return folder / ("Scripts/python.exe" if IS_WINDOWS else "bin/python")


@pytest.fixture
def venv(tmp_path):
    python = _throwaway_environment(tmp_path / "venv")
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # make the checkout (and the runtime dependencies of this interpreter) importable in it
    deps = [p for p in sys.path if p.endswith("site-packages")]
    (Path(site) / "checkout.pth").write_text("\n".join([str(ROOT), *deps]) + "\n")
    return python, site


def _run(python, code, **env):
    full = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LOOPCOMPAT_AUTO")}
    full.update(env)
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=full,
                          stdin=subprocess.DEVNULL, timeout=60)


PROBE = ("import asyncio, sys\n"
         "loop = asyncio.new_event_loop()\n"
         "print(getattr(loop, '_loopcompat_plan', None) is not None, 'loopcompat' in sys.modules)\n"
         "loop.close()\n")


def test_hook_installs_only_with_the_variable_and_is_removable(venv, tmp_path):
    python, site = venv
    cli = [str(python), "-m", "loopcompat", "hook"]
    assert subprocess.run([*cli, "status"], capture_output=True, text=True).returncode == 1
    installed = subprocess.run([*cli, "install"], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    assert (Path(site) / "loopcompat-auto.pth").is_file()
    assert _run(python, PROBE).stdout.split() == ["False", "False"]  # without the variable: nothing imported
    assert _run(python, PROBE, LOOPCOMPAT_AUTO="1").stdout.split() == ["True", "True"]
    (tmp_path / "pyproject.toml").write_text('[tool.loopcompat]\nneeds = ["subproces"]\n')
    broken = subprocess.run([str(python), "-c", PROBE], capture_output=True, text=True, cwd=str(tmp_path),
                            env={**os.environ, "LOOPCOMPAT_AUTO": "1"}, stdin=subprocess.DEVNULL, timeout=60)
    assert broken.returncode == 0 and broken.stdout.split() == ["False", "True"]
    assert "not installed" in broken.stderr and "Did you mean 'subprocess'" in broken.stderr
    removed = subprocess.run([*cli, "remove"], capture_output=True, text=True)
    assert removed.returncode == 0 and not (Path(site) / "loopcompat-auto.pth").exists()
    assert _run(python, PROBE, LOOPCOMPAT_AUTO="1").stdout.split() == ["False", "False"]
