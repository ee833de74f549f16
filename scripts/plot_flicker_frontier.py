"""Flicker against colour for every The Scream filter whose flicker was measured.

    python scripts/plot_flicker_frontier.py [docs/flicker_frontier.csv] [docs/img/flicker_frontier.png]

Issue 12's bar is a flicker ratio of at most 2x on fox.mp4 with quality no worse than
the same network without the temporal term; the plot shows how far each run is from
both, and the peer's colour distance for scale. Rows come from docs/ABLATIONS.md's
tables (sections 13-17), kept in the CSV so the picture is remade from one file.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from livestyle.images import save_figure  # noqa: E402

PEER_COLOUR = 7.47  # lengstrom's published chicago x The Scream, same measure
# term -> (marker, colour, legend label)
STYLE = {"none": ("o", "#444444", "no temporal term"), "white": ("s", "#1f77b4", "term, white noise"),
         "grain": ("^", "#d62728", "term, grain"), "warp": ("D", "#ff7f0e", "term, warp moves, white noise"),
         "warp+grain": ("v", "#8c564b", "term, warp moves, grain"),
         "warp+norm": ("P", "#2ca02c", "term, warp moves, normalised"),
         "warp-quiet": ("X", "#9467bd", "term, warp moves, no noise"),
         "palette": ("*", "#e377c2", "palette map on (section 19; label names the filter)"),
         "colour": ("h", "#17becf", "term + colour term 10 (section 20)")}


def read_rows(path: Path) -> list[dict]:
    lines = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
    rows = list(csv.DictReader(lines))
    for r in rows:
        for k in ("texture", "colour", "content", "flat_pct", "flicker"):
            r[k] = float(r[k])
    return rows


def plot(rows: list[dict], out: Path) -> None:
    fig, ax = plt.subplots(figsize=(9, 6))
    # the bar: under 2x, and no worse colour than the network without the term (seeds 0, 1)
    no_term = [r["colour"] for r in rows if r["term"] == "none" and r["label"] == "antialias 3"]
    bottom = min(r["colour"] for r in rows) - 1
    ax.add_patch(plt.Rectangle((0, bottom), 2.0, max(no_term) - bottom, color="#2ca02c", alpha=0.12,
                               label="issue 12's bar: <= 2x, colour no worse"))
    for c in no_term:
        ax.axhline(c, color="#444444", lw=0.8, ls="--")
    ax.axhline(PEER_COLOUR, color="#9467bd", lw=0.8, ls=":", label=f"peer's colour ({PEER_COLOUR})")
    for term, (marker, colour, label) in STYLE.items():
        sel = [r for r in rows if r["term"] == term]
        ax.scatter([r["flicker"] for r in sel], [r["colour"] for r in sel], marker=marker, c=colour, s=40,
                   label=label)
        for r in sel:
            ax.annotate(f"{r['label']} s{r['seed']}", (r["flicker"], r["colour"]), fontsize=6, xytext=(3, 2),
                        textcoords="offset points", color=colour)
    ax.set_xlabel("flicker on fox.mp4 (warping error over the input's; lower is steadier)")
    ax.set_ylabel("colour distance to the painting on chicago.jpg (lower is closer)")
    ax.set_title("The Scream: steadier filters have paler skies (dashed: antialias 3 without the term, one line per seed)")
    ax.set_xlim(0, max(r["flicker"] for r in rows) * 1.05)
    ax.set_ylim(bottom, max(r["colour"] for r in rows) + 0.5)
    ax.legend(fontsize=7, loc="upper right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out, dpi=110)


def main() -> None:
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/flicker_frontier.csv")
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "docs/img/flicker_frontier.png")
    plot(read_rows(src), out)
    print(out)


if __name__ == "__main__":
    main()
