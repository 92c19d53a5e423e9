"""The exceptions loopcompat raises.

    LoopCompatError
     +-- UnsupportedError (also NotImplementedError: existing handlers keep working)
     +-- ConfigError      (also ValueError: bad configuration or arguments)
"""

from __future__ import annotations

__all__ = ["LoopCompatError", "UnsupportedError", "ConfigError"]


class LoopCompatError(Exception):
    """Base class of every error loopcompat raises on purpose."""


class UnsupportedError(LoopCompatError, NotImplementedError):
    """A loop method or a declared need that this platform and loop cannot serve.

    The message names the method (or need), the loop class, the platform, the
    reason and the remedy.
    """


class ConfigError(LoopCompatError, ValueError):
    """Invalid configuration: a file, environment variable, argument or option."""
