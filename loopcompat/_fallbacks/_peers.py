"""Libraries that bring their own selector thread to Windows' proactor loop: point them at ours.

tornado (6.1+) and pyzmq (17+) decide by ``isinstance(loop,
asyncio.ProactorEventLoop)`` rather than by trying ``add_reader``, and then
start a select() thread of their own (tornado's ``AddThreadSelectorEventLoop``,
which pyzmq borrows). loopcompat's proactor loop with the selector_thread
fallback is a ProactorEventLoop (other code relies on that) whose add_reader
works, so without this module it would run two readiness mechanisms, one of
them with select()'s 512-socket cap. anyio and CPython try ``add_reader``
first and need nothing here.

Applied on Windows once the selector_thread fallback is first built, to each
library as it is imported (now, or later through an import hook).
Each patch only answers for loops that carry the fallback, and hands every
other loop to the library's own code; if a library changes shape, the patch
does nothing and the library keeps its thread (which still works).
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Callable, Dict, Optional

PATCHED = "_loopcompat_patched"  # marks the functions put in place here

# The mixin whose loops have a working add_reader (set by share_add_reader()).
_fallback_class: type = type(None)


def _has_fallback(loop: Any) -> bool:
    return isinstance(loop, _fallback_class)


def patch_tornado(module: Any) -> None:
    """``AddThreadSelectorEventLoop(loop)`` returns the loop itself when its add_reader is ours.

    tornado then finds ``selector_loop is asyncio_loop``: it calls the loop's
    add_reader and closes the loop once. (``__init__`` is skipped, because the
    object returned is not an instance of the class.)
    """
    cls = getattr(module, "AddThreadSelectorEventLoop", None)
    if not isinstance(cls, type) or "__new__" in vars(cls):
        return  # not the class we know, or patched already

    def __new__(klass: type, real_loop: Any, *args: Any, **kwargs: Any) -> Any:
        if _has_fallback(real_loop):
            return real_loop
        return object.__new__(klass)

    setattr(__new__, PATCHED, True)
    cls.__new__ = staticmethod(__new__)  # type: ignore[assignment]


def patch_pyzmq(module: Any) -> None:
    """``zmq.asyncio`` asks ``_get_selector(loop)`` for an object with add_reader: ours is the loop.

    (Without this, pyzmq would also warn that it starts an extra thread.)
    """
    original = getattr(module, "_get_selector", None)
    if not callable(original) or getattr(original, PATCHED, False):
        return

    def _get_selector(loop: Any) -> Any:
        return loop if _has_fallback(loop) else original(loop)

    setattr(_get_selector, PATCHED, True)
    module._get_selector = _get_selector


PATCHES: Dict[str, Callable[[Any], None]] = {
    "tornado.platform.asyncio": patch_tornado,
    "zmq.asyncio": patch_pyzmq,
}


def _apply(patch: Callable[[Any], None], module: Any) -> None:
    """A patch that fails leaves the library as it was: it must never break an import."""
    try:
        patch(module)
    except Exception as exc:  # noqa: BLE001 - the library keeps its own thread, which works
        from asyncio.log import logger

        logger.debug("loopcompat: could not point %s at the selector_thread fallback: %r", module.__name__, exc)


class _PatchingLoader:
    """A module's own loader, then the patch once the module has executed."""

    def __init__(self, loader: Any, patch: Callable[[Any], None]) -> None:
        self._loader = loader
        self._patch = patch

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._loader.exec_module(module)
        _apply(self._patch, module)

    def __getattr__(self, name: str) -> Any:  # resource readers, get_source, ...
        try:
            loader = self.__dict__["_loader"]
        except KeyError:  # (a copy being made: __init__ has not run)
            raise AttributeError(name) from None
        return getattr(loader, name)


class _AfterImport:
    """A meta path finder that finds nothing itself: it wraps the loader of the modules to patch.

    The import system consults it only for modules not imported yet (and on
    reload, which re-creates the patched objects: they are patched again). It
    stays on sys.meta_path, a dictionary lookup per import: removing it could
    make an import running in another thread skip the finder after it.
    """

    def __init__(self, patches: Dict[str, Callable[[Any], None]]) -> None:
        self.patches = patches
        self._finding = threading.local()

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Optional[Any]:
        patch = self.patches.get(name)
        if patch is None or getattr(self._finding, "active", False):
            return None
        self._finding.active = True
        try:
            spec = None
            for finder in list(sys.meta_path):
                if finder is not self and hasattr(finder, "find_spec"):
                    spec = finder.find_spec(name, path, target)
                    if spec is not None:
                        break
        finally:
            self._finding.active = False
        if spec is None or not hasattr(spec.loader, "exec_module"):
            return None
        # (A find_spec() that only probes costs nothing: the patch comes when the module executes.)
        spec.loader = _PatchingLoader(spec.loader, patch)
        return spec


_started = False


def share_add_reader(fallback_class: type) -> None:
    """Point the libraries at the add_reader of ``fallback_class``'s loops: those already imported
    now, the others when they are (once per process)."""
    global _started, _fallback_class
    if _started:
        return
    _started = True
    _fallback_class = fallback_class
    later = {}
    for name, patch in PATCHES.items():
        module = sys.modules.get(name)
        if module is not None:
            _apply(patch, module)
        else:
            later[name] = patch
    if later:
        sys.meta_path.insert(0, _AfterImport(later))  # type: ignore[arg-type]
