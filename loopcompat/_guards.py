"""Clear errors: the messages, the per-call checks and the capped select() selector.

A loop method the planned loop cannot do still calls the stock method first
(probing beats trusting a version number) and turns its bare
NotImplementedError into an UnsupportedError that names the method, the loop
class, the platform, the reason and the remedy, with the original chained.
"""

from __future__ import annotations

import errno
import io
import os
import selectors
import stat
import sys
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional

from ._errors import UnsupportedError

if TYPE_CHECKING:
    from ._plan import Guard, Plan

PLAN_ATTRIBUTE = "_loopcompat_plan"


def plan_of(obj: object) -> "Plan":
    plan = getattr(obj, PLAN_ATTRIBUTE, None)
    if plan is None:  # a guarded loop always carries its plan; be helpful if not
        from . import _api

        plan = _api.plan_for_loop(obj)
    return plan  # type: ignore[no-any-return]


def _suggestion(plan: "Plan", feature: str) -> Optional[str]:
    """A plan that would serve ``feature``, as an instruction ("declare needs=[...] ...")."""
    if feature in plan.needs or feature == "max_sockets":
        return None
    from ._planner import UNSUPPORTED, make_plan

    options = dict(plan.options)
    try:
        alternative = make_plan(plan.needs + (feature,), plan.platform, options, raise_unmet=False)
    except Exception:  # the options force this very loop: no alternative to offer
        return None
    support = alternative.features[feature]
    if support.level == UNSUPPORTED or alternative.unmet:
        return None
    via = f" with the {support.fallback} fallback" if support.fallback else ""
    return f"declare needs={list(alternative.needs)!r} so loopcompat builds {alternative.describe_loop()}{via}"


def unsupported_error(loop: object, method: str, feature: str) -> UnsupportedError:
    plan = plan_of(loop)
    support = plan.features[feature]
    remedy = _suggestion(plan, feature) or support.remedy
    return UnsupportedError(
        f"loop.{method}() is not supported by {type(loop).__name__} on {plan.platform}: "
        f"{support.reason}. Remedy: {remedy}"
    )


def rule_error(loop: object, method: str, rule: Guard, detail: str) -> UnsupportedError:
    plan = plan_of(loop)
    return UnsupportedError(
        f"loop.{method}() {detail} with {type(loop).__name__} on {plan.platform}: "
        f"{rule.reason} ({rule.fact}). Remedy: {rule.remedy}"
    )


def _fd_of(fileobj: Any) -> Optional[int]:
    if isinstance(fileobj, int):
        return fileobj
    try:
        return int(fileobj.fileno())
    except (AttributeError, TypeError, ValueError, OSError):
        return None  # the stock method raises its own clear ValueError


def check_regular_file(loop: object, method: str, rule: Guard, fileobj: Any) -> None:
    """S1: refuse regular files, which readiness APIs cannot watch."""
    fd = _fd_of(fileobj)
    if fd is None:
        return
    try:
        mode = os.fstat(fd).st_mode
    except (OSError, OverflowError, ValueError):
        return  # not an fd the C runtime knows (e.g. a Windows socket handle)
    if stat.S_ISREG(mode):
        raise rule_error(loop, method, rule, f"cannot watch fd {fd}, a regular file,")


_NOT_A_SOCKET = (10038, 10045)


def check_socket_only(loop: object, method: str, rule: Guard, fileobj: Any) -> None:
    """S5: the Windows selector loop's select() accepts sockets only.

    A zero-timeout select() on the handle is the cheapest exact probe: it fails
    for anything but a socket, with WSAENOTSOCK (10038) on Windows and
    WSAEOPNOTSUPP (10045) under Wine.
    """
    import select

    fd = _fd_of(fileobj)
    if fd is None:
        return
    try:
        select.select([fd], [], [], 0)
    except OSError as exc:
        if getattr(exc, "winerror", None) in _NOT_A_SOCKET:
            raise rule_error(loop, method, rule, f"cannot watch handle {fd}, which is not a socket,") from exc
    except ValueError:
        return


def raw_io(pipe: Any) -> Any:
    """The raw I/O object under a text or buffered file object (or ``pipe`` itself)."""
    raw = getattr(pipe, "buffer", pipe)
    return getattr(raw, "raw", raw)


def windows_console(pipe: Any) -> Any:
    """The console object under ``pipe`` (Windows' sys.stdin/sys.stdout on a console), else None."""
    raw = raw_io(pipe)
    return raw if type(raw).__name__ == "_WindowsConsoleIO" else None


def has_crt_descriptor(pipe: Any) -> bool:
    """True when ``pipe.fileno()`` is a C runtime file descriptor (any file object), not an OS handle."""
    return isinstance(raw_io(pipe), io.FileIO) or windows_console(pipe) is not None


