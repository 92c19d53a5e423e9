"""Shared test helpers: which real platform the suite runs on."""

from __future__ import annotations

import ctypes
import os
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
def _isolated(monkeypatch, tmp_path_factory):
    """Every test starts uninstalled, with no LOOPCOMPAT_* variables, an empty user config
    directory and its own start-up cache, so the developer's own configuration never leaks in."""
    import loopcompat

    for name in list(os.environ):
        if name.startswith("LOOPCOMPAT_") and name != "LOOPCOMPAT_WINBED" and not name.startswith("LOOPCOMPAT_WINBED_"):
            monkeypatch.delenv(name)
    home = tmp_path_factory.mktemp("home")
    for name in ("XDG_CONFIG_HOME", "APPDATA", "LOCALAPPDATA"):
        monkeypatch.setenv(name, str(home / "config"))
    monkeypatch.setenv("LOOPCOMPAT_CACHE_DIR", str(home / "cache"))
    monkeypatch.setenv("LOOPCOMPAT_USER_CONFIG", str(home / "config" / "loopcompat" / "config.toml"))
    loopcompat.uninstall()
    yield
    loopcompat.uninstall()
