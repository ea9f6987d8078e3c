"""Markdown tables for the reports every command writes (train, converters, benchmarks)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence


def table_head(columns: Sequence[str]) -> list[str]:
    """The header row and the separator row of a Markdown table with these columns."""
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]


def replace_section(doc: Path, key: str, text: str) -> None:
    """Put `text` between the <!-- key --> and <!-- /key --> markers of a Markdown page (appended if absent)."""
    start, end = f"<!-- {key} -->", f"<!-- /{key} -->"
    page = doc.read_text() if doc.exists() else ""
    block = f"{start}\n{text}{end}"
    if start in page and end in page:
        page = page[:page.index(start)] + block + page[page.index(end) + len(end):]
    else:
        page = page.rstrip() + "\n\n" + block + "\n"
    doc.write_text(page)
