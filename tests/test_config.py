"""Configuration: every layer, precedence, per-system tables, each error, the schema, the cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import loopcompat
from loopcompat import ConfigError
from loopcompat._config import effective, validate_table
from loopcompat._startup import find_pyproject, user_config_file

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "config"


def write(path: Path, text: str, newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.replace("\n", newline).encode("utf-8"))
    return path


def values(settings):
    return {name: setting.value for name, setting in settings.items()}


@pytest.fixture
def user_file():
    return Path(user_config_file())


@pytest.fixture
def project(tmp_path):
    return tmp_path / "project"


def test_user_config_path_is_platformdirs_unless_overridden(user_file, monkeypatch):
    import platformdirs

    assert user_file == Path(os.environ["LOOPCOMPAT_USER_CONFIG"])  # the suite never touches the real one
    monkeypatch.delenv("LOOPCOMPAT_USER_CONFIG")
    assert Path(user_config_file()) == platformdirs.user_config_path("loopcompat") / "config.toml"


def test_defaults_when_nothing_is_configured(project):
    project.mkdir()
    settings, needs = effective({}, system="linux", start_dir=str(project), environ={})
    assert needs == {}
    assert values(settings) == {"needs": [], "loop": None, "selector": None, "max_sockets": None, "prefer": [],
                                "fallbacks": True, "on_unsupported": "error"}
    assert all(s.origin == "default" for s in settings.values())


def test_layers_and_precedence(project, user_file):
    write(user_file, 'needs = ["udp"]\non-unsupported = "warn"\nmax-sockets = 100\nprefer = ["selector"]\n')
    pyproject = write(project / "pyproject.toml",
                      '[project]\nname = "x"\n\n[tool.loopcompat]\nneeds = ["subprocess"]\nmax-sockets = 2000\n')
    nested = project / "src" / "pkg"
    nested.mkdir(parents=True)
    env = {"LOOPCOMPAT_NEEDS": "signals", "LOOPCOMPAT_LOOP": "selector"}
    settings, needs = effective({"max_sockets": 3000}, ["add_reader"], system="linux", start_dir=str(nested),
                                environ=env)
    # needs add up across layers, each remembered with the layer that declared it
    assert list(needs) == ["udp", "subprocess", "signals", "add_reader"]
    assert needs["udp"] == f"{user_file}:1"
    assert needs["subprocess"] == f"{pyproject}:5"
    assert needs["signals"] == "environment LOOPCOMPAT_NEEDS" and needs["add_reader"] == "argument"
    # options: later layers win
    assert settings["max_sockets"].value == 3000 and settings["max_sockets"].origin == "argument"
    assert settings["on_unsupported"].value == "warn" and settings["on_unsupported"].origin == f"{user_file}:2"
    assert settings["loop"].value == "selector" and settings["loop"].origin == "environment LOOPCOMPAT_LOOP"
    assert settings["prefer"].value == ["selector"]
    settings, _ = effective({}, system="linux", start_dir=str(nested), environ={})
    assert settings["max_sockets"].value == 2000 and settings["max_sockets"].origin == f"{pyproject}:6"


def test_nearest_pyproject_wins_and_one_without_a_table_counts(project):
    write(project / "pyproject.toml", '[tool.loopcompat]\nneeds = ["udp"]\n')
    inner = write(project / "inner" / "pyproject.toml", '[project]\nname = "inner"\n')
    assert find_pyproject(str(project / "inner")) == str(inner)
    _, needs = effective({}, system="linux", start_dir=str(project / "inner"), environ={})
    assert needs == {}


@pytest.mark.parametrize("system, expected", [("windows", "selector"), ("linux", None), ("macos", None)])
def test_per_system_tables_apply_on_their_system_only(project, system, expected):
    write(project / "pyproject.toml",
          '[tool.loopcompat]\nneeds = ["subprocess"]\n\n[tool.loopcompat.windows]\nloop = "selector"\n'
          'needs = ["add_reader"]\n\n[tool.loopcompat.macos]\nneeds = ["char_devices"]\n')
    settings, needs = effective({}, system=system, start_dir=str(project), environ={})
    assert settings["loop"].value == expected
    extra = {"windows": ["add_reader"], "macos": ["char_devices"], "linux": []}[system]
    assert list(needs) == ["subprocess"] + extra


def test_crlf_files_and_line_numbers(project):
    write(project / "pyproject.toml", '[tool.loopcompat]\nneeds = ["udp"]\nmax-sockets = 9\n', newline="\r\n")
    assert b"\r\n" in (project / "pyproject.toml").read_bytes()
    settings, needs = effective({}, system="linux", start_dir=str(project), environ={})
    assert settings["max_sockets"].value == 9 and settings["max_sockets"].origin.endswith("pyproject.toml:3")
    write(project / "pyproject.toml", '[tool.loopcompat]\nneeds = ["udp"]\nmax-sockets = -9\n', newline="\r\n")
    with pytest.raises(ConfigError, match=r"pyproject.toml:3: .*out of range"):
        effective({}, system="linux", start_dir=str(project), environ={})


def test_explicit_config_file_replaces_the_pyproject_search(project, tmp_path):
    write(project / "pyproject.toml", '[tool.loopcompat]\nneeds = ["udp"]\n')
    chosen = write(tmp_path / "ops.toml", 'needs = ["signals"]\n[linux]\nselector = "poll"\n')
    settings, needs = effective({}, system="linux", start_dir=str(project),
                                environ={"LOOPCOMPAT_CONFIG": str(chosen)})
    assert list(needs) == ["signals"] and settings["selector"].value == "poll"
    with pytest.raises(ConfigError, match="LOOPCOMPAT_CONFIG=.*no such file"):
        effective({}, system="linux", environ={"LOOPCOMPAT_CONFIG": str(tmp_path / "missing.toml")})


@pytest.mark.parametrize(
    "table, patterns",
    [
        ('max_sockets = 10', [r"unknown key 'max_sockets' in \[tool.loopcompat\]", r"Did you mean 'max-sockets'"]),
        ('neds = ["udp"]', [r"unknown key 'neds'", r"Did you mean 'needs'"]),
        ('needs = "udp"', [r"must be a list of needs"]),
        ('needs = ["subproces"]', [r"'subproces' is not a need", r"Did you mean 'subprocess'"]),
        ('needs = ["Subprocess"]', [r"'Subprocess' is not a need"]),
        ('loop = "proactr"', [r"loop = 'proactr' is not allowed; allowed: selector, proactor", "Did you mean 'proactor'"]),
        ('loop = 3', [r"loop = 3 is not allowed"]),
        ('selector = "epol"', [r"Did you mean 'epoll'"]),
        ('max-sockets = -1', [r"out of range; allowed: 1 to 10,000,000"]),
        ('max-sockets = 100000000000', [r"out of range"]),
        ('max-sockets = "2000"', [r"whole number, got the string '2000'"]),
        ('max-sockets = 1.5', [r"whole number"]),
        ('fallbacks = ["selector-thread"]', [r"Did you mean 'selector_thread'"]),
        ('fallbacks = "yes"', [r"true, false or a list"]),
        ('on-unsupported = "ignore"', [r"allowed: error, warn"]),
        ('prefer = ["uvlop"]', [r"Did you mean 'uvloop'"]),
        ('windows = 3', [r"must be a table"]),
        ('[tool.loopcompat.windows]\nmacos = {}', [r"unknown key 'macos' in \[tool.loopcompat.windows\]"]),
        ('[tool.loopcompat.windows]\nselector = "kqueu"', [r"pyproject.toml:3: \[tool.loopcompat.windows\] selector", "kqueue"]),
    ],
)
def test_each_bad_value_is_a_config_error_naming_file_line_key_value_and_allowed(project, table, patterns):
    import re

    write(project / "pyproject.toml", f"[tool.loopcompat]\n{table}\n")
    with pytest.raises(ConfigError) as info:
        effective({}, system="windows", start_dir=str(project), environ={})
    message = str(info.value)
    assert str(project / "pyproject.toml") in message
    for pattern in patterns:
        assert re.search(pattern, message), (pattern, message)
    if "\n" not in table:
        assert "pyproject.toml:2:" in message


def test_several_errors_in_one_file_are_reported_together(project):
    write(project / "pyproject.toml", '[tool.loopcompat]\nneds = []\nloop = "x"\nmax-sockets = 0\n')
    with pytest.raises(ConfigError) as info:
        effective({}, system="linux", start_dir=str(project), environ={})
    message = str(info.value)
    assert ":2:" in message and ":3:" in message and ":4:" in message


def test_malformed_toml_names_file_line_and_column_without_a_parser_traceback(project):
    path = write(project / "pyproject.toml", '[tool.loopcompat]\nneeds = ["udp"\nloop = "selector"\n')
    with pytest.raises(ConfigError) as info:
        effective({}, system="linux", start_dir=str(project), environ={})
    assert f"{path}: malformed TOML" in str(info.value) and "line 3" in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_unreadable_and_non_utf8_files(project, tmp_path):
    write(project / "pyproject.toml", "")
    (project / "pyproject.toml").write_bytes(b'[tool.loopcompat]\nneeds = ["\xff"]\n')
    with pytest.raises(ConfigError, match=r"not UTF-8"):
        effective({}, system="linux", start_dir=str(project), environ={})
    folder = tmp_path / "a-folder.toml"
    folder.mkdir()
    from loopcompat._config import _load_toml

    with pytest.raises(ConfigError, match=r"cannot read the file"):
        _load_toml(str(folder))


@pytest.mark.parametrize("var, value, pattern", [
    ("LOOPCOMPAT_NEEDS", "subproces", "Did you mean 'subprocess'"),
    ("LOOPCOMPAT_LOOP", "proactr", "Did you mean 'proactor'"),
    ("LOOPCOMPAT_SELECTOR", "bogus", "allowed: select, poll"),
    ("LOOPCOMPAT_ON_UNSUPPORTED", "maybe", "allowed: error, warn"),
])
def test_bad_environment_variables(var, value, pattern, tmp_path):
    with pytest.raises(ConfigError, match=pattern) as info:
        effective({}, system="linux", start_dir=str(tmp_path), environ={var: value})
    assert var in str(info.value)


def test_disable_and_config_false_read_nothing(project, monkeypatch):
    write(project / "pyproject.toml", "[tool.loopcompat]\nthis is not toml\n")
    settings, needs = effective({}, system="linux", start_dir=str(project), environ={"LOOPCOMPAT_DISABLE": "1"})
    assert needs == {} and settings["loop"].origin == "default"
    settings, _ = effective({"loop": "selector"}, system="linux", start_dir=str(project), read_config=False,
                            environ={"LOOPCOMPAT_LOOP": "bogus"})
    assert settings["loop"].value == "selector"
    monkeypatch.chdir(project)
    with pytest.raises(ConfigError, match="malformed TOML"):
        loopcompat.install()
    assert loopcompat.install(config=False).needs == ()
    monkeypatch.setenv("LOOPCOMPAT_DISABLE", "1")
    loopcompat.uninstall()
    before = __import__("asyncio").events._event_loop_policy
    plan = loopcompat.install()
    assert __import__("asyncio").events._event_loop_policy is before  # nothing patched
    assert plan.needs == ()


def test_install_and_run_honour_pyproject(project, monkeypatch):
    write(project / "pyproject.toml", '[tool.loopcompat]\nneeds = ["subprocess", "udp"]\n')
    monkeypatch.chdir(project)
    assert loopcompat.install().needs == ("subprocess", "udp")
    assert loopcompat.loop_factory(needs=["pipes"]).plan.needs == ("subprocess", "udp", "pipes")
    assert loopcompat.plan().needs == ()  # plan() is pure: no configuration


def _child(code: str, cwd: Path, env_extra=None) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.update(env_extra or {})
    result = subprocess.run([sys.executable, "-c", code], cwd=str(cwd), env=env, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_warm_start_parses_no_toml_and_imports_no_platformdirs(project, monkeypatch):
    write(project / "pyproject.toml", '[tool.loopcompat]\nneeds = ["udp"]\n')
    if sys.platform != "win32":
        # Let the child find the user file through platformdirs (XDG_CONFIG_HOME points into tmp);
        # on Windows platformdirs asks the shell API, so the override must stay.
        monkeypatch.delenv("LOOPCOMPAT_USER_CONFIG")
    write(Path(user_config_file()), 'on-unsupported = "warn"\n')
    asks_platformdirs = sys.platform != "win32"
    code = ("import sys, loopcompat; p = loopcompat.install(); "
            "print(p.needs, p.options['on_unsupported'], 'tomllib' in sys.modules or 'tomli' in sys.modules, "
            "'platformdirs' in sys.modules)")
    assert _child(code, project) == f"('udp',) warn True {asks_platformdirs}"  # cold: parses
    assert _child(code, project) == "('udp',) warn False False"  # warm: neither
    write(project / "pyproject.toml", '[tool.loopcompat]\nneeds = ["udp", "signals"]\n')  # size changes
    assert _child(code, project).startswith("('udp', 'signals') warn True")
    (project / "pyproject.toml").write_text('[tool.loopcompat]\nneeds = ["subprocess"]\n')
    os.utime(project / "pyproject.toml", ns=(1, 1))
    assert _child(code, project).startswith("('subprocess',) warn True")


WARM_PLAN = (
    "import sys, loopcompat; p = loopcompat.install({args}); "
    "print(p.needs, p.loop, sorted(p.fallbacks), "
    "sorted(m for m in ('loopcompat._planner', 'loopcompat._knowledge', 'loopcompat._config', "
    "'loopcompat._vocab') if m in sys.modules))"
)


def test_a_warm_start_reuses_the_plan_without_the_planner_or_config_reader(project):
    """The second start takes its plan from the start-up cache; every input of the plan is in the key."""
    planner = ['loopcompat._config', 'loopcompat._knowledge', 'loopcompat._planner', 'loopcompat._vocab']

    def expect(needs, cold):
        plan = loopcompat.plan(needs)  # pure: the same platform, no configuration
        return f"{plan.needs} {plan.loop} {sorted(plan.fallbacks)} {planner if cold else []}"

    write(project / "pyproject.toml", '[tool.loopcompat]\nneeds = ["udp"]\n')
    code = WARM_PLAN.format(args="")
    assert _child(code, project) == expect(["udp"], cold=True)
    assert _child(code, project) == expect(["udp"], cold=False)
    # Each input is part of the key: the environment, the arguments, the config files.
    signals = {"LOOPCOMPAT_NEEDS": "signals"}
    assert _child(code, project, signals) == expect(["udp", "signals"], cold=True)
    assert _child(code, project, signals) == expect(["udp", "signals"], cold=False)
    argument = WARM_PLAN.format(args="needs=['subprocess']")
    assert _child(argument, project) == expect(["udp", "subprocess"], cold=True)
    assert _child(code, project) == expect(["udp"], cold=False)  # the first plan is still cached
    write(Path(os.environ["LOOPCOMPAT_USER_CONFIG"]), 'needs = ["pipes"]\n')
    assert _child(code, project) == expect(["pipes", "udp"], cold=True)
    # A plan that cannot be met is never cached: the error comes back every time, from the planner.
    write(project / "pyproject.toml", '[tool.loopcompat]\nneeds = ["udp"]\nselector = "select"\nmax-sockets = 5000\n')
    for _ in range(2):
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        result = subprocess.run([sys.executable, "-c", code], cwd=str(project), env=env, capture_output=True,
                                text=True, stdin=subprocess.DEVNULL, timeout=60)
        assert result.returncode == 1 and "UnsupportedError" in result.stderr and "max_sockets" in result.stderr


def test_a_broken_cache_is_ignored(project):
    write(project / "pyproject.toml", '[tool.loopcompat]\nneeds = ["udp"]\n')
    cache_dir = Path(os.environ["LOOPCOMPAT_CACHE_DIR"])
    cache_dir.mkdir(parents=True, exist_ok=True)
    for junk in (b"", b"\x00garbage", b"\xe9\x01\x00\x00\x00"):
        for name in os.listdir(cache_dir) or [f"startup-cache-{sys.implementation.cache_tag}.marshal"]:
            (cache_dir / name).write_bytes(junk)
        assert _child("import loopcompat; print(loopcompat.install().needs)", project) == "('udp',)"


def test_a_relative_config_file_is_keyed_by_its_absolute_path(tmp_path):
    # Same name, size and mtime in two directories: only the absolute path tells them apart.
    texts = {"a": 'needs = ["signals"]\n', "b": 'needs = ["pipes"]  \n'}
    assert len(texts["a"]) == len(texts["b"])
    for name, text in texts.items():
        path = write(tmp_path / name / "lc.toml", text)
        os.utime(path, ns=(10**18, 10**18))
    code = "import loopcompat; print(loopcompat.install().needs)"
    for _ in range(2):
        assert _child(code, tmp_path / "a", {"LOOPCOMPAT_CONFIG": "lc.toml"}) == "('signals',)"
        assert _child(code, tmp_path / "b", {"LOOPCOMPAT_CONFIG": "lc.toml"}) == "('pipes',)"


def test_plan_records_that_do_not_fit_are_recomputed_and_the_cache_stays_small(project):
    from loopcompat import _startup
    from loopcompat._plan import plan_from_record, plan_to_record

    here = loopcompat.detect()
    good = loopcompat.plan(["udp"])
    record = plan_to_record(good)
    assert plan_from_record(record, here) == good
    for broken in (None, (), ("junk",), record[:-1], (999,) + record[1:], record[:6] + ("not features",) + record[7:]):
        assert plan_from_record(broken, here) is None
    cache = _startup.StartupCache()
    key = _startup.plan_key(here, ["udp"], {}, config=True, start_dir=str(project), cache=cache)
    assert key is not None
    cache.data["plans"][key] = ("garbage", frozenset())
    assert _startup.cached_plan(key, cache, here) is None  # unreadable: computed afresh by the caller
    for number in range(_startup.MAX_CACHED_PLANS + 5):
        _startup.remember_plan(f"key {number}", cache, good, frozenset())
        assert len(cache.data["plans"]) <= _startup.MAX_CACHED_PLANS
    assert _startup.cached_plan(f"key {number}", cache, here) == good


# --- schema and examples ------------------------------------------------------------------------


def _schema():
    return json.loads((CONFIG_DIR / "loopcompat.schema.json").read_text(encoding="utf-8"))


def _toml(text: str):
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    return tomllib.loads(text)


EXAMPLES = sorted((CONFIG_DIR / "examples").glob("*.toml"))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_passes_the_schema_and_the_loader(example, tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    document = _toml(example.read_text(encoding="utf-8"))
    table = document["tool"]["loopcompat"] if "tool" in document else document
    jsonschema.validate(table, _schema())
    validate_table(table, str(example), "tool.loopcompat")
    for system in ("windows", "macos", "linux"):
        if "tool" in document:
            write(tmp_path / system / "pyproject.toml", example.read_text(encoding="utf-8"))
            effective({}, system=system, start_dir=str(tmp_path / system), environ={})
        else:
            effective({}, system=system, start_dir=str(tmp_path), environ={"LOOPCOMPAT_CONFIG": str(example)})


def test_examples_cover_the_common_shapes():
    names = {p.stem for p in EXAMPLES}
    assert {"psycopg-on-windows", "subprocess-tool", "busy-server", "user-config"} <= names


def test_schema_lists_exactly_the_loaders_keys_and_names():
    from loopcompat._config import FILE_KEYS, SYSTEM_TABLES
    from loopcompat._vocab import FALLBACKS, LOOPS, NEEDS, SELECTORS

    schema = _schema()
    options = schema["definitions"]["options"]
    assert set(schema["properties"]) == set(FILE_KEYS) | set(SYSTEM_TABLES)
    assert set(options) == set(FILE_KEYS)
    assert set(options["needs"]["items"]["enum"]) == set(NEEDS) | {"add_writer"}
    assert options["loop"]["enum"] == list(LOOPS) and options["selector"]["enum"] == list(SELECTORS)
    assert options["fallbacks"]["oneOf"][1]["items"]["enum"] == list(FALLBACKS)


def _loader_accepts(table) -> bool:
    try:
        validate_table(table, "doc", "tool.loopcompat")
        for name in ("windows", "macos", "linux"):
            if isinstance(table.get(name), dict):
                validate_table(table[name], "doc", f"tool.loopcompat.{name}", allow_systems=False)
        return True
    except ConfigError:
        return False


CORNER_TABLES = [
    {}, {"needs": []}, {"needs": ["add_writer", "add_writer"]}, {"needs": ["nope"]}, {"needs": "udp"},
    {"loop": "proactor"}, {"loop": "Proactor"}, {"selector": None}, {"max-sockets": 1}, {"max-sockets": 0},
    {"max-sockets": 2000.0}, {"max-sockets": 2000.5}, {"max-sockets": True}, {"max-sockets": 10_000_000},
    {"max-sockets": 10_000_001}, {"fallbacks": True}, {"fallbacks": []}, {"fallbacks": ["signal_bridge"]},
    {"fallbacks": "all"}, {"prefer": []}, {"prefer": ["uvloop", "selector"]}, {"prefer": "uvloop"},
    {"on-unsupported": "warn"}, {"on-unsupported": "WARN"}, {"windows": {}}, {"windows": {"loop": "selector"}},
    {"windows": {"windows": {}}}, {"windows": []}, {"linux": {"max-sockets": -3}}, {"extra": 1},
]


@pytest.mark.parametrize("table", CORNER_TABLES, ids=lambda t: json.dumps(t))
def test_schema_and_loader_accept_and_reject_the_same_tables(table):
    jsonschema = pytest.importorskip("jsonschema")
    schema_ok = jsonschema.Draft7Validator(_schema()).is_valid(table)
    assert schema_ok == _loader_accepts(table), table
