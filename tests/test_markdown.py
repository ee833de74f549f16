"""livestyle.markdown: the one table writer (model card, flow reports, bench.md, sweep.md)."""

import pytest

from livestyle.markdown import row, table


def test_default_is_all_left_aligned():
    assert table(["a", "b"], [["1", "2"], ["3", ""]]) == "| a | b |\n|---|---|\n| 1 | 2 |\n| 3 |  |"
    assert table(["a", "b"], [], align="ll") == table(["a", "b"], [])


def test_alignment_row_has_one_cell_per_column():
    md = table(["runtime", "median ms", "meets budget"], [["keras", "12.5", "yes"]], align="lrl")
    assert md.splitlines() == ["| runtime | median ms | meets budget |", "|---|---:|---|", "| keras | 12.5 | yes |"]


@pytest.mark.parametrize("align", ["lr", "lrll", "lcr"])
def test_alignment_must_name_each_column_l_or_r(align):
    with pytest.raises(ValueError, match="3 columns"):
        table(["a", "b", "c"], [], align=align)


def test_row_joins_cells_between_pipes():
    assert row(["keras", "12.5", ""]) == "| keras | 12.5 |  |"
    assert row(["only"]) == "| only |"


def test_table_is_header_alignment_and_rows_each_a_row():
    """A caller streaming rows with row() prints what table() would have put under its header."""
    header, rows = ["clip", "ratio"], [["fox", "6.40"], ["cat", "1.00"]]
    assert table(header, rows, align="lr").splitlines() == [row(header), "|---|---:|"] + [row(r) for r in rows]
