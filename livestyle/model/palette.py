"""The painting's palette, calibrated after training: one linear colour map per style.

A trained filter paints the painting's strokes but not quite its colours: GPU-trained
Scream filters come out paler and less blue-black than the painting, more so with the
temporal term (docs/ABLATIONS.md section 19). The map is the linear Monge-Kantorovich
transport between two Gaussians (Pitie & Kokaram 2007): from the colours the filter
paints over the training photos to the painting's colours, x -> A (x - mu_f) + mu_p,
with A symmetric positive definite. It is fitted once per style on training photos
only, and applied per pixel inside the model (a 3x3 matrix and an offset: no cost on
the frame budget, and a pointwise map adds no flicker of its own, though its gain
scales the flicker the filter has).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from livestyle.atomic import atomic_path
from livestyle.errors import LivestyleError

PALETTE_FILE = "palette.json"  # next to the trained weights
_RIDGE = 1.0  # added to both covariances (0..255 units): a flat painting or filter stays invertible


def _sqrtm_spd(c: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(c)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def transport_map(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(A, b) of the linear optimal transport from source pixels (N, 3) to target pixels
    (M, 3): y = x @ A.T + b moves source's mean and covariance onto target's."""
    mu_s, mu_t = source.mean(0), target.mean(0)
    cs = np.cov(source.T) + _RIDGE * np.eye(3)
    ct = np.cov(target.T) + _RIDGE * np.eye(3)
    s_half = _sqrtm_spd(cs)
    s_ihalf = np.linalg.inv(s_half)
    a = s_ihalf @ _sqrtm_spd(s_half @ ct @ s_half) @ s_ihalf
    return a, mu_t - a @ mu_s


def blended(matrix, offset, strength: float) -> tuple[np.ndarray, np.ndarray]:
    """The map at `strength` (0: identity, 1: the full map), a straight blend of the two."""
    m = (1 - strength) * np.eye(3) + strength * np.asarray(matrix, np.float64)
    return m, strength * np.asarray(offset, np.float64)


def apply_map(rgb: np.ndarray, matrix, offset) -> np.ndarray:
    """(..., 3) 0..255 -> same, mapped and clipped."""
    x = np.asarray(rgb, np.float32)
    y = x @ np.asarray(matrix, np.float32).T + np.asarray(offset, np.float32)
    return np.clip(y, 0, 255)


def sample_pixels(image: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    flat = np.asarray(image, np.float64).reshape(-1, 3)
    return flat[rng.choice(len(flat), min(count, len(flat)), replace=False)]


def fit_palette(stylize: Callable[[np.ndarray], np.ndarray], photos: Iterable[np.ndarray], painting: np.ndarray,
                pixels: int = 4000, seed: int = 0) -> dict:
    """The map from the filter's colours over `photos` (each (H, W, 3) 0..255; `stylize`
    takes a (1, H, W, 3) float batch) to the painting's. Returns the palette record."""
    rng = np.random.default_rng(seed)
    painted = [sample_pixels(np.clip(stylize(np.asarray(p, np.float32)[None])[0], 0, 255), pixels, rng) for p in photos]
    if not painted:
        raise LivestyleError("palette", "no photos to fit the palette on: dvc repro prepare")
    source = np.concatenate(painted)
    target = sample_pixels(painting, pixels * len(painted), rng)
    a, b = transport_map(source, target)
    return {"matrix": a.round(6).tolist(), "offset": b.round(4).tolist(), "photos": len(painted),
            "filter_mean": source.mean(0).round(2).tolist(), "painting_mean": target.mean(0).round(2).tolist()}


def training_photos(folder: Path, count: int) -> list[Path]:
    """`count` photos spread evenly over the prepared training set (its order is fixed)."""
    paths = sorted(p for p in Path(folder).glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not paths:
        raise LivestyleError(folder, "no training photos to fit the palette on: dvc repro prepare")
    step = max(1, len(paths) // count)
    return paths[::step][:count]


def save_palette(path: Path, record: dict) -> None:
    with atomic_path(Path(path)) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=1) + "\n")


def load_palette(weights: Path) -> dict | None:
    """The palette next to a trained filter's weights; None where there is none (filters
    trained before it, or outside the DAG)."""
    path = Path(weights).with_name(PALETTE_FILE)
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
        matrix, offset = np.asarray(record["matrix"], float), np.asarray(record["offset"], float)
    except (ValueError, KeyError, TypeError) as e:
        raise LivestyleError(path, f"not a palette record ({e}): rerun the style's train stage") from None
    if matrix.shape != (3, 3) or offset.shape != (3,) or not np.isfinite(matrix).all() or not np.isfinite(offset).all():
        raise LivestyleError(path, "expected a 3x3 matrix and 3 offsets: rerun the style's train stage")
    return {**record, "matrix": matrix, "offset": offset}
