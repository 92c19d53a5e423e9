"""The exceptions loopcompat raises.

    LoopCompatError
     +-- UnsupportedError (also NotImplementedError: existing handlers keep working)
     +-- ConfigError      (also ValueError: bad configuration or arguments)
"""

from __future__ import annotations

__all__ = ["LoopCompatError", "UnsupportedError", "ConfigError"]

# Each class says it lives in the package, where users import it from: tracebacks then read
# "loopcompat.UnsupportedError: ...", as the documentation shows, and pickle finds the class
# through the public name (loopcompat/__init__.py re-exports all three).


class LoopCompatError(Exception):
    """Base class of every error loopcompat raises on purpose."""

    __module__ = "loopcompat"


class UnsupportedError(LoopCompatError, NotImplementedError):
    """A loop method or a declared need that this platform and loop cannot serve.

    The message names the method (or need), the loop class, the platform, the
    reason and the remedy.
    """

    __module__ = "loopcompat"


class ConfigError(LoopCompatError, ValueError):
    """Invalid configuration: a file, environment variable, argument or option."""

    __module__ = "loopcompat"
