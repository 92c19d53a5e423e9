"""Plan and Support: what the planner decides, in a module light enough for start-up.

The planner (loopcompat._planner) and the knowledge base it reads are only
imported when a plan has to be computed; a warm start rebuilds the plan from
its record in the start-up cache (see plan_to_record).
"""

from __future__ import annotations

from typing import Any, Dict, FrozenSet, Optional, Tuple

from ._platform import Platform

NATIVE = "native"
FALLBACK = "fallback"
UNSUPPORTED = "unsupported"


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


class Guard:
    """A per-call check or limit the built loop enforces: a knowledge-base fact, carried by
    the plan so that building a loop never consults the knowledge base again."""

    __slots__ = ("fact", "effect", "check", "methods", "limit", "reason", "remedy")

    fact: str
    effect: str  # "check" (a per-call check of the methods) or "limit" (the selector's capacity)
    check: str  # the name of the check (loopcompat._guards)
    methods: Tuple[str, ...]
    limit: Optional[int]
    reason: str
    remedy: str

    def __init__(
        self, fact: str, effect: str, check: str, methods: Tuple[str, ...], limit: Optional[int], reason: str, remedy: str
    ) -> None:
        for name, value in zip(self.__slots__, (fact, effect, check, methods, limit, reason, remedy)):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Guard is immutable")

    def _key(self) -> Tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Guard) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Guard({self.fact}: {self.check} on {', '.join(self.methods) or 'the selector'})"


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
        "deprecations",
        "guards",
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
    #: (fact, reason, remedy) of each asyncio deprecation that concerns this platform's Python
    deprecations: Tuple[Tuple[str, str, str], ...]
    #: the checks and limits the built loop enforces (facts that concern its loop and selector)
    guards: Tuple[Guard, ...]

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
        from ._vocab import LOOP_CLASS_NAMES

        return LOOP_CLASS_NAMES[self.loop]

    @property
    def selector_class_name(self) -> Optional[str]:
        from ._vocab import SELECTOR_CLASS_NAMES

        return SELECTOR_CLASS_NAMES[self.selector] if self.selector else None

    def support(self, feature: str) -> Support:
        """How ``feature`` (a need name, or "max_sockets") is served.

        :raises ConfigError: for an unknown feature name.
        """
        from ._vocab import parse_needs

        canonical = parse_needs([feature], "support()")[0] if feature != "max_sockets" else feature
        return self.features[canonical]

    def describe_loop(self) -> str:
        if self.selector:
            return f"{self.loop_class_name} with {self.selector_class_name}"
        return self.loop_class_name

    def explain(self) -> str:
        """A human-readable account of the plan, the reasons and the remedies."""
        from ._vocab import FEATURES

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


def unmet_message(plan: Plan) -> str:
    lines = [
        f"loopcompat cannot meet {len(plan.unmet)} declared need(s) on {plan.platform} "
        f"with {plan.describe_loop()}, the best loop for them:"
    ]
    for feature in plan.unmet:
        support = plan.features[feature]
        lines.append(f"  - {feature}: {support.reason}. Remedy: {support.remedy}")
    return "\n".join(lines)


RECORD_VERSION = 2


def plan_to_record(plan: Plan) -> Tuple[Any, ...]:
    """The plan as plain values marshal can store (the platform is the caller's key)."""
    features = tuple((name, s.level, s.reason, s.remedy, s.fallback, s.fact) for name, s in plan.features.items())
    return (
        RECORD_VERSION,
        plan.needs,
        plan.loop,
        plan.selector,
        plan.fallbacks,
        plan.missing_fallbacks,
        features,
        plan.unmet,
        plan.warnings,
        plan.options,
        plan.deprecations,
        tuple(guard._key() for guard in plan.guards),
    )


def plan_from_record(record: Any, platform: Platform) -> Optional[Plan]:
    """The plan a record holds, or None when the record is not one this release wrote."""
    try:
        version, needs, loop, selector, fallbacks, missing, features, unmet, notes, options, deprecations, guards = record
        if version != RECORD_VERSION:
            return None
        return Plan(
            platform=platform,
            needs=needs,
            loop=loop,
            selector=selector,
            fallbacks=fallbacks,
            missing_fallbacks=missing,
            features={name: Support(*values) for name, *values in features},
            unmet=unmet,
            warnings=notes,
            options=options,
            deprecations=deprecations,
            guards=tuple(Guard(*values) for values in guards),
        )
    except (TypeError, ValueError):
        return None
