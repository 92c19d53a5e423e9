"""The planner, for simulated platforms: pure decisions checked against a table of expectations.

Each row states what the plan must be: loop, selector, the fallbacks it is
designed around, and the needs left unmet by design. A designed fallback this
release does not ship yet must show up as unmet too, never as working.
"""

from __future__ import annotations

import itertools
import marshal
import warnings

import pytest

import loopcompat
from loopcompat import ConfigError, Platform, UnsupportedError
from loopcompat._fallbacks import READY
from loopcompat._plan import plan_from_record, plan_to_record
from loopcompat._vocab import parse_needs

# The table plans unmet needs on purpose (on_unsupported="warn"); the warning itself is tested below.
pytestmark = pytest.mark.filterwarnings("ignore:loopcompat cannot meet:RuntimeWarning")

WINDOWS_RELEASES = ["7", "8.1", "10", "11"]
PYTHONS = [f"3.{minor}" for minor in range(5, 16)]

# need set -> (expected before 3.8, expected from 3.8); each expectation is
# (loop, selector, designed fallbacks, unmet by design). Options ride along.
W = {
    "none": ({}, (("selector", "select", (), ()), ("proactor", None, (), ()))),
    "subprocess": ({"needs": ["subprocess"]}, (("proactor", None, (), ()),) * 2),
    # The proactor loop serves its own overlapped pipe handles; threaded_pipes takes file objects (X9).
    "pipes": ({"needs": ["pipes"]}, (("proactor", None, ("threaded_pipes",), ()),) * 2),
    "pipes, no fallbacks": ({"needs": ["pipes"], "fallbacks": False}, (("proactor", None, (), ()),) * 2),
    "pipes+udp": (
        {"needs": ["pipes", "udp"]},
        (("selector", "select", ("threaded_pipes",), ()), ("proactor", None, ("threaded_pipes",), ())),
    ),
    "pipes+subprocess": ({"needs": ["pipes", "subprocess"]}, (("proactor", None, ("threaded_pipes",), ()),) * 2),
    "add_reader": ({"needs": ["add_reader"]}, (("selector", "select", (), ()),) * 2),
    "add_writer alias": ({"needs": ["add_writer"]}, (("selector", "select", (), ()),) * 2),
    "add_reader 2000 sockets": (
        {"needs": ["add_reader"], "max_sockets": 2000},
        (("proactor", None, ("selector_thread",), ()),) * 2,
    ),
    "add_reader 512 sockets": ({"needs": ["add_reader"], "max_sockets": 512}, (("selector", "select", (), ()),) * 2),
    "add_reader+subprocess": (
        {"needs": ["add_reader", "subprocess"]},
        (("proactor", None, ("selector_thread",), ()),) * 2,
    ),
    "add_reader+subprocess forced selector": (
        {"needs": ["add_reader", "subprocess"], "loop": "selector"},
        (("selector", "select", ("threaded_subprocess",), ()),) * 2,
    ),
    "udp": ({"needs": ["udp"]}, (("selector", "select", (), ()), ("proactor", None, (), ()))),
    "udp+subprocess": (
        {"needs": ["udp", "subprocess"]},
        (("selector", "select", ("threaded_subprocess",), ()), ("proactor", None, (), ())),
    ),
    "signals": (
        {"needs": ["signals"]},
        (("selector", "select", ("signal_bridge",), ()), ("proactor", None, ("signal_bridge",), ())),
    ),
    "subprocess+signals": ({"needs": ["subprocess", "signals"]}, (("proactor", None, ("signal_bridge",), ()),) * 2),
    "unix_sockets": (
        {"needs": ["unix_sockets"]},
        (("selector", "select", (), ("unix_sockets",)), ("proactor", None, (), ("unix_sockets",))),
    ),
    "many sockets, no needs": ({"max_sockets": 5000}, (("proactor", None, (), ()),) * 2),
    "no fallbacks, add_reader+subprocess": (
        {"needs": ["add_reader", "subprocess"], "fallbacks": False},
        (("selector", "select", (), ("subprocess",)), ("proactor", None, (), ("add_reader",))),
    ),
    "only signal_bridge allowed": (
        {"needs": ["add_reader", "signals", "subprocess"], "fallbacks": ["signal_bridge"]},
        (("selector", "select", ("signal_bridge",), ("subprocess",)),  # a tie: asyncio's default wins
         ("proactor", None, ("signal_bridge",), ("add_reader",))),
    ),
    "prefer selector": ({"prefer": ["selector"]}, (("selector", "select", (), ()),) * 2),
}


