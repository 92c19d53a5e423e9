"""The command line, run for real in a subprocess: explain and matrix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loopcompat._matrix import matrix_markdown

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "loopcompat", *args], capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL, timeout=60, cwd=str(ROOT))


def test_explain_json_is_plan_to_dict_for_any_platform():
    result = cli("explain", "--system", "windows", "--release", "10", "--python", "3.7",
                 "--needs", "subprocess,add_reader", "--json")
    data = json.loads(result.stdout)
    assert set(data) >= {"loop", "selector", "fallbacks", "features", "unmet", "warnings", "platform"}
    assert data["platform"] == {"system": "windows", "release": "10", "python": "3.7", "implementation": "cpython"}
    assert data["loop"] == "proactor" and data["selector"] is None
    assert data["features"]["subprocess"]["level"] == "native"
    # selector_thread is planned; until it ships, add_reader is honestly unmet and the exit code says so
    assert result.returncode == (1 if data["unmet"] else 0)


def test_explain_text_names_loop_reasons_and_remedies():
    result = cli("explain", "--system", "macos", "--release", "10.8", "--python", "3.11", "--needs", "char_devices")
    assert result.returncode == 0, result.stderr
    assert "SelectorEventLoop with SelectSelector" in result.stdout
    assert "macOS 10.8, CPython 3.11" in result.stdout
    unmet = cli("explain", "--system", "windows", "--needs", "unix_sockets")
    assert unmet.returncode == 1
    assert "AF_UNIX" in unmet.stdout and "named pipes" in unmet.stdout


def test_explain_defaults_to_this_machine():
    import loopcompat

    data = json.loads(cli("explain", "--json").stdout)
    assert data["platform"] == loopcompat.detect().to_dict()


@pytest.mark.parametrize(
    "args, message",
    [
        (["explain", "--needs", "subproces"], "Did you mean 'subprocess'"),
        (["explain", "--loop", "proactr"], "Did you mean 'proactor'"),
        (["explain", "--python", "three"], "is not a version"),
        (["explain", "--max-sockets", "-5"], "out of range"),
        (["explain", "--max-sockets", "many"], "invalid int value"),
        (["nonsense"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_2_with_a_message_and_no_traceback(args, message):
    result = cli(*args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_no_verb_prints_help_and_exits_2():
    result = cli()
    assert result.returncode == 2 and "explain" in result.stdout and "Exit codes" in result.stdout


def test_matrix_json_and_markdown_hold_every_fact():
    rows = json.loads(cli("matrix", "--format", "json").stdout)
    facts = {row["fact"] for row in rows}
    assert {f"S{i}" for i in range(1, 17)} <= facts
    text = cli("matrix").stdout
    assert all(f"| S{i} |" in text for i in range(1, 17))


def test_checked_in_matrix_is_up_to_date():
    doc = (ROOT / "docs" / "matrix.md").read_text(encoding="utf-8")
    assert matrix_markdown() == doc, "docs/matrix.md is stale: regenerate it with `python -m loopcompat matrix`"


def test_config_verb_shows_values_and_their_origins(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.loopcompat]\nneeds = ["subprocess"]\nmax-sockets = 2000\n')
    env = dict(os.environ, PYTHONPATH=str(ROOT), LOOPCOMPAT_NEEDS="udp")
    result = subprocess.run([sys.executable, "-m", "loopcompat", "config", "--json"], capture_output=True,
                            text=True, env=env, cwd=str(tmp_path), stdin=subprocess.DEVNULL, timeout=60)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    origins = {item["need"]: item["from"] for item in data["needs"]}
    assert origins["subprocess"].endswith("pyproject.toml:2") and origins["udp"] == "environment LOOPCOMPAT_NEEDS"
    assert data["options"]["max_sockets"] == {"value": 2000, "from": str(tmp_path / "pyproject.toml") + ":3"}
    assert data["options"]["loop"]["from"] == "default"
    (tmp_path / "pyproject.toml").write_text('[tool.loopcompat]\nneeds = ["subproces"]\n')
    bad = subprocess.run([sys.executable, "-m", "loopcompat", "config"], capture_output=True, text=True, env=env,
                         cwd=str(tmp_path), stdin=subprocess.DEVNULL, timeout=60)
    assert bad.returncode == 2 and "Did you mean 'subprocess'" in bad.stderr and "Traceback" not in bad.stderr
