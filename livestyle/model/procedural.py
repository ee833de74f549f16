"""Style images made by code, so the default styles need no file from outside.

Both are styles of the reference article: a mosaic (tiles of saturated colour set in
dark grout) and a pencil-sketch texture (graphite hatching on paper). They are
deterministic for a seed, so `builtin:mosaic` always means the same painting.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from livestyle.errors import LivestyleError

_MOSAIC_PALETTE = np.array(
    [
        (200, 40, 40), (230, 120, 30), (240, 200, 60), (40, 120, 190), (30, 60, 120),
        (60, 150, 90), (20, 90, 60), (150, 60, 140), (235, 225, 200), (120, 80, 50),
    ],
    np.float32,
)


def mosaic(size: int = 512, tiles: int = 900, seed: int = 0) -> np.ndarray:
    """Voronoi tiles coloured from a smooth field plus jitter, dark grout between them."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0, size, (tiles, 2))
    yy, xx = np.mgrid[0:size, 0:size]
    pix = np.stack([yy.ravel(), xx.ravel()], 1).astype(np.float32)
    dist, idx = cKDTree(pts).query(pix, k=2)
    # a low-frequency field picks neighbouring tiles' hues so regions form, as in tessellated murals
    field = np.sin(pts[:, 0] / size * 5.1 + 1.3) + np.cos(pts[:, 1] / size * 4.3) + rng.normal(0, 0.35, tiles)
    bins = np.digitize(field, np.quantile(field, np.linspace(0, 1, len(_MOSAIC_PALETTE) + 1)[1:-1]))
    colours = _MOSAIC_PALETTE[bins] * rng.uniform(0.8, 1.15, (tiles, 1))
    img = colours[idx[:, 0]]
    # grout where the two nearest seeds are almost equidistant
    edge = (dist[:, 1] - dist[:, 0]) < 2.2
    img[edge] = (35, 30, 28)
    img = img.reshape(size, size, 3)
    # per-pixel grain: glazed tiles are not flat
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def sketch(size: int = 512, strokes: int = 2600, seed: int = 0) -> np.ndarray:
    """Graphite hatching: bundles of short parallel strokes at a few angles on warm paper."""
    import cv2

    rng = np.random.default_rng(seed)
    paper = np.full((size, size), 242.0, np.float32) + rng.normal(0, 3, (size, size))
    ink = np.zeros((size, size), np.float32)
    angles = np.deg2rad(np.array([35.0, 125.0, 10.0, 80.0]))
    for _ in range(strokes // 6):
        cy, cx = rng.uniform(0, size, 2)
        a = angles[rng.integers(len(angles))] + rng.normal(0, 0.08)
        length = rng.uniform(18, 70)
        dark = rng.uniform(0.25, 1.0)
        # a hatch bundle: 6 parallel strokes, as a hand draws them
        for k in range(6):
            off = (k - 2.5) * rng.uniform(3.0, 5.0)
            oy, ox = cy + off * np.cos(a), cx - off * np.sin(a)
            dy, dx = np.sin(a) * length / 2, np.cos(a) * length / 2
            p0 = (int(ox - dx), int(oy - dy))
            p1 = (int(ox + dx), int(oy + dy))
            cv2.line(ink, p0, p1, float(dark * rng.uniform(0.6, 1.0)), 1, cv2.LINE_AA)
    ink = cv2.GaussianBlur(ink, (0, 0), 0.6)
    gray = paper * (1 - 0.75 * np.clip(ink, 0, 1.3) / 1.3)
    rgb = np.stack([gray * 1.0, gray * 0.98, gray * 0.94], -1)
    return np.clip(rgb, 0, 255).astype(np.uint8)


BUILTIN = {"mosaic": mosaic, "sketch": sketch}


def render(name: str, seed: int = 0) -> np.ndarray:
    if name not in BUILTIN:
        raise LivestyleError(f"builtin:{name}", f"no built-in style of that name (have {', '.join(BUILTIN)})")
    return BUILTIN[name](seed=seed)


def main(argv=None) -> int:
    """Write the built-in style images: python -m livestyle.model.procedural data/styles"""
    import sys
    from pathlib import Path

    from livestyle.images import save_png

    out = Path((argv or sys.argv[1:] or ["data/styles"])[0])
    for name in BUILTIN:
        save_png(out / f"{name}.png", render(name))
        print(out / f"{name}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
