"""`loopcompat check` on the sample projects in tests/projects: the matrix, the formats, the exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from loopcompat._cli import main
from loopcompat._errors import ConfigError
from loopcompat._targets import classifier_systems, known_pythons, old_releases, parse_target, pythons_allowed

PROJECTS = Path(__file__).resolve().parent / "projects"


def run(capsys, monkeypatch, folder: Path, *args: str):
    monkeypatch.chdir(folder)
    code = main(["check", *args])
    out, err = capsys.readouterr()
    return code, out, err


def line_of(path: Path, text: str) -> int:
    return next(number for number, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_unix_sockets_on_a_project_claiming_windows_fails_with_the_reason_and_the_pyproject_line(capsys, monkeypatch):
    project = PROJECTS / "ipc-service"
    code, out, _ = run(capsys, monkeypatch, project)
    assert code == 1
    rows = {line.split("  ")[0]: line for line in out.splitlines() if line.startswith(("Windows", "macOS", "Linux"))}
    # requires-python >=3.9 gives 3.9 up to the newest the knowledge base knows; one row per system
    newest = known_pythons()[-1]
    assert set(rows) == {f"Windows 10, CPython 3.9-{newest}", f"macOS 14, CPython 3.9-{newest}",
                         f"Linux 6.1, CPython 3.9-{newest}"}
    assert "UNSUPPORTED [1]" in rows[f"Windows 10, CPython 3.9-{newest}"]
    assert "UNSUPPORTED" not in rows[f"Linux 6.1, CPython 3.9-{newest}"]
    declared = line_of(project / "pyproject.toml", "needs = [")
    finding = (f"[1] unix_sockets is unsupported on Windows 10, CPython 3.9-{newest} "
               f"(declared at pyproject.toml:{declared})")
    assert finding in out
    assert "AF_UNIX" in out and "named pipes" in out  # the reason and the remedy from the knowledge base
    assert "FAILED" in out.splitlines()[-1]


def test_json_lists_every_planned_platform(capsys, monkeypatch):
    code, out, _ = run(capsys, monkeypatch, PROJECTS / "ipc-service", "--json")
    data = json.loads(out)
    assert code == 1 and data["exit_code"] == 1 and data["ok"] is False
    pythons = [v for v in known_pythons() if tuple(map(int, v.split("."))) >= (3, 9)]
    assert len(data["targets"]) == 3 * len(pythons)
    windows = [t for t in data["targets"] if t["system"] == "windows"]
    assert [t["python"] for t in windows] == pythons
    assert all(t["unmet"] == ["unix_sockets"] and t["loop"] == "proactor" for t in windows)
    assert windows[0]["features"]["unix_sockets"]["level"] == "unsupported"


def test_github_format_annotates_the_line_declaring_the_need(capsys, monkeypatch, tmp_path):
    project = PROJECTS / "ipc-service"
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")  # the default format under GitHub Actions
    monkeypatch.setenv("GITHUB_WORKSPACE", str(PROJECTS))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code, out, _ = run(capsys, monkeypatch, project)
    assert code == 1
    annotations = [line for line in out.splitlines() if line.startswith("::error ")]
    declared = line_of(project / "pyproject.toml", "needs = [")
    assert len(annotations) == 1
    assert annotations[0].startswith(f"::error file=ipc-service/pyproject.toml,line={declared},title=loopcompat%3A ")
    assert "unix_sockets is unsupported on Windows 10" in annotations[0]
    table = summary.read_text()
    assert "| target | loop | subprocess | unix_sockets |" in table and "**unsupported** [1]" in table


def test_every_need_met_everywhere_exits_0(capsys, monkeypatch):
    code, out, _ = run(capsys, monkeypatch, PROJECTS / "pipeline-tool")
    assert code == 0, out
    # OS Independent: all three systems; requires-python >=3.8,<3.13
    assert "Windows 10, CPython 3.8-3.12" in out and "Linux 6.1, CPython 3.8-3.12" in out
    windows = next(line for line in out.splitlines() if line.startswith("Windows"))
    assert "selector_thread" in windows  # add_reader on the proactor loop, through the fallback
    assert out.splitlines()[-1].startswith("OK")


def test_targets_key_and_per_system_needs(capsys, monkeypatch):
    code, out, _ = run(capsys, monkeypatch, PROJECTS / "tray-app")
    assert "targets from pyproject.toml:" in out
    rows = [line for line in out.splitlines() if line.startswith(("Windows", "macOS", "Linux"))]
    assert rows[0].startswith("Windows 10, CPython 3.11 ")
    assert rows[1].startswith("macOS 10.8, CPython 3.10-")  # no Python in the target: requires-python's
    mac = rows[1].split()
    assert "selector/select" in mac  # char_devices on macOS 10.8: SelectSelector (S13)
    assert rows[0].split()[-1] == "-"  # char_devices is declared for macOS only
    assert code == 0


def test_target_arguments_replace_the_projects_and_old_releases_come_from_the_knowledge_base(capsys, monkeypatch):
    code, out, _ = run(capsys, monkeypatch, PROJECTS / "ipc-service", "--target", "linux::3.12", "--target", "macos",
                       "--old-releases")
    assert code == 0, out
    labels = [line.split("  ")[0] for line in out.splitlines() if line.startswith(("macOS", "Linux"))]
    assert labels[0] == "Linux 6.1, CPython 3.12"
    assert [label.split(",")[0] for label in labels[1:]] == ["macOS 10.5", "macOS 10.8", "macOS 14"]
    assert old_releases("macos") == ["10.5", "10.8"] and old_releases("windows") == []


@pytest.mark.parametrize("target, message", [
    ("windoze:10", "Did you mean 'windows'"),
    ("windows:ten", "is not a version"),
    ("linux:6:3", "needs major.minor"),
    ("a:b:c:d", "is not system[:release[:python]]"),
])
def test_bad_targets_exit_2_with_a_message(capsys, monkeypatch, target, message):
    monkeypatch.chdir(PROJECTS / "ipc-service")
    assert main(["check", "--target", target]) == 2
    assert message in capsys.readouterr().err


def test_a_per_system_table_is_checked_against_its_system_on_any_machine(capsys, monkeypatch, tmp_path):
    shutil.copy(PROJECTS / "pipeline-tool" / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / "pyproject.toml", "a") as f:
        f.write('\n[tool.loopcompat.macos]\nselector = "epoll"\n')
    line = len((tmp_path / "pyproject.toml").read_text().splitlines())
    code, out, _ = run(capsys, monkeypatch, tmp_path)
    assert code == 2
    assert f"pyproject.toml:{line}: selector='epoll' is not available on macOS 14" in out
    assert out.splitlines()[-1].startswith("ERROR")
    # the same table passes unnoticed on Linux unless each table is planned for its own system
    assert main(["config"]) == 2
    assert f"pyproject.toml:{line}: selector='epoll'" in capsys.readouterr().err


def test_no_pyproject_and_no_target_is_bad_input(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert main(["check", str(tmp_path)]) == 2
    assert "--target" in capsys.readouterr().err


def test_requires_python_is_read_with_packaging_and_bounded_to_the_knowledge_base():
    known = known_pythons()
    assert known[0] == "3.7" and known[-1] == "3.16"  # one below the oldest fact, two past the newest
    assert pythons_allowed(">=3.8.1", "x")[0][0] == "3.8"  # a minor is in when any of its releases is
    assert pythons_allowed(">=3.9,!=3.10.*,<3.12", "x")[0] == ("3.9", "3.11")
    assert pythons_allowed(None, "x")[0] == known
    with pytest.raises(ConfigError, match="not a version specifier"):
        pythons_allowed(">=three", "pyproject.toml:4")
    with pytest.raises(ConfigError, match="allows none"):
        pythons_allowed("<3", "x")


def test_classifiers_map_to_systems():
    assert classifier_systems(["Operating System :: OS Independent"]) == {"windows": [], "macos": [], "linux": []}
    assert classifier_systems(["Operating System :: POSIX", "Operating System :: POSIX :: Linux"]) == {"linux": []}
    assert classifier_systems(["Operating System :: POSIX"]) == {"linux": [], "macos": []}
    assert classifier_systems(["Operating System :: Microsoft :: Windows :: Windows 11"]) == {"windows": ["11"]}
    assert classifier_systems(["Programming Language :: Python"]) == {}
    assert parse_target("darwin:10.8", "t") == ("macos", "10.8", None)


def test_the_documented_matrix_is_current(capsys, monkeypatch):
    code, out, _ = run(capsys, monkeypatch, PROJECTS / "ipc-service", "--format", "markdown")
    doc = (PROJECTS.parent.parent / "docs" / "check-and-scan.md").read_text(encoding="utf-8")
    block = doc.split("<!-- check ipc-service: begin -->\n")[1].split("<!-- check ipc-service: end -->")[0]
    assert code == 1
    assert block == out, "docs/check-and-scan.md: paste `loopcompat check --format markdown` run in that project"


def test_a_setting_that_cannot_apply_to_a_target_is_one_error_row_with_its_line(capsys, monkeypatch, tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\nrequires-python = ">=3.11"\n'
        'classifiers = ["Operating System :: Microsoft :: Windows", "Operating System :: POSIX :: Linux"]\n'
        '[tool.loopcompat]\nneeds = ["add_reader"]\nloop = "proactor"\n')
    code, out, _ = run(capsys, monkeypatch, tmp_path, "--format", "github")
    assert code == 2
    rows = [line for line in out.splitlines() if line.startswith(("Windows", "Linux"))]
    assert len(rows) == 2 and "selector_thread" in rows[0] and "ERROR [1]" in rows[1]  # all Pythons in one row
    assert "[1] cannot plan Linux 6.1, CPython 3.11-" in out
    assert "pyproject.toml:7: loop='proactor' is not available on Linux 6.1; available: selector" in out
    assert [line for line in out.splitlines() if line.startswith("::error file=pyproject.toml,line=7,")]
