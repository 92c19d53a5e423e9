"""`loopcompat matrix`: the knowledge base as a table (docs/matrix.md is its Markdown form)."""

from __future__ import annotations

from typing import Any, Dict, List

from . import _knowledge as kb


def matrix_rows() -> List[Dict[str, Any]]:
    rows = []
    for rule in kb.RULES:
        rows.append(
            {
                "fact": rule.fact,
                "summary": rule.summary,
                "effect": rule.effect,
                "systems": list(rule.systems) or ["all"],
                "except_systems": list(rule.except_systems),
                "python": rule.python or "any",
                "release": rule.release or "any",
                "loops": list(rule.loops) or ["any"],
                "selectors": list(rule.selectors) or ["any"],
                "features": list(rule.features),
                "methods": list(rule.methods),
                "fallback": rule.fallback,
                "limit": rule.limit,
                "value": rule.value,
                "reason": rule.reason,
                "remedy": rule.remedy,
                "source": rule.source,
            }
        )
    return rows


def matrix_markdown() -> str:
    """The knowledge base as a Markdown table (docs/matrix.md is this output)."""
    lines = [
        "# Capability matrix",
        "",
        "Generated from the knowledge base (`loopcompat/_knowledge.py`) by",
        "`python -m loopcompat matrix > docs/matrix.md`; a test fails when this copy is stale.",
        "Facts S1-S16 are those of the product specification; X facts are further facts",
        "that plans and guards rely on.",
        "",
        "| fact | platform | Python | loop / selector | what | fallback | remedy | source |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in matrix_rows():
        systems = ", ".join(row["systems"])
        if row["except_systems"]:
            systems += " except " + ", ".join(row["except_systems"])
        if row["release"] != "any":
            systems += f" {row['release']}"
        where = ", ".join(row["loops"])
        if row["selectors"] != ["any"]:
            where += " / " + ", ".join(row["selectors"])
        cells = [row["fact"], systems, row["python"], where, row["summary"], row["fallback"] or "",
                 row["remedy"], row["source"]]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
