"""The opt-in start-up hook: a .pth file that installs loopcompat when LOOPCOMPAT_AUTO=1.

site.py executes .pth lines that start with ``import``; ours costs one
environment lookup when the variable is not set, and imports loopcompat only
when it is. For applications whose command line cannot change.
"""

from __future__ import annotations

import os
import sysconfig
from typing import Optional

PTH_NAME = "loopcompat-auto.pth"
PTH_LINE = "import os; os.environ.get('LOOPCOMPAT_AUTO') == '1' and __import__('loopcompat._auto')\n"


def site_dir(target: Optional[str] = None) -> str:
    return target or sysconfig.get_paths()["purelib"]


def install_hook(target: Optional[str] = None) -> str:
    """Write the .pth file into ``target`` (default: this interpreter's site-packages); return its path."""
    path = os.path.join(site_dir(target), PTH_NAME)
    with open(path, "w", encoding="utf-8") as f:
        f.write(PTH_LINE)
    return path


def remove_hook(target: Optional[str] = None) -> Optional[str]:
    """Delete the .pth file; return its path, or None when there was none."""
    path = os.path.join(site_dir(target), PTH_NAME)
    try:
        os.remove(path)
    except FileNotFoundError:
        return None
    return path


def hook_status(target: Optional[str] = None) -> Optional[str]:
    path = os.path.join(site_dir(target), PTH_NAME)
    return path if os.path.isfile(path) else None
