"""Imported by the opt-in start-up hook (loopcompat-auto.pth) when LOOPCOMPAT_AUTO=1.

Installs loopcompat with the configuration found from the current directory,
before the application runs. A configuration problem must not stop every
Python process on the machine: it is reported on stderr and nothing is
installed.
"""

from __future__ import annotations

import sys


def _install() -> None:
    try:
        from . import install

        install()
    except Exception as exc:  # anything: this runs inside site.py for every process
        print(f"loopcompat (LOOPCOMPAT_AUTO=1): not installed: {exc}", file=sys.stderr)


_install()
