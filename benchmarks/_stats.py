"""Shared by the benchmark scripts: summary statistics, Markdown rows, benchmark venvs."""

from __future__ import annotations

import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Sequence

LOOPCOMPAT_DEPENDENCIES = ("packaging", "platformdirs", "tomli; python_version < '3.11'")


def bench_venv(python: str, name: str, extra: Sequence[str] = ()) -> str:
    """The python of a cached venv (~/.cache/loopcompat/bench-venvs/NAME) made from ``python``,
    holding loopcompat's dependencies and ``extra`` only: no host site-packages or .pth hooks."""
    exe = Path.home() / ".cache" / "loopcompat" / "bench-venvs" / name / "bin" / "python"
    if not exe.exists():
        subprocess.run([python, "-m", "venv", str(exe.parent.parent)], check=True)
        subprocess.run([str(exe), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        *LOOPCOMPAT_DEPENDENCIES, *extra], check=True)
    return str(exe)


def summarize(samples: Sequence[float]) -> Dict[str, float]:
    ordered = sorted(samples)
    quartiles = statistics.quantiles(ordered, n=4) if len(ordered) >= 4 else [ordered[0], 0, ordered[-1]]
    return {"median": statistics.median(ordered), "q1": quartiles[0], "q3": quartiles[-1], "n": len(ordered)}


def machine() -> str:
    return f"{platform.system()} {platform.release()}, {platform.machine()}, CPython {sys.version.split()[0]}"


def table(header: Sequence[str], rows: List[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
