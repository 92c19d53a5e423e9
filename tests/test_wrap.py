"""Wrapping unchanged applications: `python -m loopcompat app.py`, `loopcompat run -m`, and `doctor`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .conftest import IS_WINDOWS

ROOT = Path(__file__).resolve().parent.parent


def python(*args: str, cwd: Path, env_extra=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.update(env_extra or {})
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=str(cwd),
                          stdin=subprocess.DEVNULL, timeout=120)


def script(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


APP = """
    import asyncio, json, sys

    async def main():
        loop = asyncio.get_running_loop()
        plan = getattr(loop, "_loopcompat_plan", None)
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "print(6 * 7)",
                                                    stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        return {"name": __name__, "argv": sys.argv[1:], "needs": list(plan.needs) if plan else None,
                "child": out.decode().strip()}

    print(json.dumps(asyncio.run(main())))
    sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 0)
"""


def test_python_m_loopcompat_runs_a_script_as_main_with_its_argv_and_exit_code(tmp_path):
    app = script(tmp_path, "app.py", APP)
    result = python("-m", "loopcompat", str(app), "7", "--app-flag", cwd=tmp_path)
    assert result.returncode == 7, result.stderr
    data = json.loads(result.stdout)
    assert data == {"name": "__main__", "argv": ["7", "--app-flag"], "needs": [], "child": "42"}


def test_run_verb_takes_needs_and_the_script_directorys_pyproject(tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    (project / "pyproject.toml").write_text('[tool.loopcompat]\nneeds = ["udp"]\n')
    app = script(project, "app.py", APP)
    result = python("-m", "loopcompat", "run", "--needs", "subprocess", str(app), "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["needs"] == ["udp", "subprocess"] and data["argv"] == ["--help"]


def test_run_dash_m_runs_a_module(tmp_path):
    script(tmp_path, "mymod.py", APP)
    result = python("-m", "loopcompat", "run", "-m", "mymod", "3", cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    assert json.loads(result.stdout)["name"] == "__main__"
    via_main = python("-m", "loopcompat", "-m", "mymod", cwd=tmp_path)
    assert via_main.returncode == 0 and json.loads(via_main.stdout)["argv"] == []


def test_an_exception_reports_like_python_without_loopcompat_frames(tmp_path):
    app = script(tmp_path, "boom.py", "def f():\n    raise ValueError('boom')\nf()\n")
    ours = python("-m", "loopcompat", str(app), cwd=tmp_path)
    plain = python(str(app), cwd=tmp_path)
    assert ours.returncode == plain.returncode == 1
    assert ours.stderr.splitlines()[-1] == plain.stderr.splitlines()[-1] == "ValueError: boom"
    assert "loopcompat" not in ours.stderr and "runpy" not in ours.stderr
    assert ours.stderr.count("File ") == plain.stderr.count("File ")


@pytest.mark.skipif(IS_WINDOWS, reason="exit-by-signal status is a POSIX notion")
def test_keyboard_interrupt_exits_as_under_plain_python(tmp_path):
    app = script(tmp_path, "interrupted.py", "raise KeyboardInterrupt\n")
    ours = python("-m", "loopcompat", str(app), cwd=tmp_path)
    plain = python(str(app), cwd=tmp_path)
    assert ours.returncode == plain.returncode != 0
    assert ours.stderr.splitlines()[-1] == plain.stderr.splitlines()[-1] == "KeyboardInterrupt"


def test_sys_exit_with_a_message_and_missing_scripts(tmp_path):
    app = script(tmp_path, "msg.py", "import sys\nsys.exit('bye')\n")
    result = python("-m", "loopcompat", str(app), cwd=tmp_path)
    assert result.returncode == 1 and result.stderr.strip() == "bye"
    missing = python("-m", "loopcompat", "run", str(tmp_path / "nope.py"), cwd=tmp_path)
    assert missing.returncode == 2 and "no such file" in missing.stderr
    bad = python("-m", "loopcompat", "run", "--needs", "subproces", str(app), cwd=tmp_path)
    assert bad.returncode == 2 and "Did you mean 'subprocess'" in bad.stderr


def test_an_app_that_sets_its_own_policy_still_gets_loopcompat_loops(tmp_path):
    body = """
        import asyncio, json, sys
        policy = getattr(asyncio, "WindowsSelectorEventLoopPolicy", asyncio.DefaultEventLoopPolicy)()
        asyncio.set_event_loop_policy(policy)

        async def main():
            loop = asyncio.get_running_loop()
            plan = getattr(loop, "_loopcompat_plan", None)
            # On Windows this is the selector loop: the subprocess runs through threaded_subprocess.
            proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "print(6 * 7)",
                                                        stdout=asyncio.subprocess.PIPE)
            out, _ = await proc.communicate()
            return {"adopted": plan is not None, "needs": list(plan.needs) if plan else None,
                    "policy": type(asyncio.get_event_loop_policy()).__name__, "child": out.decode().strip()}

        print(json.dumps(asyncio.run(main())))
    """
    app = script(tmp_path, "own_policy.py", body)
    result = python("-m", "loopcompat", "run", "--needs", "subprocess", str(app), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["adopted"] is True and data["needs"] == ["subprocess"] and data["child"] == "42"
    assert data["policy"] in ("WindowsSelectorEventLoopPolicy", "_UnixDefaultEventLoopPolicy",
                              "WindowsProactorEventLoopPolicy")


def test_doctor_probes_every_feature_on_the_planned_loop(tmp_path):
    result = python("-m", "loopcompat", "doctor", "--json", cwd=tmp_path)
    data = json.loads(result.stdout)
    assert set(data["probes"]) == {"subprocess", "pipes", "add_reader", "signals", "unix_sockets", "udp",
                                   "char_devices"}
    assert data["disagreements"] == [], data["disagreements"]
    for feature, outcome in data["probes"].items():
        level = data["plan"]["features"][feature]["level"]
        if level == "unsupported":
            assert outcome["result"] in ("failed", "not probed"), (feature, outcome)
        else:
            assert outcome["result"] in ("ok", "not probed"), (feature, outcome)
    if not IS_WINDOWS:
        assert all(o["result"] == "ok" for o in data["probes"].values())
    assert result.returncode == 0
    text = python("-m", "loopcompat", "doctor", cwd=tmp_path)
    assert "Live probes on the planned loop" in text.stdout and "monotonic clock" in text.stdout
