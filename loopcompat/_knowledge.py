"""The knowledge base: every platform fact loopcompat acts on, as one table.

Each :class:`Rule` says for which systems, OS releases, Pythons, loops and
selectors a fact holds, which features and loop methods it concerns, what it
does to them (``effect``), which fallback can cover it, and where the fact is
documented. The planner, the runtime guards, ``loopcompat matrix`` and the docs
all read this table; no fact is restated in code.

Version ranges are written as packaging specifiers (">=3.8", ">=10.6,<10.9").
The start-up path cannot afford to import packaging (about 9 ms measured on
CPython 3.11 against a 2 ms budget), so at run time they are evaluated by
:func:`spec_contains`, which understands exactly the subset the table may use:
comma-separated clauses of <, <=, > or >= and a dotted numeric release. The
test suite checks every specifier in the table with packaging itself and
checks that both evaluators agree over a grid of versions.
"""

from __future__ import annotations

from typing import Dict, Iterator, Optional, Tuple

from ._platform import Platform, version_tuple

# What a rule does.
UNSUPPORTED = "unsupported"  # the features/methods do not work (a fallback may cover them)
LIMIT = "limit"  # at most `limit` sockets (feature max_sockets)
CHECK = "check"  # enforced per call by a runtime guard named by `check`
DEFAULT_LOOP = "default_loop"  # the loop asyncio builds by default is `value`
SELECTORS = "selectors"  # selectors available, best first: `value` is comma-separated
LOOPS = "loops"  # stock asyncio loops available: `value` is comma-separated
OPTIONAL_LOOP = "optional_loop"  # a third-party loop (`value`) that exists for this platform
NOTE = "note"  # a fact worth a warning in the plan; changes no choice
DEPRECATED = "deprecated"  # an asyncio API is deprecated or removed here

DOCS_PLATFORMS = "https://docs.python.org/3/library/asyncio-platforms.html"
DOCS_EVENTLOOP = "https://docs.python.org/3/library/asyncio-eventloop.html"
DOCS_POLICY = "https://docs.python.org/3/library/asyncio-policy.html"
DOCS_SELECTORS = "https://docs.python.org/3/library/selectors.html"


class Rule:
    """One platform fact (see the module docstring). Immutable by convention."""

    # A plain class: typing.NamedTuple would cost ~0.5 ms to create at import.
    __slots__ = (
        "fact", "summary", "effect", "reason", "remedy", "source", "systems", "except_systems", "python",
        "release", "loops", "selectors", "features", "methods", "fallback", "limit", "value", "check",
    )

    def __init__(
        self,
        fact: str,
        summary: str,
        effect: str,
        reason: str,
        remedy: str,
        source: str,
        systems: Tuple[str, ...] = (),  # empty: every system
        except_systems: Tuple[str, ...] = (),
        python: str = "",  # packaging specifier; empty: every version
        release: str = "",  # OS release specifier
        loops: Tuple[str, ...] = (),  # empty: every loop
        selectors: Tuple[str, ...] = (),  # empty: every selector
        features: Tuple[str, ...] = (),
        methods: Tuple[str, ...] = (),
        fallback: Optional[str] = None,
        limit: Optional[int] = None,
        value: Optional[str] = None,
        check: Optional[str] = None,
    ) -> None:
        self.fact, self.summary, self.effect = fact, summary, effect
        self.reason, self.remedy, self.source = reason, remedy, source
        self.systems, self.except_systems, self.python, self.release = systems, except_systems, python, release
        self.loops, self.selectors, self.features, self.methods = loops, selectors, features, methods
        self.fallback, self.limit, self.value, self.check = fallback, limit, value, check

    def __repr__(self) -> str:
        return f"Rule({self.fact}: {self.summary})"

    def holds_on(self, platform: Platform) -> bool:
        """Whether the rule's system, release and Python ranges include ``platform``."""
        if self.systems and platform.system not in self.systems:
            return False
        if platform.system in self.except_systems:
            return False
        if self.python and not spec_contains(self.python, platform.python_version):
            return False
        if self.release and not spec_contains(self.release, platform.release_version):
            return False
        return True

    def concerns(self, loop: Optional[str], selector: Optional[str]) -> bool:
        """Whether the rule applies to this loop (and selector, for selector loops)."""
        if self.loops and loop not in self.loops:
            return False
        if self.selectors and selector not in self.selectors:
            return False
        return True


