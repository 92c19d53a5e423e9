"""The knowledge base is complete, well-formed, and its specifiers mean what packaging says."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from loopcompat import Platform
from loopcompat import _guards
from loopcompat import _knowledge as kb
from loopcompat._fallbacks import COST
from loopcompat._vocab import FALLBACKS, FEATURE_METHODS, FEATURES, LOOPS, SELECTORS

SPEC_FACTS = [f"S{i}" for i in range(1, 17)]


def test_every_spec_fact_is_in_the_table():
    facts = {rule.fact for rule in kb.RULES}
    assert set(SPEC_FACTS) <= facts


@pytest.mark.parametrize("rule", kb.RULES, ids=lambda r: f"{r.fact}-{r.summary[:30]}")
def test_rule_is_well_formed(rule):
    assert rule.summary and rule.reason and rule.source
    assert rule.source.startswith("https://") or "manual page" in rule.source
    assert set(rule.loops) <= set(LOOPS)
    assert set(rule.selectors) <= set(SELECTORS)
    assert set(rule.features) <= set(FEATURES)
    assert rule.fallback is None or rule.fallback in FALLBACKS
    # A check may guard a private transport factory (X9): it exists on BaseEventLoop and the
    # error names the public method the user called.
    public = [_guards._PUBLIC_NAMES.get(method, method) for method in rule.methods]
    for method, name in zip(rule.methods, public):
        assert hasattr(asyncio.base_events.BaseEventLoop if method.startswith("_") else asyncio.AbstractEventLoop,
                       method), method
        assert hasattr(asyncio.AbstractEventLoop, name), name
    for feature in rule.features:
        assert set(FEATURE_METHODS[feature]) >= set(public)
    if rule.effect in (kb.UNSUPPORTED, kb.LIMIT, kb.CHECK, kb.NOTE, kb.DEPRECATED):
        assert rule.remedy, "every actionable fact says what to do"
    if rule.effect == kb.UNSUPPORTED:
        assert rule.features
    if rule.effect == kb.LIMIT:
        assert rule.limit and rule.features == ("max_sockets",)
    if rule.effect in (kb.SELECTORS, kb.LOOPS):
        names = rule.value.split(",")
        assert set(names) <= set(SELECTORS if rule.effect == kb.SELECTORS else LOOPS)
    if rule.effect == kb.OPTIONAL_LOOP:
        assert rule.value in LOOPS


def test_every_fallback_has_a_cost_and_a_rule():
    assert set(COST) == set(FALLBACKS)
    assert {r.fallback for r in kb.RULES if r.fallback} == set(FALLBACKS)


PYTHONS = [f"3.{m}" for m in range(0, 21)] + [f"3.{m}.{p}" for m in (7, 8, 12, 13, 14) for p in (0, 1, 9, 18)]
RELEASES = ["5", "6.1", "7", "8.1", "10", "10.4", "10.5", "10.5.8", "10.6", "10.6.0", "10.7.5", "10.8", "10.8.5",
            "10.9", "10.10", "10.15.7", "11", "11.0.1", "12.7", "14", "14.4.1", "15"]


@pytest.mark.parametrize("rule", [r for r in kb.RULES if r.python or r.release], ids=lambda r: r.fact)
def test_specifiers_are_packaging_specifiers_and_the_fast_evaluator_agrees(rule):
    for spec, grid in ((rule.python, PYTHONS), (rule.release, RELEASES)):
        if not spec:
            continue
        reference = SpecifierSet(spec)  # raises InvalidSpecifier if the table is wrong
        for text in grid:
            assert kb.spec_contains(spec, Version(text).release) == reference.contains(text), (spec, text)


@pytest.mark.parametrize("bad", ["==3.8", "~=3.8", "!=3.8", "3.8", ">=3.8.*"])
def test_fast_evaluator_refuses_clauses_outside_its_subset(bad):
    with pytest.raises(ValueError):
        kb.spec_contains(bad, (3, 8))


@pytest.mark.parametrize(
    "platform, loops, selectors",
    [
        (Platform("windows", "10", "3.13"), ("proactor", "selector"), ("select",)),
        (Platform("windows", "7", "3.7"), ("selector", "proactor"), ("select",)),
        (Platform("linux", "6.1", "3.12"), ("selector",), ("epoll", "poll", "select")),
        (Platform("macos", "14", "3.12"), ("selector",), ("kqueue", "poll", "select")),
        (Platform("freebsd", "14", "3.12"), ("selector",), ("kqueue", "poll", "select")),
        (Platform("sunos", "5.11", "3.12"), ("selector",), ("devpoll", "poll", "select")),
        (Platform("aix", "7.2", "3.12"), ("selector",), ("poll", "select")),
    ],
)
def test_loops_and_selectors_per_system_default_first(platform, loops, selectors):
    assert kb.available_loops(platform) == loops
    assert kb.available_selectors(platform) == selectors


def test_default_selector_on_this_machine_matches_asyncio():
    import selectors

    from loopcompat import detect
    from loopcompat._vocab import SELECTOR_CLASS_NAMES

    default = kb.available_selectors(detect())[0]
    assert SELECTOR_CLASS_NAMES[default] == selectors.DefaultSelector.__name__


def test_rules_on_filters_by_version_ranges():
    facts = lambda p: {r.fact for r in kb.rules_on(p)}  # noqa: E731
    assert "S9" in facts(Platform("windows", "10", "3.7")) and "S9" not in facts(Platform("windows", "10", "3.8"))
    assert "S13" in facts(Platform("macos", "10.8.5", "3.9")) and "S13" not in facts(Platform("macos", "10.9", "3.9"))
    assert "S14" in facts(Platform("macos", "10.5", "3.9")) and "S14" not in facts(Platform("macos", "10.6", "3.9"))
    assert "S15" in facts(Platform("linux", "6", "3.14")) and "S15" not in facts(Platform("linux", "6", "3.13"))
    assert "S16" in facts(Platform("linux", "6", "3.12")) and "S16" not in facts(Platform("windows", "10", "3.12"))
    assert not {"S2", "S3", "S4"} & facts(Platform("linux", "6", "3.12"))
    assert all(r.holds_on(Platform("linux", "6", "3.12")) for r in kb.RULES if r.fact == "S1")
