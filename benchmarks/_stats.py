"""Shared by the benchmark scripts: summary statistics and Markdown rows."""

from __future__ import annotations

import platform
import statistics
import sys
from typing import Dict, List, Sequence


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