# The private transport factories a check guards, by the public method the user called.
_PUBLIC_NAMES = {
    "_make_read_pipe_transport": "connect_read_pipe",
    "_make_write_pipe_transport": "connect_write_pipe",
}


def check_overlapped_handle(loop: object, method: str, rule: Guard, pipe: Any) -> None:
    """X9: the proactor loop needs a pipe handle opened for overlapped I/O; refuse file objects
    before the stock transport starts a read that fails where the protocol never hears of it."""
    if has_crt_descriptor(pipe):
        public = _PUBLIC_NAMES.get(method, method)
        raise rule_error(loop, public, rule, f"cannot use {pipe!r}, a file object (not an overlapped handle),")


# check name -> function(loop, method, rule, fileobj)
METHOD_CHECKS: Dict[str, Callable[[object, str, Guard, Any], None]] = {
    "regular_file": check_regular_file,
    "socket_only": check_socket_only,
    "overlapped_handle": check_overlapped_handle,
}


class CappedSelectSelector(selectors.SelectSelector):
    """SelectSelector that refuses a registration select() could not serve.

    Stock select() accepts the registration and then fails inside the loop's
    select call ("too many file descriptors in select()" on Windows, "filedescriptor
    out of range in select()" on POSIX), which breaks the whole loop. This
    refuses the one registration instead, with the limit and the remedy.
    Only register() is overridden: select() stays the stock hot path.
    """

    _loopcompat_rule: Optional[Guard] = None

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        rule = self._loopcompat_rule
        if rule is not None and rule.limit is not None:
            if rule.check == "select_fd_value":
                fd = _fd_of(fileobj)
                if fd is not None and fd >= rule.limit:
                    raise self._refuse(f"fd {fd} is at or above FD_SETSIZE ({rule.limit})", rule)
            elif len(self.get_map()) >= rule.limit:
                raise self._refuse(f"{rule.limit} sockets are already registered", rule)
        return super().register(fileobj, events, data)

    def _refuse(self, detail: str, rule: Guard) -> UnsupportedError:
        plan = getattr(self, PLAN_ATTRIBUTE, None)
        where = f" on {plan.platform}" if plan is not None else f" on {sys.platform}"
        return UnsupportedError(
            f"SelectSelector cannot watch another socket{where}: {detail}. "
            f"{rule.reason} ({rule.fact}). Remedy: {rule.remedy}"
        )


_logger_name = "loopcompat"
_migrations_logged: set = set()


def _is_char_device(fileobj: Any) -> bool:
    fd = _fd_of(fileobj)
    if fd is None:
        return False
    try:
        return stat.S_ISCHR(os.fstat(fd).st_mode)
    except (OSError, OverflowError, ValueError):
        return False


class DeviceRefusalMigration:
    """Selector mixin: when the OS selector refuses a character device with EINVAL (fact X8,
    macOS kqueue and terminals), move every registration of the loop to a SelectSelector,
    the one macOS selector that watches devices, instead of failing; log it once.

    Only register() is overridden: select() stays the stock hot path, and after the
    move the loop holds a plain (capped) SelectSelector.
    """

    _loopcompat_loop: Any = None  # weakref.ref to the loop, set by the builder

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        try:
            return super().register(fileobj, events, data)  # type: ignore[misc,no-any-return]
        except OSError as exc:
            if exc.errno != errno.EINVAL or not _is_char_device(fileobj):
                raise
            loop = self._loopcompat_loop() if self._loopcompat_loop is not None else None
            if loop is None or getattr(loop, "_selector", None) is not self:
                raise
            replacement = self._move_to_select(loop)
            fd = _fd_of(fileobj)
            key = f"{id(loop)}"
            if key not in _migrations_logged:
                _migrations_logged.add(key)
                import logging

                logging.getLogger(_logger_name).warning(
                    "%s refused character device fd %s (EINVAL); the loop now uses SelectSelector "
                    "for all its registrations (fact X8). Declare needs=['char_devices'] to start with it.",
                    type(self).__name__, fd,
                )
            return replacement.register(fileobj, events, data)

    def _move_to_select(self, loop: Any) -> selectors.BaseSelector:
        from . import _knowledge as kb

        replacement = CappedSelectSelector()
        plan = getattr(self, PLAN_ATTRIBUTE, None)
        if plan is not None:
            setattr(replacement, PLAN_ATTRIBUTE, plan)
            for rule in kb.rules_on(plan.platform, kb.LIMIT):
                if rule.check and rule.concerns("selector", "select"):
                    replacement._loopcompat_rule = rule
        for key in list(self.get_map().values()):  # type: ignore[attr-defined]
            replacement.register(key.fileobj, key.events, key.data)
        loop._selector = replacement
        self.close()  # type: ignore[attr-defined]
        return replacement
