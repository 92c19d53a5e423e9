"""`loopcompat run --record`: the needs an application uses in a real run, observed on its real loops."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from loopcompat._project import parse_toml
from loopcompat._record import Recorder
from loopcompat._vocab import NEEDS

from .conftest import posix_only

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tests" / "projects" / "record"
# copytree copies with copy2 by default, which calls CopyFile2 on Windows 3.12+: Wine 8 lacks it


def run_recorded(project: Path, *extra: str):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    # --needs signals: on Windows add_signal_handler works through the signal_bridge fallback only
    command = [sys.executable, "-m", "loopcompat", "run", "--record", *extra, "--needs", "signals", "app.py"]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=str(project),
                          stdin=subprocess.DEVNULL, timeout=120)


def reported_needs(stderr: str):
    return {line for line in stderr.splitlines() if line in NEEDS}


def test_a_subprocess_and_a_signal_handler_are_reported_as_exactly_those_needs(tmp_path):
    project = tmp_path / "record"
    shutil.copytree(SAMPLE, project, copy_function=shutil.copyfile)
    result = run_recorded(project)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "42"  # the application ran as usual
    # The child's stdout pipe is connected with connect_read_pipe inside asyncio: that is
    # part of `subprocess`, not a use of `pipes`.
    assert reported_needs(result.stderr) == {"subprocess", "signals"}, result.stderr
    assert re.search(r"^  app\.py:9 +loop\.add_signal_handler\(\) called$", result.stderr, re.M)
    # the application's line, not the line in asyncio that called loop.subprocess_exec
    assert re.search(r"^  app\.py:10 +loop\.subprocess_exec\(\) called$", result.stderr, re.M)
    assert 'needs = ["subprocess", "signals"]' in result.stderr


def test_write_adds_the_observed_needs(tmp_path):
    project = tmp_path / "record"
    shutil.copytree(SAMPLE, project, copy_function=shutil.copyfile)
    before = (project / "pyproject.toml").read_text()
    written = run_recorded(project, "--write")
    assert written.returncode == 0, written.stderr
    after = (project / "pyproject.toml").read_text()
    assert after.startswith(before)  # appended: the existing lines and comment are untouched
    assert parse_toml(after)["tool"]["loopcompat"]["needs"] == ["subprocess", "signals"]
    again = run_recorded(project)
    assert "nothing missing" in again.stderr


def test_the_recorder_observes_loops_created_while_it_runs_and_only_those():
    recorder = Recorder()
    before = asyncio.new_event_loop()
    recorder.start()
    try:
        loop = asyncio.new_event_loop()
        left, right = socket.socketpair()
        try:
            if sys.platform != "win32":  # add_reader on the Windows proactor loop is unsupported
                loop.add_reader(left, print)
                loop.remove_reader(left)
                here = sys._getframe().f_lineno - 2
                assert [(e.need, Path(e.path).name, e.line) for e in recorder.evidence] == [
                    ("add_reader", "test_record.py", here), ("add_reader", "test_record.py", here + 1)]
            loop.run_until_complete(loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                                   local_addr=("127.0.0.1", 0)))[0].close()
        finally:
            left.close()
            right.close()
            loop.close()
    finally:
        recorder.stop()
    before.close()
    assert "udp" in {e.need for e in recorder.evidence}
    after = asyncio.new_event_loop()
    assert "add_reader" not in vars(after) and "add_reader" not in vars(before)  # stop() took the layer off
    after.close()


@posix_only
def test_a_reader_on_a_terminal_is_char_devices():
    import pty

    recorder = Recorder()
    recorder.start()
    master, slave = pty.openpty()
    loop = asyncio.new_event_loop()
    try:
        loop.add_reader(master, print)
        loop.remove_reader(master)
    finally:
        loop.close()
        os.close(master)
        os.close(slave)
        recorder.stop()
    assert {e.need for e in recorder.evidence} == {"add_reader", "char_devices"}


@pytest.mark.parametrize("args, message", [(["--write"], "--write goes with --record")])
def test_write_without_record_is_refused(args, message, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-m", "loopcompat", "run", *args, "app.py"], capture_output=True,
                            text=True, env=env, cwd=str(tmp_path), stdin=subprocess.DEVNULL, timeout=60)
    assert result.returncode == 2 and message in result.stderr
