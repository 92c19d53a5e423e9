"""Fallback registry: which fallbacks this release ships, and where each lives.

A fallback is a mixin class whose methods replace the stock loop methods of
the feature it covers (see ``_vocab.FEATURE_METHODS``). The planner reads only
:data:`READY` (data, no import of any loop code); the builder imports a
fallback's module lazily, the first time a plan names it.
"""

from __future__ import annotations

import importlib
from typing import Dict, FrozenSet, Optional, Type

# fallback name -> "module:Class" of its mixin. A name from _vocab.FALLBACKS
# that is absent here is planned but not shipped yet: the plan reports the
# feature as unsupported and the guard raises UnsupportedError saying so.
_MIXINS: Dict[str, str] = {
    "threaded_subprocess": "._threaded_subprocess:ThreadedSubprocessMixin",
    "threaded_pipes": "._threaded_pipes:ThreadedPipesMixin",
    "signal_bridge": "._signal_bridge:SignalBridgeMixin",
    "selector_thread": "._selector_thread:SelectorThreadMixin",
}

READY: FrozenSet[str] = frozenset(_MIXINS)

# Relative cost of each fallback, used to break ties between loops that meet
# the same needs: one shared thread is cheaper than a thread per process/pipe.
COST: Dict[str, int] = {
    "signal_bridge": 1,
    "selector_thread": 1,
    "threaded_pipes": 2,
    "threaded_subprocess": 2,
}


def mixin(name: str) -> Optional[Type[object]]:
    """The mixin class of a shipped fallback, imported on first use."""
    target = _MIXINS.get(name)
    if target is None:
        return None
    module_name, _, class_name = target.partition(":")
    module = importlib.import_module(module_name, __name__)
    return getattr(module, class_name)  # type: ignore[no-any-return]