def _windows_cases():
    for (name, (opts, expectations)), release, python in itertools.product(W.items(), WINDOWS_RELEASES, PYTHONS):
        before_38 = tuple(int(p) for p in python.split(".")) < (3, 8)
        yield pytest.param(Platform("windows", release, python), opts, expectations[0 if before_38 else 1],
                           id=f"win{release}-py{python}-{name}")


MACOS = [
    # release, needs, options, expected
    ("10.5", [], {}, ("selector", "kqueue", (), ())),
    ("10.5", ["char_devices"], {}, ("selector", "kqueue", (), ("char_devices",))),
    ("10.6", [], {}, ("selector", "kqueue", (), ())),
    ("10.6", ["char_devices"], {}, ("selector", "select", (), ())),
    ("10.7.5", ["char_devices"], {}, ("selector", "select", (), ())),
    ("10.8", ["char_devices"], {}, ("selector", "select", (), ())),
    ("10.8.5", ["char_devices", "subprocess", "signals"], {}, ("selector", "select", (), ())),
    ("10.8", [], {}, ("selector", "kqueue", (), ())),
    ("10.8", ["char_devices"], {"max_sockets": 2000}, ("selector", "kqueue", (), ("char_devices",))),
    ("10.8", ["char_devices"], {"selector": "kqueue"}, ("selector", "kqueue", (), ("char_devices",))),
    ("10.9", ["char_devices"], {}, ("selector", "kqueue", (), ())),
    ("10.9", [], {}, ("selector", "kqueue", (), ())),
    ("11", ["char_devices"], {}, ("selector", "kqueue", (), ())),
    ("11", [], {"max_sockets": 100000}, ("selector", "kqueue", (), ())),
    ("14", ["char_devices", "add_reader"], {}, ("selector", "kqueue", (), ())),
    ("14", [], {}, ("selector", "kqueue", (), ())),
    ("14", [], {"selector": "select", "max_sockets": 1024}, ("selector", "select", (), ())),
    ("14", [], {"selector": "select", "max_sockets": 1025}, ("selector", "select", (), ("max_sockets",))),
    ("14", ["char_devices"], {"selector": "poll"}, ("selector", "poll", (), ("char_devices",))),
]

OTHER = [
    (Platform("linux", "6.1.0-13-amd64", "3.12"), [], {}, ("selector", "epoll", (), ())),
    (Platform("linux", "5.15", "3.8"), ["subprocess", "pipes", "add_reader", "signals", "unix_sockets", "udp",
                                         "char_devices"], {"max_sockets": 100000}, ("selector", "epoll", (), ())),
    (Platform("linux", "4.19", "3.7"), ["signals"], {"selector": "poll"}, ("selector", "poll", (), ())),
    (Platform("linux", "6.1", "3.13"), [], {"selector": "select", "max_sockets": 2000},
     ("selector", "select", (), ("max_sockets",))),
    (Platform("linux", "6.1", "3.13"), [], {"prefer": ["selector"]}, ("selector", "epoll", (), ())),
    (Platform("linux", "6.1", "3.15"), ["subprocess"], {}, ("selector", "epoll", (), ())),
    (Platform("freebsd14", "14.1-RELEASE", "3.11"), ["char_devices"], {}, ("selector", "kqueue", (), ())),
    (Platform("openbsd", "7.4", "3.11"), [], {}, ("selector", "kqueue", (), ())),
    (Platform("sunos5", "5.11", "3.11"), ["add_reader"], {}, ("selector", "devpoll", (), ())),
    (Platform("aix", "7.2", "3.9"), [], {"max_sockets": 5000}, ("selector", "poll", (), ())),
]


