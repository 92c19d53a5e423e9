"""loopcompat: asyncio that behaves the same on Windows, macOS and Linux.

Declare what your application needs; loopcompat plans the right event loop
and selector for this platform, builds it, and makes every loop method either
work (through a fallback) or fail with an error that says why and what to do::

    import loopcompat
    loopcompat.install(needs=["subprocess", "add_reader"])
    asyncio.run(main())
"""

from __future__ import annotations

from ._api import adopt, install, loop_factory, new_event_loop, plan, run, uninstall
from ._errors import ConfigError, LoopCompatError, UnsupportedError
from ._plan import Plan, Support
from ._platform import Platform, detect

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "LoopCompatError",
    "Plan",
    "Platform",
    "Support",
    "UnsupportedError",
    "__version__",
    "adopt",
    "detect",
    "install",
    "loop_factory",
    "new_event_loop",
    "plan",
    "run",
    "uninstall",
]
