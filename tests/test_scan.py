"""`loopcompat scan`: each detector on the sample apps in tests/projects, the library table, and --write."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from loopcompat._cli import main
from loopcompat._errors import ConfigError
from loopcompat._libraries import LIBRARIES
from loopcompat._project import parse_toml
from loopcompat._scan import scan_file, scan_paths
from loopcompat._toml_edit import verified_edit
from loopcompat._vocab import NEEDS

PROJECTS = Path(__file__).resolve().parent / "projects"
APPS = PROJECTS / "apps"

EXPECTED = {
    "tcp_echo.py": set(),  # a plain asyncio TCP app: no false positive
    "subprocess_app.py": {"subprocess"},
    "signals_app.py": {"signals"},
    "reader_app.py": {"add_reader"},
    "unix_app.py": {"unix_sockets"},
    "udp_app.py": {"udp"},
    "terminal_app.py": {"pipes", "add_reader", "char_devices"},
    "many_sockets_app.py": {"max_sockets"},
    "libraries/zmq_app.py": {"add_reader"},
    "libraries/zmqstream_app.py": {"add_reader"},
    "libraries/tornado_app.py": {"add_reader"},
    "libraries/tornado_template_only.py": set(),
    "libraries/psycopg_app.py": {"add_reader"},
    "libraries/psycopg_sync_app.py": set(),
    "libraries/sqlalchemy_app.py": {"add_reader"},
    "libraries/sqlalchemy_asyncpg_app.py": set(),
    "libraries/aiodns_app.py": {"add_reader"},
    "libraries/pycares_app.py": {"add_reader"},
    "libraries/aiohttp_app.py": {"add_reader", "signals", "unix_sockets"},
    "libraries/anyio_app.py": {"subprocess", "signals", "unix_sockets", "add_reader", "udp"},
    "libraries/curl_cffi_app.py": {"add_reader"},
    "libraries/serial_app.py": {"char_devices"},
}


def test_every_sample_app_is_listed():
    assert {str(p.relative_to(APPS)).replace("\\", "/") for p in APPS.rglob("*.py")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_detector_finds_exactly_its_needs(name):
    evidence, problem = scan_file(str(APPS / name))
    assert problem is None
    assert {e.need for e in evidence} == EXPECTED[name]
    source = (APPS / name).read_text().splitlines()
    for item in evidence:  # every piece of evidence points at a real line of the file
        assert 1 <= item.line <= len(source) and item.path.endswith(name.split("/")[-1])


def test_evidence_lines_and_what_was_seen():
    evidence, _ = scan_file(str(APPS / "terminal_app.py"))
    seen = {(e.need, e.line) for e in evidence}
    source = (APPS / "terminal_app.py").read_text().splitlines()
    pipe_line = next(n for n, line in enumerate(source, 1) if "connect_read_pipe" in line)
    reader_line = next(n for n, line in enumerate(source, 1) if "add_reader" in line)
    assert {("pipes", pipe_line), ("char_devices", pipe_line), ("add_reader", reader_line),
            ("char_devices", reader_line)} == seen
    sockets, _ = scan_file(str(APPS / "many_sockets_app.py"))
    assert sorted(e.value for e in sockets) == [1000, 2048, 10000]  # backlog=100 elsewhere is below every limit


def test_every_library_row_is_exercised_by_a_sample_and_cites_its_source():
    evidence, problems, count, _ = scan_paths([str(APPS / "libraries")])
    assert not problems and count == len([n for n in EXPECTED if n.startswith("libraries/")])
    seen = {e.what.split(":")[0] for e in evidence}
    assert {library.name for library in LIBRARIES} == seen
    for library in LIBRARIES:
        assert set(library.needs) <= set(NEEDS) and library.reason and "/" in library.source.split()[0]


def test_an_unparsable_file_is_reported_and_skipped(tmp_path):
    (tmp_path / "broken.py").write_text("def f(:\n")
    (tmp_path / "ok.py").write_text("import asyncio\nasyncio.create_subprocess_exec('x')\n")
    evidence, problems, count, _ = scan_paths([str(tmp_path)])
    assert count == 2 and [e.need for e in evidence] == ["subprocess"]
    assert len(problems) == 1 and "broken.py:1" in problems[0]


def test_test_folders_are_skipped_unless_asked(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_it.py").write_text("loop.add_signal_handler(2, print)\n")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "lib.py").write_text("loop.add_reader(0, print)\n")
    assert scan_paths([str(tmp_path)])[0] == []
    assert [e.need for e in scan_paths([str(tmp_path)], tests=True)[0]] == ["signals"]


def test_scan_reports_missing_needs_with_the_snippet_and_exits_1(capsys, monkeypatch):
    monkeypatch.chdir(PROJECTS / "commented")
    assert main(["scan"]) == 1
    out = capsys.readouterr().out
    assert "service.py:9  loop.add_signal_handler(...)" in out
    assert "source: zeromq/pyzmq zmq/asyncio.py" in out
    assert "missing: add_reader, signals" in out
    assert '[tool.loopcompat]\nneeds = ["subprocess", "add_reader", "signals"]' in out
    assert main(["scan", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["missing"] == ["add_reader", "signals"] and data["declared"] == ["subprocess"]
    assert data["needs"]["signals"][0]["line"] == 9


def test_write_round_trips_a_commented_pyproject_unchanged_apart_from_the_needs(capsys, monkeypatch, tmp_path):
    shutil.copytree(PROJECTS / "commented", tmp_path / "commented", copy_function=shutil.copyfile)
    project = tmp_path / "commented"
    before = (project / "pyproject.toml").read_text()
    monkeypatch.chdir(project)
    assert main(["scan", "--write"]) == 0
    assert "added to pyproject.toml: add_reader, signals" in capsys.readouterr().out
    after = (project / "pyproject.toml").read_text()
    added = ['    "add_reader",', '    "signals",']
    old_lines, new_lines = before.splitlines(), after.splitlines()
    at = old_lines.index('    "subprocess",  # see service.py') + 1
    assert new_lines == old_lines[:at] + added + old_lines[at:]  # every other line, comment and blank: as it was
    document = parse_toml(after)
    assert document["tool"]["loopcompat"]["needs"] == ["subprocess", "add_reader", "signals"]
    assert main(["scan"]) == 0  # nothing missing any more
    assert "nothing missing" in capsys.readouterr().out


@pytest.mark.parametrize("text, expected_tail", [
    ('[tool.loopcompat]\nneeds = ["udp"]\n', '[tool.loopcompat]\nneeds = ["udp", "signals"]\n'),
    ("[tool.loopcompat]\nneeds = ['udp', ]  # one\n", "[tool.loopcompat]\nneeds = ['udp', 'signals', ]  # one\n"),
    ('[tool.loopcompat]\nneeds = []\n', '[tool.loopcompat]\nneeds = ["signals"]\n'),
    ('[tool.loopcompat]\nloop = "selector"\n', '[tool.loopcompat]\nneeds = ["signals"]\nloop = "selector"\n'),
    ('[project]\nname = "x"\n', '[project]\nname = "x"\n\n[tool.loopcompat]\nneeds = ["signals"]\n'),
    ('[tool.loopcompat.windows]\nloop = "proactor"',
     '[tool.loopcompat.windows]\nloop = "proactor"\n\n[tool.loopcompat]\nneeds = ["signals"]\n'),
    ('[tool.loopcompat]\r\nneeds = [\r\n  "udp"\r\n]\r\n',
     '[tool.loopcompat]\r\nneeds = [\r\n  "udp",\r\n  "signals",\r\n]\r\n'),
])
def test_textual_edits_keep_the_layout(text, expected_tail):
    assert verified_edit(text, parse_toml(text), ["signals"], None) == expected_tail


def test_an_edit_that_cannot_be_made_safely_writes_nothing():
    inline = '[tool]\nloopcompat = {needs = ["udp"]}\n'
    with pytest.raises(ConfigError, match="by hand"):
        verified_edit(inline, parse_toml(inline), ["signals"], None)
    dotted = '[tool]\nloopcompat.needs = ["udp"]\n'
    with pytest.raises(ConfigError, match="by hand"):
        verified_edit(dotted, parse_toml(dotted), ["signals"], None)


def test_max_sockets_is_written_when_absent(capsys, monkeypatch, tmp_path):
    shutil.copy(APPS / "many_sockets_app.py", tmp_path / "app.py")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "busy"\n')
    monkeypatch.chdir(tmp_path)
    assert main(["scan", "--write"]) == 0
    assert parse_toml((tmp_path / "pyproject.toml").read_text())["tool"]["loopcompat"] == {"max-sockets": 10000}


def test_the_documented_library_table_is_current():
    from loopcompat._libraries import libraries_markdown

    doc = (PROJECTS.parent.parent / "docs" / "check-and-scan.md").read_text(encoding="utf-8")
    block = doc.split("<!-- libraries: begin -->\n")[1].split("<!-- libraries: end -->")[0]
    assert block == libraries_markdown(), "docs/check-and-scan.md: paste loopcompat._libraries.libraries_markdown()"
