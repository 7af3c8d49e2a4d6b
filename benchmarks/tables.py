"""Print benchmark results as Markdown tables, ready for the docs."""

from __future__ import annotations

import pandas as pd


def markdown_table(table: pd.DataFrame, digits: int = 4) -> str:
    """Return ``table`` as a GitHub Markdown table; floats to ``digits`` places."""

    def cell(value: object) -> str:
        if value is None:
            return "n/a"
        if isinstance(value, float):
            return "n/a" if pd.isna(value) else f"{value:.{digits}g}"
        return str(value)

    header = [str(column) for column in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(cell(value) for value in row) + " |")
    return "\n".join(lines)
