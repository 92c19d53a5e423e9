"""The command line, run for real in a subprocess: explain and matrix."""

from __future__ import annotations

import json
import os
import re
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


# --- the project's configuration in explain and config ------------------------------------------------

PROJECT = """\
[project]
name = "demo"

[tool.loopcompat]
needs = ["subprocess", "signals", "add_reader"]

[tool.loopcompat.windows]
loop = "proactor"
"""


def in_process(capsys, *args: str):
    from loopcompat._cli import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_explain_applies_the_projects_configuration_for_the_system_asked_about(capsys, monkeypatch, tmp_path):
    (tmp_path / "pyproject.toml").write_text(PROJECT)
    monkeypatch.chdir(tmp_path)
    code, out, _ = in_process(capsys, "explain", "--system", "windows", "--release", "10", "--python", "3.8")
    assert code == 0
    assert "Configuration for windows (pyproject.toml):" in out
    assert re.search(r"^  needs +subprocess, signals, add_reader +pyproject\.toml:5$", out, re.M)
    assert re.search(r"^  loop +proactor +pyproject\.toml:8$", out, re.M)  # the [tool.loopcompat.windows] table
    assert "Needs:     subprocess, signals, add_reader" in out and "Loop:      ProactorEventLoop" in out
    assert "Fallbacks: selector_thread, signal_bridge" in out
    code, out, _ = in_process(capsys, "explain", "--system", "linux", "--json")
    data = json.loads(out)
    assert data["needs"] == ["subprocess", "signals", "add_reader"] and data["loop"] == "selector"
    assert data["sources"]["needs"]["signals"].endswith("pyproject.toml:5")
    assert "loop" not in data["sources"]["options"]  # the windows table does not apply to linux
    code, out, _ = in_process(capsys, "explain", "--system", "windows", "--no-config")
    assert "Needs:     (none declared)" in out and "not read (--no-config)" in out


def test_an_unknown_system_is_an_error_with_a_did_you_mean(capsys):
    from loopcompat import _knowledge as kb
    from loopcompat._project import known_systems

    code, out, err = in_process(capsys, "explain", "--system", "windoze")
    assert code == 2 and out == ""  # no plan for "windoze 0"
    assert "unknown system 'windoze'" in err and "Did you mean 'windows'?" in err
    every = {name for rule in kb.RULES for name in rule.systems + rule.except_systems}
    assert set(known_systems()) == every | {"windows", "macos", "linux"}
    assert all(name in err for name in known_systems())
    code, _, err = in_process(capsys, "config", "--system", "macoss")
    assert code == 2 and "Did you mean 'macos'?" in err
    assert in_process(capsys, "explain", "--system", "win32", "--json")[0] in (0, 1)  # aliases are fine


def test_config_takes_a_platform_and_shows_its_per_system_values(capsys, monkeypatch, tmp_path):
    (tmp_path / "pyproject.toml").write_text(PROJECT)
    monkeypatch.chdir(tmp_path)
    code, out, _ = in_process(capsys, "config", "--system", "windows", "--release", "7", "--python", "3.8")
    assert code == 0
    assert "Platform:          Windows 7, CPython 3.8" in out
    assert re.search(r"^  loop +proactor +pyproject\.toml:8$", out, re.M)
    assert "Loop on Windows 7, CPython 3.8: ProactorEventLoop" in out
    code, out, _ = in_process(capsys, "config", "--system", "linux")
    assert re.search(r"^  loop +auto +default$", out, re.M)


def test_config_names_the_file_actually_read_when_loopcompat_config_is_set(capsys, monkeypatch, tmp_path):
    (tmp_path / "pyproject.toml").write_text(PROJECT)
    other = tmp_path / "other.toml"
    other.write_text('needs = ["udp"]\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOOPCOMPAT_CONFIG", str(other))
    code, out, _ = in_process(capsys, "config")
    assert code == 0
    assert f"Project config:    {other} (from LOOPCOMPAT_CONFIG; pyproject.toml files are not read)" in out
    assert re.search(r"^  udp +other\.toml:1$", out, re.M) and "subprocess" not in out
    data = json.loads(in_process(capsys, "config", "--json")[1])
    assert data["files"]["config"] == str(other) and data["files"]["config_from"] == "LOOPCOMPAT_CONFIG"


def test_human_output_has_no_python_reprs(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    _, out, _ = in_process(capsys, "config")
    assert not re.search(r"\bNone\b|\('|\['|'error'|\bTrue\b", out), out
    assert re.search(r"^  fallbacks +all +default$", out, re.M) and re.search(r"^  max_sockets +not set", out, re.M)


def test_deprecation_notes_only_where_they_concern_the_application(capsys):
    base = ("explain", "--system", "linux", "--release", "6.1", "--python", "3.12", "--no-config")
    _, out, _ = in_process(capsys, *base)
    assert "(S16)" not in out  # child watchers concern applications that start child processes
    _, out, _ = in_process(capsys, *base, "--needs", "subprocess")
    assert "Warning:   Python 3.12+: child watchers deprecated" in out
    _, out, _ = in_process(capsys, *base, "--json")
    assert any("(S16)" in w for w in json.loads(out)["warnings"])  # --json keeps every warning
    _, out, _ = in_process(capsys, "explain", "--system", "linux", "--python", "3.14", "--no-config")
    assert "(S15)" in out  # event loop policies concern every asyncio application on 3.14+


def test_a_bad_flag_prints_its_verbs_usage(capsys):
    from loopcompat._cli import main

    for verb in ("explain", "check", "scan", "config", "doctor"):
        with pytest.raises(SystemExit) as exit_info:
            main([verb, "--bogus"])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2
        assert err.startswith(f"usage: loopcompat {verb} ") and "unrecognized arguments: --bogus" in err


def test_version(capsys):
    import loopcompat
    from loopcompat._cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out == f"loopcompat {loopcompat.__version__}\n"
    result = cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"loopcompat {loopcompat.__version__}"


def test_errors_print_and_pickle_under_their_public_names():
    import pickle

    import loopcompat

    for cls in (loopcompat.LoopCompatError, loopcompat.UnsupportedError, loopcompat.ConfigError):
        assert f"{cls.__module__}.{cls.__qualname__}" == f"loopcompat.{cls.__name__}"
        copy = pickle.loads(pickle.dumps(cls("message")))
        assert type(copy) is cls and str(copy) == "message"
    code = ("import loopcompat; loopcompat.plan(['unix_sockets'], "
            "platform=loopcompat.Platform('windows', '10', '3.12'))")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert any(line.startswith("loopcompat.UnsupportedError: ") for line in result.stderr.splitlines()), result.stderr
    assert "_errors" not in result.stderr


def test_doctor_ends_without_a_traceback(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-m", "loopcompat", "doctor"], capture_output=True, text=True, env=env,
                            cwd=str(tmp_path), stdin=subprocess.DEVNULL, timeout=120)
    # Before, the unix-socket probe left the accepted transport open and CPython 3.13.0 printed
    # "Exception ignored in: <function _SelectorTransport.__del__ ...>" after the report.
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr
    configuration = result.stdout.split("== Configuration")[1].split("== Plan")[0]
    assert not re.search(r"\bNone\b|\('|'error'", configuration), configuration
    if sys.platform != "win32":
        assert result.returncode == 0 and "S10" not in result.stdout  # the Windows clock note, on Windows only
