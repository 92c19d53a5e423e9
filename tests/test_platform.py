from __future__ import annotations

import os
import sys

import pytest

import loopcompat
from loopcompat import ConfigError, Platform
from loopcompat._platform import version_tuple


@pytest.mark.parametrize(
    "text, expected",
    [("3.13", (3, 13)), ("3.13.0", (3, 13, 0)), ("6.1.0-13-amd64", (6, 1, 0)), ("10", (10,)), ("8.1", (8, 1)),
     ("3.14.0rc1", (3, 14, 0)), ("22.04LTS", (22, 4))],
)
def test_version_tuple_takes_the_numeric_head(text, expected):
    assert version_tuple(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "v3", ".5"])
def test_version_tuple_rejects_non_versions(text):
    with pytest.raises(ValueError):
        version_tuple(text)


@pytest.mark.parametrize(
    "given, expected",
    [("win32", "windows"), ("Windows", "windows"), ("darwin", "macos"), ("macOS", "macos"),
     ("linux", "linux"), ("freebsd13", "freebsd"), ("sunos5", "sunos")],
)
def test_system_names_are_normalized(given, expected):
    assert Platform(given, "10", "3.12").system == expected


def test_platform_is_immutable_hashable_and_prints_like_the_messages():
    p = Platform("windows", "10", "3.13.2")
    assert str(p) == "Windows 10, CPython 3.13"
    assert p == Platform("win32", "10", "3.13.2") and hash(p) == hash(Platform("win32", "10", "3.13.2"))
    assert p != Platform("windows", "11", "3.13.2")
    assert eval(repr(p), {"Platform": Platform}) == p
    with pytest.raises(AttributeError):
        p.system = "linux"  # type: ignore[misc]
    assert p.to_dict() == {"system": "windows", "release": "10", "python": "3.13.2", "implementation": "cpython"}
    assert str(Platform("darwin", "10.8", "3.9", "PyPy")) == "macOS 10.8, PyPy 3.9"


@pytest.mark.parametrize("kwargs", [dict(python="three"), dict(python="3"), dict(release="")])
def test_bad_platform_values_raise_config_error(kwargs):
    args = dict(system="linux", release="6.1", python="3.12")
    args.update(kwargs)
    with pytest.raises(ConfigError, match="Platform"):
        Platform(**args)


def test_detect_reads_this_interpreter():
    p = loopcompat.detect()
    assert p is loopcompat.detect()  # computed once
    assert p.python_version[:3] == tuple(sys.version_info[:3])
    assert p.implementation == sys.implementation.name
    if sys.platform == "win32":
        assert p.system == "windows"
        win = sys.getwindowsversion()
        assert p.release == ("11" if win.major == 10 and win.build >= 22000 else "10" if win.major == 10 else p.release)
    elif sys.platform == "darwin":
        import platform

        assert p.system == "macos" and p.release == platform.mac_ver()[0]
    else:
        assert p.system == sys.platform.rstrip("0123456789")
        assert p.release == os.uname().release
