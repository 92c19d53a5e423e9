"""The planner: a pure function from platform facts, needs and options to a Plan.

No I/O, no loop built, nothing imported from asyncio: every platform can be
planned on any machine. The planner scores every loop/selector the platform
offers by how well it serves the declared needs and picks the best:

1. fewest unmet needs (a need a planned fallback covers counts as met);
2. lowest fallback cost (native beats a fallback; one thread beats many);
3. the user's ``prefer`` order;
4. asyncio's own default for the platform;
5. the platform's order of selectors (best first).
"""

from __future__ import annotations

import warnings
from typing import Any, Dict, FrozenSet, Iterable, List, Mapping, Optional, Tuple, Union

from . import _knowledge as kb
from ._errors import ConfigError, UnsupportedError
from ._fallbacks import COST as FALLBACK_COST
from ._fallbacks import READY as READY_FALLBACKS
from ._plan import FALLBACK, NATIVE, UNSUPPORTED, Guard, Plan, Support, unmet_message
from ._platform import Platform
from ._vocab import FEATURES, normalize_options, parse_needs

Candidate = Tuple[str, Optional[str]]


def _from_rule(level: str, rule: kb.Rule, fallback: Optional[str] = None) -> Support:
    reason = f"{rule.reason} ({rule.fact})"
    return Support(level, reason, rule.remedy, fallback, rule.fact)


def _feature_support(
    platform: Platform, candidate: Candidate, feature: str, options: Mapping[str, Any]
) -> Support:
    """Design-level support: a fallback counts when the options allow it, shipped or not."""
    loop, selector = candidate
    if feature == "max_sockets":
        wanted = options.get("max_sockets")
        for rule in kb.rules_on(platform, kb.LIMIT):
            if rule.concerns(loop, selector) and rule.limit is not None and wanted and wanted > rule.limit:
                return _from_rule(UNSUPPORTED, rule)
        return Support(NATIVE)
    blockers = [
        rule
        for rule in kb.rules_on(platform, kb.UNSUPPORTED)
        if feature in rule.features and rule.concerns(loop, selector)
    ]
    if not blockers:
        # Native, except for some inputs a per-call check refuses (X9: the proactor loop and
        # pipes not opened for overlapped I/O); a fallback that takes those over makes it whole.
        for rule in kb.rules_on(platform, kb.CHECK):
            if feature in rule.features and rule.fallback and rule.concerns(loop, selector):
                if rule.fallback in options["fallbacks"]:
                    return _from_rule(FALLBACK, rule, rule.fallback)
        return Support(NATIVE)
    uncovered = [rule for rule in blockers if not (rule.fallback and rule.fallback in options["fallbacks"])]
    if uncovered:
        return _from_rule(UNSUPPORTED, uncovered[0])
    return _from_rule(FALLBACK, blockers[0], blockers[0].fallback)


# A fallback Support made from one of these facts is partial: the loop serves the feature
# natively but for the inputs the fact's per-call check refuses (X9).
_CHECK_FACTS = frozenset(rule.fact for rule in kb.RULES if rule.effect == kb.CHECK)


def _fallback_cost(support: Support) -> float:
    """A fallback's cost; half of it when partial (so the proactor loop, which serves its own
    pipe handles, beats the selector loop, which serves no pipe at all)."""
    if support.level != FALLBACK or not support.fallback:
        return 0
    cost = FALLBACK_COST.get(support.fallback, 0)
    return cost / 2 if support.fact in _CHECK_FACTS else cost


# Third-party loops this release knows how to build (the knowledge base says where each exists).
BUILDABLE_OPTIONAL_LOOPS = ("uvloop", "winloop")


def _optional_candidates(
    platform: Platform, options: Mapping[str, Any], installed: Optional[FrozenSet[str]], notes: List[str]
) -> List[str]:
    """Optional loops to consider: asked for (prefer or loop=), existing here, buildable, installed."""
    wanted = list(options["prefer"]) + ([options["loop"]] if options["loop"] else [])
    result = []
    for name in dict.fromkeys(n for n in wanted if n in ("uvloop", "winloop")):
        if name not in kb.optional_loops(platform):
            why = f"{name} does not exist for {platform}"
        elif name not in BUILDABLE_OPTIONAL_LOOPS:
            why = f"this loopcompat release does not build {name} yet"
        elif installed is not None and name not in installed:
            why = f"{name} is not installed (pip install {name})"
        else:
            result.append(name)
            continue
        if name == options["loop"]:
            raise ConfigError(f"loop={name!r}: {why}")
        notes.append(f"prefer: {why}; using the stock asyncio loops")
    return result


def _candidates(platform: Platform, options: Mapping[str, Any], optional: List[str]) -> List[Candidate]:
    loops = kb.available_loops(platform) + tuple(optional)
    forced_loop = options["loop"]
    forced_selector = options["selector"]
    if forced_loop and forced_loop not in loops:
        raise ConfigError(f"loop={forced_loop!r} is not available on {platform}; available: {', '.join(loops)}")
    selectors = kb.available_selectors(platform)
    if forced_selector and forced_selector not in selectors:
        raise ConfigError(
            f"selector={forced_selector!r} is not available on {platform}; available: {', '.join(selectors)}"
        )
    result: List[Candidate] = []
    for loop in loops:
        if forced_loop and loop != forced_loop:
            continue
        if loop == "selector":
            for selector in selectors:
                if not forced_selector or selector == forced_selector:
                    result.append((loop, selector))
        elif not forced_selector:
            result.append((loop, None))
    if not result:
        raise ConfigError(f"selector={forced_selector!r} applies only to the selector loop, not loop={forced_loop!r}")
    return result