def _check(plan, expected, needs):
    loop, selector, designed, unmet_by_design = expected
    assert (plan.loop, plan.selector) == (loop, selector)
    assert plan.fallbacks | plan.missing_fallbacks == frozenset(designed)
    assert plan.fallbacks <= READY and not plan.missing_fallbacks & READY
    not_shipped = tuple(f for f in needs if plan.features[f].fallback in plan.missing_fallbacks)
    assert set(plan.unmet) == set(unmet_by_design) | set(not_shipped)
    for feature in plan.unmet:
        support = plan.support(feature)
        assert support.level == "unsupported" and support.reason and support.remedy
    for feature in set(needs) - set(plan.unmet):
        level = plan.support(feature).level
        assert level == ("fallback" if plan.support(feature).fallback in plan.fallbacks else "native")
    _check_round_trip(plan)


def _check_round_trip(plan):
    """The start-up cache stores plans as marshal records: every field must come back equal."""
    again = plan_from_record(marshal.loads(marshal.dumps(plan_to_record(plan))), plan.platform)
    assert again == plan
    for name in type(plan).__slots__:
        assert getattr(again, name) == getattr(plan, name), name


@pytest.mark.parametrize("platform, opts, expected", list(_windows_cases()))
def test_windows_plans(platform, opts, expected):
    opts = dict(opts)
    needs = parse_needs(opts.pop("needs", []))
    plan = loopcompat.plan(needs, platform=platform, on_unsupported="warn", **opts)
    _check(plan, expected, needs)


@pytest.mark.parametrize("release, needs, opts, expected", MACOS, ids=lambda v: str(v))
def test_macos_plans(release, needs, opts, expected):
    plan = loopcompat.plan(needs, platform=Platform("macos", release, "3.12"), on_unsupported="warn", **opts)
    _check(plan, expected, needs)


@pytest.mark.parametrize("platform, needs, opts, expected", OTHER, ids=lambda v: str(v))
def test_posix_plans(platform, needs, opts, expected):
    plan = loopcompat.plan(needs, platform=platform, on_unsupported="warn", **opts)
    _check(plan, expected, needs)


def test_the_table_is_big_enough():
    assert len(list(_windows_cases())) + len(MACOS) + len(OTHER) >= 80


def test_max_sockets_above_the_select_limit_never_plans_select_selector():
    for platform, n in itertools.product(
        [Platform("windows", "10", "3.7"), Platform("windows", "10", "3.12"), Platform("linux", "6", "3.12"),
         Platform("macos", "10.8", "3.12"), Platform("macos", "14", "3.12"), Platform("aix", "7", "3.12")],
        [513, 1025, 4096],
    ):
        for needs in ([], ["add_reader"], ["char_devices"], ["add_reader", "char_devices"]):
            plan = loopcompat.plan(needs, platform=platform, max_sockets=n, on_unsupported="warn")
            limit = 512 if platform.is_windows else 1024
            if plan.selector == "select":
                assert n <= limit or "max_sockets" in plan.unmet
            if n > limit and "max_sockets" not in plan.unmet:
                assert plan.selector != "select"


def test_error_mode_lists_every_unmet_need_with_reason_and_remedy():
    with pytest.raises(UnsupportedError) as info:
        loopcompat.plan(["unix_sockets", "subprocess"], platform=Platform("windows", "10", "3.12"),
                        loop="selector", fallbacks=False)
    message = str(info.value)
    assert "2 declared need(s) on Windows 10, CPython 3.12" in message
    assert "unix_sockets: asyncio has no AF_UNIX support on Windows (S2)" in message
    assert "named pipes" in message  # the remedy
    assert "subprocess: the Windows selector loop cannot watch child processes" in message and "(S7)" in message
    assert "on_unsupported='warn'" in message
    assert isinstance(info.value, NotImplementedError)


