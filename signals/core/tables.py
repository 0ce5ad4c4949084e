"""Plain fixed-width text tables: what the CLI and the run summary print (greppable, no dependency)."""

from __future__ import annotations

from typing import Any, Iterable


def format_table(rows: Iterable[dict[str, Any]], columns: list[str] | None = None) -> list[str]:
    """Header, rule and one line per row; floats with 4 significant digits, None as blank."""
    rows = list(rows)
    if not rows:
        return ["(no rows)"]
    cols = columns or list(rows[0].keys())

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return "" if v is None else str(v)

    cells = [[fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return lines