_OPERATORS = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _padded(a: Tuple[int, ...], b: Tuple[int, ...]) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
    width = max(len(a), len(b))
    return a + (0,) * (width - len(a)), b + (0,) * (width - len(b))


def spec_contains(spec: str, version: Tuple[int, ...]) -> bool:
    """Whether ``version`` satisfies every clause of ``spec`` (see module docstring).

    :raises ValueError: for a clause outside the supported subset.
    """
    for clause in spec.split(","):
        clause = clause.strip()
        op = clause[:2] if clause[:2] in ("<=", ">=") else clause[:1]
        if op not in _OPERATORS:
            raise ValueError(f"unsupported specifier clause {clause!r} (use <, <=, >, >=)")
        text = clause[len(op):].strip()
        if not all(part.isdigit() for part in text.split(".")):
            raise ValueError(f"unsupported specifier clause {clause!r} (use a dotted numeric release)")
        bound = version_tuple(text)
        left, right = _padded(version, bound)
        if not _OPERATORS[op](left, right):
            return False
    return True


_WINDOWS_SELECTOR_REMEDY = (
    "use ProactorEventLoop, which supports it (the Windows default since Python 3.8; do not force loop='selector')"
)

RULES: Tuple[Rule, ...] = (
    Rule(
        fact="S1",
        summary="add_reader/add_writer cannot monitor regular-file I/O",
        effect=CHECK,
        check="regular_file",
        methods=("add_reader", "add_writer"),
        reason="regular files are always 'ready' to the OS: readiness APIs (epoll refuses them; "
        "select/poll report them ready forever) cannot tell when file I/O would block",
        remedy="read and write files in a thread: await loop.run_in_executor(None, ...) or asyncio.to_thread(...)",
        source=f"{DOCS_PLATFORMS}#all-platforms (Python 3.4+)",
    ),
    Rule(
        fact="S2",
        summary="create_unix_connection/create_unix_server unsupported (no AF_UNIX)",
        effect=UNSUPPORTED,
        systems=("windows",),
        features=("unix_sockets",),
        methods=("create_unix_connection", "create_unix_server"),
        reason="asyncio has no AF_UNIX support on Windows",
        remedy="use TCP on loopback (127.0.0.1), or named pipes on the proactor loop "
        "(loop.start_serving_pipe / loop.create_pipe_connection)",
        source=f"{DOCS_PLATFORMS}#windows (Python 3.4+)",
    ),
    Rule(
        fact="S3",
        summary="add_signal_handler/remove_signal_handler unsupported",
        effect=UNSUPPORTED,
        systems=("windows",),
        loops=("selector", "proactor"),  # asyncio's loops; winloop delivers SIGINT itself (tested)
        features=("signals",),
        methods=("add_signal_handler", "remove_signal_handler"),
        fallback="signal_bridge",
        reason="Windows event loops have no signal wakeup integration for asyncio",
        remedy="use signal.signal() and loop.call_soon_threadsafe() yourself, "
        "or the signal_bridge fallback (needs=['signals'])",
        source=f"{DOCS_PLATFORMS}#windows (Python 3.4+)",
    ),
    Rule(
        fact="S4",
        summary="Windows selector loop: SelectSelector only, at most 512 sockets",
        effect=LIMIT,
        systems=("windows",),
        loops=("selector",),
        features=("max_sockets",),
        limit=512,
        check="select_socket_count",
        reason="Windows select() takes at most 512 sockets per call",
        remedy="use ProactorEventLoop, which has no such cap: declare max_sockets=N and loopcompat plans it",
        source=f"{DOCS_PLATFORMS}#windows (Python 3.4+)",
    ),
    Rule(
        fact="S5",
        summary="Windows selector loop: add_reader/add_writer accept socket handles only",
        effect=CHECK,
        systems=("windows",),
        loops=("selector",),
        methods=("add_reader", "add_writer"),
        check="socket_only",
        reason="Windows select() works on sockets only, not on pipes, files or consoles",
        remedy="use sockets, or declare needs=['pipes'] and use connect_read_pipe/connect_write_pipe",
        source=f"{DOCS_PLATFORMS}#windows (Python 3.4+)",
    ),
    Rule(
        fact="S6",
        summary="Windows selector loop: pipes unsupported",
        effect=UNSUPPORTED,
        systems=("windows",),
        loops=("selector",),
        features=("pipes",),
        methods=("connect_read_pipe", "connect_write_pipe"),
        fallback="threaded_pipes",
        reason="the Windows selector loop has no pipe transports (select() cannot watch pipes)",
        remedy=_WINDOWS_SELECTOR_REMEDY,
        source=f"{DOCS_PLATFORMS}#windows (Python 3.4+)",
    ),
    Rule(
        fact="S7",
        summary="Windows selector loop: subprocesses unsupported",
        effect=UNSUPPORTED,
        systems=("windows",),
        loops=("selector",),
        features=("subprocess",),
        methods=("subprocess_exec", "subprocess_shell"),
        fallback="threaded_subprocess",
        reason="the Windows selector loop cannot watch child processes or their pipes",
        remedy=_WINDOWS_SELECTOR_REMEDY,
        source=f"{DOCS_PLATFORMS}#windows (Python 3.4+)",
    ),
    Rule(
        fact="S8",
        summary="Windows proactor loop: add_reader/add_writer unsupported",
        effect=UNSUPPORTED,
        systems=("windows",),
        loops=("proactor",),
        features=("add_reader",),
        methods=("add_reader", "add_writer", "remove_reader", "remove_writer"),
        fallback="selector_thread",
        reason="the proactor loop is completion-based (IOCP) and has no readiness notifications",
        remedy="use SelectorEventLoop (loop='selector'), which supports add_reader/add_writer on sockets, "
        "or the selector_thread fallback (needs=['add_reader'])",
        source=f"{DOCS_PLATFORMS}#windows (Python 3.4+)",
    ),
    Rule(
        fact="S9",
        summary="Windows proactor loop before Python 3.8: UDP unsupported",
        effect=UNSUPPORTED,
        systems=("windows",),
        python="<3.8",
        loops=("proactor",),
        features=("udp",),
        methods=("create_datagram_endpoint",),
        reason="ProactorEventLoop gained create_datagram_endpoint() in Python 3.8",
        remedy="use Python 3.8+, or SelectorEventLoop (loop='selector')",
        source=f"{DOCS_PLATFORMS}#windows (Python 3.7 docs; changed in 3.8)",
    ),
    Rule(
        fact="S10",
        summary="Windows: monotonic clock resolution can be ~15.6 ms",
        effect=NOTE,
        systems=("windows",),
        reason="time.monotonic() on Windows usually ticks every 15.6 ms (best 0.5 ms): "
        "short sleeps and timeouts are rounded to that tick",
        remedy="do not rely on sub-tick timer precision; `loopcompat doctor` measures this machine's tick",
        source=f"{DOCS_PLATFORMS}#windows (Python 3.4+)",
    ),
    Rule(
        fact="S11",
        summary="Windows: child watchers / set_child_watcher unsupported",
        effect=DEPRECATED,
        systems=("windows",),
        reason="ProactorEventLoop watches child processes itself; policy.set_child_watcher() is not implemented",
        remedy="do not set a child watcher on Windows; declare needs=['subprocess']",
        source=f"{DOCS_PLATFORMS}#subprocess-support-on-windows (Python 3.4+)",
    ),
    Rule(
        fact="S12",
        summary="Windows default loop before 3.8: SelectorEventLoop",
        effect=DEFAULT_LOOP,
        systems=("windows",),
        python="<3.8",
        value="selector",
        reason="before Python 3.8 the Windows default event loop was the selector loop",
        remedy="declare needs=['subprocess'] or needs=['pipes'] to get ProactorEventLoop",
        source=f"{DOCS_PLATFORMS}#windows (changed in 3.8)",
    ),
    Rule(
        fact="S12",
        summary="Windows default loop from 3.8: ProactorEventLoop",
        effect=DEFAULT_LOOP,
        systems=("windows",),
        python=">=3.8",
        value="proactor",
        reason="since Python 3.8 the Windows default event loop is ProactorEventLoop",
        remedy="declare needs=['add_reader'] when a library needs readiness callbacks",
        source=f"{DOCS_PLATFORMS}#windows (changed in 3.8)",
    ),
    Rule(
        fact="S13",
        summary="macOS 10.6-10.8: KqueueSelector cannot watch character devices",
        effect=UNSUPPORTED,
        systems=("macos",),
        release=">=10.6,<10.9",
        loops=("selector",),
        selectors=("kqueue",),
        features=("char_devices",),
        reason="kqueue on macOS 10.6-10.8 does not support character devices (terminals, PTYs)",
        remedy="use SelectSelector (selector='select'); needs=['char_devices'] makes loopcompat pick it",
        source=f"{DOCS_PLATFORMS}#macos (Python 3.4+)",
    ),
    Rule(
        fact="S14",
        summary="macOS <= 10.5: PTYs/character devices not supported at all",
        effect=UNSUPPORTED,
        systems=("macos",),
        release="<10.6",
        features=("char_devices",),
        reason="macOS 10.5 and older cannot watch PTYs or other character devices with any selector",
        remedy="read the device in a thread (loop.run_in_executor), or upgrade macOS",
        source=f"{DOCS_PLATFORMS}#macos (Python 3.4 docs)",
    ),
    Rule(
        fact="S15",
        summary="Python 3.14+: event loop policies deprecated (removal planned for 3.16)",
        effect=DEPRECATED,
        python=">=3.14",
        reason="asyncio's policy system is deprecated from 3.14 and planned for removal in 3.16",
        remedy="pass loop factories: asyncio.run(main(), loop_factory=loopcompat.loop_factory(...)); "
        "loopcompat.install() already avoids the policy API here",
        source=f"{DOCS_POLICY} (deprecated in 3.14)",
    ),
    Rule(
        fact="S16",
        summary="Python 3.12+: child watchers deprecated (3.12), removed (3.14)",
        effect=DEPRECATED,
        python=">=3.12",
        except_systems=("windows",),
        reason="asyncio child watchers are deprecated since 3.12 and removed in 3.14; "
        "the loop picks pidfd or a thread by itself",
        remedy="stop calling set_child_watcher()/get_child_watcher(); subprocesses work without them",
        source=f"{DOCS_POLICY}#process-watchers (deprecated in 3.12, removed in 3.14)",
    ),
    # Facts beyond SPEC section 1 that plans and guards also depend on.
    Rule(
        fact="X1",
        summary="POSIX select(): file descriptors at or above FD_SETSIZE (1024) cannot be watched",
        effect=LIMIT,
        except_systems=("windows",),
        loops=("selector",),
        selectors=("select",),
        features=("max_sockets",),
        limit=1024,
        check="select_fd_value",
        reason="select() takes fd_set bitmaps of FD_SETSIZE (1024) bits; higher descriptors are out of range",
        remedy="use a poll, epoll or kqueue selector: declare max_sockets=N and loopcompat plans one",
        source=f"{DOCS_SELECTORS} and select(2) (FD_SETSIZE)",
    ),
    Rule(
        fact="X2",
        summary="macOS poll() does not support devices",
        effect=UNSUPPORTED,
        systems=("macos",),
        loops=("selector",),
        selectors=("poll",),
        features=("char_devices",),
        reason="macOS poll(2) documents under BUGS that it does not support devices",
        remedy="use SelectSelector (selector='select') or KqueueSelector on macOS 10.9+",
        source="macOS poll(2) manual page, BUGS",
    ),
    Rule(
        fact="X3",
        summary="Linux selectors: epoll, then poll, then select",
        effect=SELECTORS,
        systems=("linux",),
        value="epoll,poll,select",
        reason="selectors.DefaultSelector is epoll on Linux",
        remedy="",
        source=f"{DOCS_SELECTORS}#selectors.DefaultSelector",
    ),
    Rule(
        fact="X3",
        summary="macOS and BSD selectors: kqueue, then poll, then select",
        effect=SELECTORS,
        systems=("macos", "freebsd", "openbsd", "netbsd", "dragonfly"),
        value="kqueue,poll,select",
        reason="selectors.DefaultSelector is kqueue on macOS and the BSDs",
        remedy="",
        source=f"{DOCS_SELECTORS}#selectors.DefaultSelector",
    ),
    Rule(
        fact="X3",
        summary="Solaris/illumos selectors: devpoll, then poll, then select",
        effect=SELECTORS,
        systems=("sunos", "solaris", "illumos"),
        value="devpoll,poll,select",
        reason="selectors.DefaultSelector is /dev/poll on Solaris",
        remedy="",
        source=f"{DOCS_SELECTORS}#selectors.DefaultSelector",
    ),
    Rule(
        fact="X3",
        summary="Windows selectors: select only",
        effect=SELECTORS,
        systems=("windows",),
        value="select",
        reason="Windows has only select() among the selectors module's primitives",
        remedy="",
        source=f"{DOCS_PLATFORMS}#windows",
    ),
    Rule(
        fact="X4",
        summary="Windows loops: ProactorEventLoop and SelectorEventLoop",
        effect=LOOPS,
        systems=("windows",),
        value="proactor,selector",
        reason="asyncio ships both loops on Windows",
        remedy="",
        source=f"{DOCS_PLATFORMS}#windows",
    ),
    Rule(
        fact="X4",
        summary="Other systems: SelectorEventLoop only",
        effect=LOOPS,
        value="selector",
        reason="ProactorEventLoop exists only on Windows",
        remedy="",
        source=f"{DOCS_EVENTLOOP}#event-loop-implementations",
    ),
    Rule(
        fact="X5",
        summary="uvloop exists for POSIX CPython 3.8+, not for Windows",
        effect=OPTIONAL_LOOP,
        except_systems=("windows",),
        python=">=3.8",
        value="uvloop",
        reason="uvloop (libuv) publishes wheels for Linux and macOS only",
        remedy="pip install uvloop, and list it in prefer",
        source="https://github.com/MagicStack/uvloop (README, supported platforms)",
    ),
    Rule(
        fact="X6",
        summary="winloop exists for Windows CPython 3.9+",
        effect=OPTIONAL_LOOP,
        systems=("windows",),
        python=">=3.9",
        value="winloop",
        reason="winloop is the Windows port of uvloop (libuv): subprocesses, pipes (also file objects), "
        "add_reader on sockets, SIGINT handlers and UDP all work on it; AF_UNIX does not (S2)",
        remedy="pip install winloop, and list it in prefer",
        source="https://github.com/Vizonex/Winloop (README)",
    ),
    Rule(
        fact="X7",
        summary="uvloop and winloop: timers have millisecond resolution",
        effect=NOTE,
        loops=("uvloop", "winloop"),
        reason="uvloop and winloop schedule call_later/call_at on libuv's millisecond clock (uv_now)",
        remedy="do not rely on sub-millisecond timer precision with uvloop or winloop",
        source="https://docs.libuv.org/en/v1.x/loop.html#c.uv_now",
    ),
    Rule(
        fact="X10",
        summary="winloop: remove_reader/remove_writer return None",
        effect=NOTE,
        systems=("windows",),
        loops=("winloop",),
        reason="asyncio's remove_reader/remove_writer return whether a callback was removed; winloop's "
        "return None (measured with winloop 0.8.2 under the Windows test bed)",
        remedy="do not branch on the result of remove_reader/remove_writer with winloop",
        source="https://docs.python.org/3/library/asyncio-eventloop.html#watching-file-descriptors "
        "and https://github.com/Vizonex/Winloop",
    ),
    Rule(
        fact="X8",
        summary="macOS: kqueue refuses some terminals and stdin (EINVAL) even on modern releases",
        effect=CHECK,
        systems=("macos",),
        loops=("selector",),
        selectors=("kqueue",),
        check="kqueue_device_refusal",
        reason="kqueue cannot register some character devices (terminals, /dev/tty, a tty stdin): "
        "EVFILT_READ fails with EINVAL",
        remedy="loopcompat moves the loop's registrations to SelectSelector the first time this happens "
        "and logs it once; declare needs=['char_devices'] to plan SelectSelector from the start",
        source="https://bugs.python.org/issue21807 and macOS kqueue(2)",
    ),
    Rule(
        fact="X9",
        summary="Windows proactor loop: pipes must be handles opened for overlapped I/O (not stdin, os.pipe())",
        effect=CHECK,
        systems=("windows",),
        loops=("proactor",),
        features=("pipes",),
        methods=("_make_read_pipe_transport", "_make_write_pipe_transport"),
        fallback="threaded_pipes",
        check="overlapped_handle",
        reason="the proactor loop does pipe I/O through a completion port and takes pipe.fileno() for a "
        "HANDLE opened for overlapped I/O; a file object (sys.stdin, os.pipe(), Popen pipes) gives a C runtime "
        "descriptor instead, and its first read fails with [WinError 6] or [WinError 87] that the protocol never "
        "hears of: the transport hangs",
        remedy="declare needs=['pipes'] (loopcompat adds the threaded_pipes fallback for such pipes), or pass "
        "a handle opened for overlapped I/O (asyncio.windows_utils.pipe() wrapped in PipeHandle)",
        source="https://github.com/python/cpython/blob/3.13/Lib/asyncio/windows_events.py (IocpProactor.recv/"
        "send on pipe.fileno(), all versions) and https://learn.microsoft.com/windows/win32/api/fileapi/"
        "nf-fileapi-readfile (overlapped I/O needs FILE_FLAG_OVERLAPPED)",
    ),
    Rule(
        fact="X3",
        summary="Other POSIX selectors: poll, then select",
        effect=SELECTORS,
        value="poll,select",
        reason="poll() and select() are POSIX",
        remedy="",
        source=f"{DOCS_SELECTORS}#selectors.DefaultSelector",
    ),
)


