"""Platform facts: the only module that reads the running interpreter and OS.

Everything downstream (knowledge base, planner) is a pure function of a
:class:`Platform`, so any platform can be planned and tested on any machine by
building one by hand: ``Platform("windows", "10", "3.7")``.
"""

from __future__ import annotations

import os
import sys
from typing import Dict, Optional, Tuple

from ._errors import ConfigError

__all__ = ["Platform", "detect", "version_tuple"]

# sys.platform-like spellings users and tools write, mapped to our system names.
_SYSTEM_ALIASES = {
    "win32": "windows",
    "win": "windows",
    "cygwin": "cygwin",
    "darwin": "macos",
    "mac": "macos",
    "macosx": "macos",
    "osx": "macos",
}
_DISPLAY_SYSTEM = {"windows": "Windows", "macos": "macOS", "linux": "Linux", "freebsd": "FreeBSD"}
_DISPLAY_IMPLEMENTATION = {"cpython": "CPython", "pypy": "PyPy", "graalpy": "GraalPy"}


def version_tuple(text: str) -> Tuple[int, ...]:
    """The leading numeric release of a version string: "6.1.0-13-amd64" -> (6, 1, 0).

    OS releases are not PEP 440 versions (kernel suffixes, "8.1", "11"), so only
    their dotted numeric head is compared.

    :raises ValueError: when the string does not start with a number.
    """
    parts = []
    for piece in str(text).strip().split("."):
        digits = ""
        for char in piece:
            if not char.isdigit():
                break
            digits += char
        if not digits:
            break
        parts.append(int(digits))
        if len(digits) != len(piece):
            break
    if not parts:
        raise ValueError(f"not a version: {text!r}")
    return tuple(parts)


def normalize_system(system: str) -> str:
    name = str(system).strip().lower()
    name = _SYSTEM_ALIASES.get(name, name)
    # "freebsd13", "sunos5", "openbsd7" -> "freebsd", "sunos", "openbsd"
    stripped = name.rstrip("0123456789")
    return stripped or name


class Platform:
    """What a plan depends on: OS, OS release, Python version and implementation.

    ``system`` is "windows", "macos", "linux" or another sys.platform-like name
    ("freebsd", "sunos", ...); "win32" and "darwin" are accepted as aliases.
    ``release`` is the OS release ("7", "8.1", "10", "11" for Windows; "10.8",
    "14.4" for macOS; the kernel release elsewhere). ``python`` is "3.13" or
    "3.13.0". Immutable and hashable.

    :raises ConfigError: when ``python`` or ``release`` is not a version.
    """

    # A plain class rather than a dataclass: importing dataclasses alone costs
    # about 1 ms, half of loopcompat's start-up budget.
    __slots__ = ("system", "release", "python", "implementation", "python_version", "release_version")

    system: str
    release: str
    python: str
    implementation: str
    python_version: Tuple[int, ...]
    release_version: Tuple[int, ...]

    def __init__(self, system: str, release: str, python: str, implementation: str = "cpython") -> None:
        versions = {}
        for field, value, example in (("python", python, "3.13"), ("release", release, "10")):
            try:
                versions[field] = version_tuple(value)
            except ValueError:
                raise ConfigError(
                    f"Platform {field}={value!r} is not a version (expected e.g. {example!r})"
                ) from None
        if len(versions["python"]) < 2:
            raise ConfigError(f"Platform python={python!r} needs major.minor, e.g. '3.13'")
        setter = object.__setattr__
        setter(self, "system", normalize_system(system))
        setter(self, "release", str(release).strip())
        setter(self, "python", str(python).strip())
        setter(self, "implementation", str(implementation).strip().lower())
        setter(self, "python_version", versions["python"])
        setter(self, "release_version", versions["release"])

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Platform is immutable")

    def _key(self) -> Tuple[str, str, str, str]:
        return (self.system, self.release, self.python, self.implementation)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Platform):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return "Platform(system={!r}, release={!r}, python={!r}, implementation={!r})".format(*self._key())

    def __str__(self) -> str:
        """Human form used in messages: "Windows 10, CPython 3.13"."""
        system = _DISPLAY_SYSTEM.get(self.system, self.system)
        impl = _DISPLAY_IMPLEMENTATION.get(self.implementation, self.implementation)
        major_minor = ".".join(str(p) for p in self.python_version[:2])
        return f"{system} {self.release}, {impl} {major_minor}"

    @property
    def is_windows(self) -> bool:
        return self.system == "windows"

    def to_dict(self) -> Dict[str, str]:
        return dict(zip(("system", "release", "python", "implementation"), self._key()))


def _windows_release() -> str:
    # sys.getwindowsversion() is safe everywhere; platform.win32_ver() queries WMI
    # on 3.12+, which is slow and aborts the process under Wine.
    version = sys.getwindowsversion()  # type: ignore[attr-defined]
    major, minor, build = version.major, version.minor, version.build
    if major == 10:
        return "11" if build >= 22000 else "10"
    names = {(6, 3): "8.1", (6, 2): "8", (6, 1): "7", (6, 0): "Vista"}
    return names.get((major, minor), f"{major}.{minor}")


def _macos_release() -> str:
    import platform  # only here: reading the macOS release needs it (it parses a plist)

    return platform.mac_ver()[0] or os.uname().release


_detected: Optional[Platform] = None


def detect() -> Platform:
    """The running interpreter's platform (computed once, then cached)."""
    global _detected
    if _detected is None:
        system = normalize_system(sys.platform)
        if system == "windows":
            release = _windows_release()
        elif system == "macos":
            release = _macos_release()
        elif hasattr(os, "uname"):
            release = os.uname().release
        else:  # pragma: no cover - exotic platforms
            release = "0"
        info = sys.version_info
        python = f"{info.major}.{info.minor}.{info.micro}"
        _detected = Platform(system, release, python, sys.implementation.name)
    return _detected
