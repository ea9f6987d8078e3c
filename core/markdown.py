"""Markdown tables for the reports every command writes (train, converters, benchmarks)."""
from __future__ import annotations

from typing import Sequence


def table_head(columns: Sequence[str]) -> list[str]:
    """The header row and the separator row of a Markdown table with these columns."""
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
