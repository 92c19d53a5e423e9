"""Shared test helpers: which real platform the suite runs on."""

from __future__ import annotations

import ctypes
import sys

import pytest

IS_WINDOWS = sys.platform == "win32"


def _under_wine() -> bool:
    if not IS_WINDOWS:
        return False
    try:
        return hasattr(ctypes.WinDLL("ntdll"), "wine_get_version")  # type: ignore[attr-defined]
    except OSError:
        return False


UNDER_WINE = _under_wine()

windows_only = pytest.mark.skipif(not IS_WINDOWS, reason="Windows-only behaviour: runs under the Windows test bed")
posix_only = pytest.mark.skipif(IS_WINDOWS, reason="POSIX-only behaviour (no such API on Windows)")


@pytest.fixture(autouse=True)
def _no_leftover_install():
    """Every test starts and ends with loopcompat uninstalled."""
    import loopcompat

    loopcompat.uninstall()
    yield
    loopcompat.uninstall()
