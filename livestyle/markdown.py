"""Markdown tables: the one writer for the model card, the flow's reports, bench.md and sweep.md."""

from __future__ import annotations

from typing import Iterable, Sequence

_RULE = {"l": "---", "r": "---:"}  # the separator cell of a left- or right-aligned column


def row(cells: Sequence[str]) -> str:
    """One table line of cells already formatted as text: `| a | b |`. `table` writes
    each of its lines with it; a caller that prints rows as they are computed uses it alone.
    """
    return "| " + " | ".join(cells) + " |"


def table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str | None = None) -> str:
    """A GitHub-flavoured table of cells already formatted as text; no trailing newline.

    `align`: one letter a column, "l" (left, `---`) or "r" (right, `---:`, for numbers);
    all left when left out. A pipe or newline in a cell is the caller's to escape (each
    formats its own values).
    """
    align = "l" * len(header) if align is None else align
    if len(align) != len(header) or not set(align) <= set(_RULE):
        raise ValueError(f"align {align!r}: one of {'/'.join(_RULE)} for each of the {len(header)} columns")
    return "\n".join([row(header), "|" + "".join(_RULE[a] + "|" for a in align)] + [row(r) for r in rows])
