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
from ._platform import Platform
from ._vocab import FEATURES, LOOP_CLASS_NAMES, SELECTOR_CLASS_NAMES, normalize_options, parse_needs

NATIVE = "native"
FALLBACK = "fallback"
UNSUPPORTED = "unsupported"

Candidate = Tuple[str, Optional[str]]


class Support:
    """How a feature is served by a plan's loop: ``level`` is native, fallback or unsupported."""

    __slots__ = ("level", "reason", "remedy", "fallback", "fact")

    level: str
    reason: str
    remedy: str
    fallback: Optional[str]
    fact: Optional[str]

    def __init__(
        self,
        level: str,
        reason: str = "",
        remedy: str = "",
        fallback: Optional[str] = None,
        fact: Optional[str] = None,
    ) -> None:
        for name, value in zip(self.__slots__, (level, reason, remedy, fallback, fact)):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Support is immutable")

    def _key(self) -> Tuple[Any, ...]:
        return (self.level, self.reason, self.remedy, self.fallback, self.fact)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Support) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        extra = f", fallback={self.fallback!r}" if self.fallback else ""
        return f"Support({self.level!r}, reason={self.reason!r}{extra})"

    def to_dict(self) -> Dict[str, Optional[str]]:
        return {"level": self.level, "reason": self.reason, "remedy": self.remedy}


def _from_rule(level: str, rule: kb.Rule, fallback: Optional[str] = None) -> Support:
    reason = f"{rule.reason} ({rule.fact})"
    return Support(level, reason, rule.remedy, fallback, rule.fact)


class Plan:
    """Which loop and selector to build, which fallbacks to plug in, and how each feature fares."""

    __slots__ = (
        "platform",
        "needs",
        "loop",
        "selector",
        "fallbacks",
        "missing_fallbacks",
        "features",
        "unmet",
        "warnings",
        "options",
    )

    platform: Platform
    needs: Tuple[str, ...]
    loop: str
    selector: Optional[str]
    fallbacks: FrozenSet[str]
    missing_fallbacks: FrozenSet[str]
    features: Dict[str, Support]
    unmet: Tuple[str, ...]
    warnings: Tuple[str, ...]
    options: Dict[str, Any]

    def __init__(self, **fields: Any) -> None:
        for name in self.__slots__:
            object.__setattr__(self, name, fields[name])

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Plan is immutable")

    def __repr__(self) -> str:
        return (
            f"Plan(loop={self.loop!r}, selector={self.selector!r}, fallbacks={sorted(self.fallbacks)!r}, "
            f"unmet={self.unmet!r}, platform={self.platform!r})"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Plan) and self.to_dict() == other.to_dict() and self.needs == other.needs

    def __hash__(self) -> int:
        return hash((self.platform, self.needs, self.loop, self.selector, self.fallbacks))

    @property
    def loop_class_name(self) -> str:
        return LOOP_CLASS_NAMES[self.loop]

    @property
    def selector_class_name(self) -> Optional[str]:
        return SELECTOR_CLASS_NAMES[self.selector] if self.selector else None

    def support(self, feature: str) -> Support:
        """How ``feature`` (a need name, or "max_sockets") is served.

        :raises ConfigError: for an unknown feature name.
        """
        canonical = parse_needs([feature], "support()")[0] if feature != "max_sockets" else feature
        return self.features[canonical]

    def describe_loop(self) -> str:
        if self.selector:
            return f"{self.loop_class_name} with {self.selector_class_name}"
        return self.loop_class_name

    def explain(self) -> str:
        """A human-readable account of the plan, the reasons and the remedies."""
        lines = [
            f"Platform:  {self.platform}  ({self.platform.system} {self.platform.release}, "
            f"Python {self.platform.python}, {self.platform.implementation})",
            f"Needs:     {', '.join(self.needs) or '(none declared)'}"
            + (f"; max_sockets={self.options['max_sockets']}" if self.options.get("max_sockets") else ""),
            f"Loop:      {self.describe_loop()}",
            f"Fallbacks: {', '.join(sorted(self.fallbacks)) or 'none'}",
            "Features:",
        ]
        for feature in FEATURES:
            support = self.features[feature]
            mark = "*" if feature in self.needs or (feature == "max_sockets" and self.options.get("max_sockets")) else " "
            detail = f" via {support.fallback}" if support.level == FALLBACK else ""
            lines.append(f"  {mark} {feature:<13} {support.level}{detail}")
            if support.level != NATIVE:
                lines.append(f"      why: {support.reason}")
                if support.remedy:
                    lines.append(f"      fix: {support.remedy}")
        lines.append(f"Unmet:     {', '.join(self.unmet) or 'none'}")
        for warning in self.warnings:
            lines.append(f"Warning:   {warning}")
        lines.append("(* = declared)")
        return "\n".join(lines)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready form: keys loop, selector, fallbacks, features, unmet, warnings, platform."""
        return {
            "loop": self.loop,
            "selector": self.selector,
            "fallbacks": sorted(self.fallbacks),
            "features": {name: support.to_dict() for name, support in self.features.items()},
            "unmet": list(self.unmet),
            "warnings": list(self.warnings),
            "platform": self.platform.to_dict(),
            "needs": list(self.needs),
        }


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
        return Support(NATIVE)
    uncovered = [rule for rule in blockers if not (rule.fallback and rule.fallback in options["fallbacks"])]
    if uncovered:
        return _from_rule(UNSUPPORTED, uncovered[0])
    return _from_rule(FALLBACK, blockers[0], blockers[0].fallback)


# Third-party loops this release knows how to build (the knowledge base says where each exists).
BUILDABLE_OPTIONAL_LOOPS = ("uvloop",)


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
        cost = sum(FALLBACK_COST.get(features[f].fallback or "", 0) for f in wanted)
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

    plan = Plan(
        platform=platform,
        needs=declared,
        loop=loop,
        selector=selector if loop == "selector" else None,
        fallbacks=fallbacks,
        missing_fallbacks=missing,
        features=features,
        unmet=unmet,
        warnings=tuple(notes),
        options=opts,
    )
    if unmet and raise_unmet:
        message = unmet_message(plan)
        if opts["on_unsupported"] == "error":
            raise UnsupportedError(message + "\n(pass on_unsupported='warn' to build this loop anyway)")
        _warn_once(message)
    return plan


def unmet_message(plan: Plan) -> str:
    lines = [
        f"loopcompat cannot meet {len(plan.unmet)} declared need(s) on {plan.platform} "
        f"with {plan.describe_loop()}, the best loop for them:"
    ]
    for feature in plan.unmet:
        support = plan.features[feature]
        lines.append(f"  - {feature}: {support.reason}. Remedy: {support.remedy}")
    return "\n".join(lines)


_warned: set = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=4)