def make_plan(
    needs: Union[str, Iterable[str], None],
    platform: Platform,
    options: Mapping[str, Any],
    *,
    raise_unmet: bool = True,
    installed: Optional[FrozenSet[str]] = None,
) -> Plan:
    """Plan for ``platform``. See :func:`loopcompat.plan`.

    ``installed`` names the optional loops (uvloop ...) importable here; None
    (planning for another machine) assumes the preferred ones are installed.
    """
    declared = parse_needs(needs)
    opts = normalize_options(options)
    if opts["max_sockets"]:
        wanted: Tuple[str, ...] = declared + ("max_sockets",)
    else:
        wanted = declared
    default = (kb.default_loop(platform), kb.available_selectors(platform)[0])
    prefer = opts["prefer"]

    notes: List[str] = []
    optional = _optional_candidates(platform, opts, installed, notes)
    best_key: Optional[Tuple[int, ...]] = None
    best: Optional[Tuple[Candidate, Dict[str, Support]]] = None
    for order, candidate in enumerate(_candidates(platform, opts, optional)):
        features = {feature: _feature_support(platform, candidate, feature, opts) for feature in FEATURES}
        unmet_count = sum(features[f].level == UNSUPPORTED for f in wanted)
        cost = sum(_fallback_cost(features[f]) for f in wanted)
        loop, selector = candidate
        prefer_rank = prefer.index(loop) if loop in prefer else len(prefer)
        is_default = loop == default[0] and (loop != "selector" or selector == default[1])
        key = (unmet_count, cost, prefer_rank, 0 if is_default else 1, order)
        if best_key is None or key < best_key:
            best_key, best = key, (candidate, features)
    assert best is not None
    (loop, selector), features = best

    # Design -> truth: a fallback serves only declared needs (fallbacks are
    # explicit), and one this release does not ship yet serves nothing.
    designed = {features[f].fallback for f in wanted if features[f].level == FALLBACK}
    missing = frozenset(name for name in designed if name and name not in READY_FALLBACKS)
    for feature, support in list(features.items()):
        if support.level != FALLBACK:
            continue
        if support.fact in _CHECK_FACTS and (feature not in wanted or support.fallback not in READY_FALLBACKS):
            features[feature] = Support(NATIVE)  # as the stock loop, with the check's clear error
            continue
        if support.fallback not in READY_FALLBACKS:
            why = f"the {support.fallback} fallback that covers it is not shipped in this loopcompat release yet"
        elif feature not in wanted:
            why = f"declare needs=[{feature!r}] to enable the {support.fallback} fallback"
        else:
            continue
        features[feature] = Support(
            UNSUPPORTED, f"{support.reason}; {why}", support.remedy, support.fallback, support.fact
        )
    fallbacks = frozenset(name for name in designed if name and name in READY_FALLBACKS)
    unmet = tuple(f for f in wanted if features[f].level == UNSUPPORTED)

    # Facts worth knowing about this platform and loop (clock resolution, deprecations such
    # as S15/S16 for the Pythons they concern, Windows' lack of child watchers).
    notes[:0] = [
        f"{rule.summary} ({rule.fact}): {rule.remedy}"
        for rule in kb.rules_on(platform)
        if rule.effect in (kb.NOTE, kb.DEPRECATED) and rule.concerns(loop, selector)
    ]
    if unmet and opts["on_unsupported"] == "warn":
        notes.extend(f"unmet need {f}: {features[f].reason}. Remedy: {features[f].remedy}" for f in unmet)

    built_selector = selector if loop == "selector" else None
    guards = tuple(
        Guard(rule.fact, rule.effect, rule.check, rule.methods, rule.limit, rule.reason, rule.remedy)
        for rule in kb.rules_on(platform)
        if rule.check and rule.effect in (kb.CHECK, kb.LIMIT) and rule.concerns(loop, built_selector)
        and not (rule.fallback and rule.fallback in fallbacks)  # the fallback takes those inputs over
    )
    plan = Plan(
        platform=platform,
        needs=declared,
        loop=loop,
        selector=built_selector,
        fallbacks=fallbacks,
        missing_fallbacks=missing,
        features=features,
        unmet=unmet,
        warnings=tuple(notes),
        options=opts,
        deprecations=tuple((rule.fact, rule.reason, rule.remedy) for rule in kb.rules_on(platform, kb.DEPRECATED)),
        guards=guards,
    )
    if unmet and raise_unmet:
        message = unmet_message(plan)
        if opts["on_unsupported"] == "error":
            raise UnsupportedError(message + "\n(pass on_unsupported='warn' to build this loop anyway)")
        _warn_once(message)
    return plan


_warned: set = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=4)