_HOLDING: Dict[Platform, Tuple[Rule, ...]] = {}


def rules_on(platform: Platform, effect: Optional[str] = None) -> Iterator[Rule]:
    """Rules holding on ``platform`` (optionally only those with ``effect``), in table order."""
    holding = _HOLDING.get(platform)
    if holding is None:
        if len(_HOLDING) > 256:  # plans for many simulated platforms (tests, `explain`): stay bounded
            _HOLDING.clear()
        holding = _HOLDING[platform] = tuple(rule for rule in RULES if rule.holds_on(platform))
    for rule in holding:
        if effect is None or rule.effect == effect:
            yield rule


def first_value(platform: Platform, effect: str) -> Optional[str]:
    for rule in rules_on(platform, effect):
        return rule.value
    return None


def available_selectors(platform: Platform) -> Tuple[str, ...]:
    """Selectors the platform offers, best first (the first is asyncio's default)."""
    value = first_value(platform, SELECTORS) or "select"
    return tuple(value.split(","))


def default_loop(platform: Platform) -> str:
    return first_value(platform, DEFAULT_LOOP) or "selector"


def optional_loops(platform: Platform) -> Tuple[str, ...]:
    """Third-party loops that exist for ``platform`` (whether installed is another matter)."""
    return tuple(rule.value for rule in rules_on(platform, OPTIONAL_LOOP) if rule.value)


def available_loops(platform: Platform) -> Tuple[str, ...]:
    """Stock asyncio loops on ``platform``, the default first."""
    stock = (first_value(platform, LOOPS) or "selector").split(",")
    default = default_loop(platform)
    return (default,) + tuple(loop for loop in stock if loop != default)
