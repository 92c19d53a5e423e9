"""Property: whatever TOML a user writes, loading it gives a configuration or a ConfigError, nothing else."""

from __future__ import annotations

import json
import math

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from loopcompat import ConfigError, Platform  # noqa: E402
from loopcompat._config import FILE_KEYS, SYSTEM_TABLES, effective  # noqa: E402
from loopcompat._planner import make_plan  # noqa: E402
from loopcompat._vocab import FALLBACKS, LOOPS, NEEDS, SELECTORS  # noqa: E402

KEYS = list(FILE_KEYS) + list(SYSTEM_TABLES) + ["max_sockets", "need", ""]
NAMES = list(NEEDS) + list(LOOPS) + list(SELECTORS) + list(FALLBACKS) + ["error", "warn", "add_writer"]
text = st.text(alphabet=st.characters(max_codepoint=0xFFFF, blacklist_categories=("Cs",)), max_size=12)
scalars = st.one_of(st.integers(-2**63, 2**63 - 1), st.floats(), st.booleans(), text, st.sampled_from(NAMES))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.sampled_from(KEYS) | text, inner, max_size=4)),
                      max_leaves=12)
tables = st.dictionaries(st.sampled_from(KEYS) | text, values, max_size=6)


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def check(tmp_path, document: str, system: str) -> None:
    (tmp_path / "pyproject.toml").write_text(document, encoding="utf-8")
    try:
        settings_, needs = effective({}, system=system, start_dir=str(tmp_path), environ={})
        options = {k: s.value for k, s in settings_.items() if k != "needs"}
        make_plan(list(needs), Platform(system, "10", "3.12"), options, raise_unmet=False)
    except ConfigError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=tables, system=st.sampled_from(["windows", "macos", "linux"]))
def test_random_tables_load_or_raise_config_error(tmp_path, table, system):
    body = "\n".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in table.items())
    check(tmp_path, f"[tool.loopcompat]\n{body}\n", system)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=st.text(max_size=200) | st.sampled_from(["[tool.loopcompat", "[tool]\nloopcompat = 3",
                                                          "tool.loopcompat.needs = 'udp'", "[[tool.loopcompat]]"]))
def test_random_documents_load_or_raise_config_error(tmp_path, document):
    document = document.replace("\x00", "")
    check(tmp_path, "[tool.loopcompat]\n" + document if document.startswith("needs") else document, "linux")
