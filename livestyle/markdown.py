"""Markdown tables: the one writer for the model card and the flow's reports."""

from __future__ import annotations

from typing import Iterable, Sequence


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A GitHub-flavoured table of cells already formatted as text; no trailing newline.

    A pipe or newline in a cell is the caller's to escape (each formats its own values).
    """
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
