"""docs/flicker_frontier.csv (the runs behind ABLATIONS' flicker/colour picture) stays
readable, and the script remakes the picture from it."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("plot_flicker_frontier", ROOT / "scripts" / "plot_flicker_frontier.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_row_has_a_known_term_and_figures_in_range():
    mod = _module()
    rows = mod.read_rows(ROOT / "docs" / "flicker_frontier.csv")
    assert len(rows) >= 20
    for r in rows:
        assert r["term"] in mod.STYLE, r
        assert r["flicker"] > 0 and r["colour"] > 0 and 0 <= r["content"] <= 1 and 0 <= r["flat_pct"] <= 100, r
    # the baseline the bar is measured against is there
    assert any(r["term"] == "none" and r["label"] == "antialias 3" for r in rows)


def test_the_picture_is_written_atomically_as_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    mod = _module()
    out = tmp_path / "frontier.png"
    mod.plot(mod.read_rows(ROOT / "docs" / "flicker_frontier.csv"), out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["frontier.png"]