def test_warn_mode_warns_once_and_returns_the_plan():
    platform = Platform("windows", "10", "3.11", "pypy")  # a platform no other test plans for
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = loopcompat.plan(["unix_sockets"], platform=platform, on_unsupported="warn")
        second = loopcompat.plan(["unix_sockets"], platform=platform, on_unsupported="warn")
    assert first == second and first.unmet == ("unix_sockets",)
    assert len([w for w in caught if "unix_sockets" in str(w.message)]) == 1
    assert any("unmet need unix_sockets" in w for w in first.warnings)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(needs=["subproces"]), r"unknown need 'subproces'.*Did you mean 'subprocess'"),
        (dict(needs="add_reader,sginals"), r"Did you mean 'signals'"),
        (dict(needs=[3]), r"as strings"),
        (dict(needs=["max_sockets"]), r"max_sockets is a number"),
        (dict(loop="proactr"), r"unknown loop 'proactr'.*Did you mean 'proactor'"),
        (dict(loop="proactor"), r"not available on Linux"),
        (dict(selector="kqueue"), r"not available on Linux"),
        (dict(selector="epol"), r"Did you mean 'epoll'"),
        (dict(max_sockets=-1), r"out of range"),
        (dict(max_sockets=10**9), r"out of range"),
        (dict(max_sockets="lots"), r"whole number"),
        (dict(max_sockets=True), r"whole number"),
        (dict(fallbacks=["selector-thread"]), r"Did you mean 'selector_thread'"),
        (dict(on_unsupported="ignore"), r"allowed: error, warn"),
        (dict(prefer=["uvlop"]), r"Did you mean 'uvloop'"),
        (dict(max_socket=3), r"unknown option 'max_socket'.*Did you mean 'max_sockets'"),
    ],
)
def test_bad_input_raises_config_error(kwargs, pattern):
    with pytest.raises(ConfigError, match=pattern):
        loopcompat.plan(platform=Platform("linux", "6.1", "3.12"), **kwargs)


def test_plan_is_pure_and_serializable():
    import json

    platform = Platform("windows", "10", "3.13")
    a = loopcompat.plan(["add_reader", "subprocess"], platform=platform, on_unsupported="warn")
    b = loopcompat.plan(["subprocess", "add_reader"], platform=platform, on_unsupported="warn")
    assert (a.loop, a.selector, a.fallbacks, a.missing_fallbacks) == (b.loop, b.selector, b.fallbacks, b.missing_fallbacks)
    data = json.loads(json.dumps(a.to_dict()))
    assert set(data) >= {"loop", "selector", "fallbacks", "features", "unmet", "warnings", "platform"}
    assert data["platform"] == platform.to_dict()
    assert set(data["features"]["add_reader"]) == {"level", "reason", "remedy"}
    text = a.explain()
    assert "ProactorEventLoop" in text and "Windows 10, CPython 3.13" in text and "S10" in text
    with pytest.raises(AttributeError):
        a.loop = "selector"  # type: ignore[misc]


def test_support_accepts_aliases_and_rejects_unknown_features():
    plan = loopcompat.plan([], platform=Platform("linux", "6.1", "3.12"))
    assert plan.support("add_writer") == plan.support("add_reader")
    assert plan.support("max_sockets").level == "native"
    with pytest.raises(ConfigError):
        plan.support("telepathy")


@pytest.mark.parametrize(
    "platform, present, absent",
    [
        (Platform("linux", "6.1", "3.12"), ["S16"], ["S15", "S11", "S10"]),
        (Platform("linux", "6.1", "3.11"), [], ["S16", "S15"]),
        (Platform("linux", "6.1", "3.14"), ["S15", "S16"], []),
        (Platform("windows", "10", "3.12"), ["S10", "S11"], ["S16"]),
    ],
)
def test_deprecations_and_notes_reach_the_plan_for_the_pythons_they_concern(platform, present, absent):
    warnings_text = " ".join(loopcompat.plan([], platform=platform).warnings)
    for fact in present:
        assert f"({fact})" in warnings_text
    for fact in absent:
        assert f"({fact})" not in warnings_text
