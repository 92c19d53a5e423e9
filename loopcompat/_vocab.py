"""The closed vocabulary: need, loop, selector and fallback names, and option checks.

Configuration never names code: every value that selects behaviour is one of
the names below, so a config file cannot make loopcompat import anything else.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple, Union

from ._errors import ConfigError

NEEDS: Tuple[str, ...] = (
    "subprocess",
    "pipes",
    "add_reader",
    "signals",
    "unix_sockets",
    "udp",
    "char_devices",
)
# Features a plan reports support for: the needs, plus the socket-count budget.
FEATURES: Tuple[str, ...] = NEEDS + ("max_sockets",)
NEED_ALIASES = {"add_writer": "add_reader", "subprocesses": "subprocess", "signal": "signals"}

LOOPS: Tuple[str, ...] = ("selector", "proactor", "uvloop", "winloop")
SELECTORS: Tuple[str, ...] = ("select", "poll", "epoll", "kqueue", "devpoll")
FALLBACKS: Tuple[str, ...] = ("selector_thread", "threaded_subprocess", "threaded_pipes", "signal_bridge")
LEVELS: Tuple[str, ...] = ("native", "fallback", "unsupported")
ON_UNSUPPORTED: Tuple[str, ...] = ("error", "warn")

# The loop methods through which each feature is used; guards and fallbacks
# wrap exactly these.
FEATURE_METHODS: Dict[str, Tuple[str, ...]] = {
    "subprocess": ("subprocess_exec", "subprocess_shell"),
    "pipes": ("connect_read_pipe", "connect_write_pipe"),
    "add_reader": ("add_reader", "add_writer", "remove_reader", "remove_writer"),
    "signals": ("add_signal_handler", "remove_signal_handler"),
    "unix_sockets": ("create_unix_connection", "create_unix_server"),
    "udp": ("create_datagram_endpoint",),
    "char_devices": (),
    "max_sockets": (),
}

# Stock asyncio class names, for messages and `explain`.
LOOP_CLASS_NAMES = {
    "selector": "SelectorEventLoop",
    "proactor": "ProactorEventLoop",
    "uvloop": "uvloop.Loop",
    "winloop": "winloop.Loop",
}
SELECTOR_CLASS_NAMES = {
    "select": "SelectSelector",
    "poll": "PollSelector",
    "epoll": "EpollSelector",
    "kqueue": "KqueueSelector",
    "devpoll": "DevpollSelector",
}

OPTION_NAMES: Tuple[str, ...] = ("loop", "selector", "max_sockets", "prefer", "fallbacks", "on_unsupported")
# A socket budget beyond this is a typo, not a plan (the largest servers run
# a few hundred thousand connections per process).
MAX_SOCKETS_LIMIT = 10_000_000


def did_you_mean(value: object, allowed: Iterable[str]) -> str:
    """" Did you mean 'x'?" for the closest allowed name, or ""."""
    import difflib  # only on the error path: it costs ~4 ms to import

    matches = difflib.get_close_matches(str(value), list(allowed), n=1, cutoff=0.6)
    return f" Did you mean {matches[0]!r}?" if matches else ""


def unknown_name_error(source: str, what: str, value: object, allowed: Sequence[str]) -> ConfigError:
    return ConfigError(
        f"{source}: unknown {what} {value!r}; allowed: {', '.join(allowed)}.{did_you_mean(value, allowed)}"
    )


def _split_names(value: Union[str, Iterable[str]], source: str, what: str) -> Tuple[str, ...]:
    if isinstance(value, str):
        items: Iterable[Any] = [part for part in value.replace(";", ",").split(",")]
    else:
        try:
            items = list(value)
        except TypeError:
            raise ConfigError(f"{source}: expected a list of {what} names, got {value!r}") from None
    names = []
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"{source}: expected {what} names as strings, got {item!r}")
        name = item.strip()
        if name:
            names.append(name)
    return tuple(names)


def parse_needs(value: Union[str, Iterable[str], None], source: str = "needs") -> Tuple[str, ...]:
    """Needs as a tuple of canonical names, in first-mention order, without repeats.

    Accepts a list or a comma-separated string; "add_writer" means "add_reader".

    :raises ConfigError: for unknown names (with a did-you-mean).
    """
    if value is None:
        return ()
    result = []
    for name in _split_names(value, source, "need"):
        canonical = NEED_ALIASES.get(name.lower().replace("-", "_"), name.lower().replace("-", "_"))
        if canonical not in NEEDS:
            if canonical == "max_sockets":
                raise ConfigError(f"{source}: max_sockets is a number, not a need: pass max_sockets=N")
            raise unknown_name_error(source, "need", name, NEEDS)
        if canonical not in result:
            result.append(canonical)
    return tuple(result)


def _choice(value: object, allowed: Sequence[str], source: str, what: str, optional: bool = True) -> Optional[str]:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{source}: {what} must be one of {', '.join(allowed)}; got {value!r}")
    name = value.strip().lower()
    if name in ("", "default", "none") and optional:
        return None
    if name not in allowed:
        raise unknown_name_error(source, what, value, allowed)
    return name


def parse_max_sockets(value: object, source: str = "max_sockets") -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{source}: must be a whole number of sockets, got {value!r}")
    if value < 1 or value > MAX_SOCKETS_LIMIT:
        raise ConfigError(f"{source}: {value} is out of range; allowed: 1 to {MAX_SOCKETS_LIMIT:,}")
    return value


def parse_fallbacks(value: object, source: str = "fallbacks") -> Tuple[str, ...]:
    """True -> all, False -> none, or a list of fallback names."""
    if value is True or value is None:
        return FALLBACKS
    if value is False:
        return ()
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "all"):
        return FALLBACKS
    if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "none"):
        return ()
    names = _split_names(value, source, "fallback")  # type: ignore[arg-type]
    for name in names:
        if name not in FALLBACKS:
            raise unknown_name_error(source, "fallback", name, FALLBACKS)
    return tuple(dict.fromkeys(names))


def normalize_options(options: Mapping[str, Any], source: str = "options") -> Dict[str, Any]:
    """Validate loopcompat options and fill in defaults.

    :raises ConfigError: naming the option, the bad value and what is allowed.
    """
    for key in options:
        if key not in OPTION_NAMES:
            raise unknown_name_error(source, "option", key, OPTION_NAMES)
    prefer = options.get("prefer") or ()
    prefer_names = _split_names(prefer, f"{source}: prefer", "loop")
    for name in prefer_names:
        if name not in LOOPS:
            raise unknown_name_error(f"{source}: prefer", "loop", name, LOOPS)
    return {
        "loop": _choice(options.get("loop"), LOOPS, source, "loop"),
        "selector": _choice(options.get("selector"), SELECTORS, source, "selector"),
        "max_sockets": parse_max_sockets(options.get("max_sockets"), f"{source}: max_sockets"),
        "prefer": prefer_names,
        "fallbacks": parse_fallbacks(options.get("fallbacks", True), f"{source}: fallbacks"),
        "on_unsupported": _choice(
            options.get("on_unsupported", "error"), ON_UNSUPPORTED, source, "on_unsupported", optional=False
        ),
    }
