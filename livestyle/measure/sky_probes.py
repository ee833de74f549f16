"""Synthetic skies that show whether a filter paints flat blobs over smooth clouds.

Trained filters fail on large smooth regions: a flat white, cream or black blob over a
bright or dark cloud (docs/ABLATIONS.md sections 8, 14, 22), which comes and goes with the
seed. Photos rarely hold such a region, so a judge on held-out photos misses it (the
Scream runs of round 47 scored flat 0 on four held-out photos each, yet two painted a
black blob over chicago.jpg's dark cloud). These probes are made by code: a blue gradient
sky with smooth clouds, white to near black, a little sensor noise; each seed a new sky.
A probe is scored by `quality.flat_area` of the stylized frame: a blob is a flat patch.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import ndimage

from livestyle.measure.quality import flat_area

PROBE_SIZE = (474, 712)  # chicago.jpg's size: clouds 50-150 px, as the blobs were seen
# 0..255, a camera's noise on a smooth sky, the same on the three channels: its luminance
# std (2.5) stays clear of quality.FLAT_STD (1.0), so the probe itself is never flat
NOISE_STD = 2.5


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    f = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="reflect")
    return (f - f.mean()) / (f.std() + 1e-9)


def sky_probe(seed: int, size: tuple[int, int] = PROBE_SIZE) -> np.ndarray:
    """One synthetic sky, (H, W, 3) float32 0..255: the same seed gives the same sky."""
    rng = np.random.default_rng(seed)
    h, w = size
    t = np.linspace(0.0, 1.0, h)[:, None, None]
    zenith = np.array([60.0, 110.0, 190.0]) * rng.uniform(0.6, 1.2)
    horizon = np.array([190.0, 210.0, 235.0])
    image = zenith * (1 - t) + horizon * t + np.zeros((h, w, 3))
    # cloud cover: a smooth field, thresholded softly; its shade a second smooth field
    density = np.clip(_smooth_field(rng, size, rng.uniform(25, 60)) * 0.8 - rng.uniform(-0.3, 0.5), 0, 1)[..., None]
    shade = _smooth_field(rng, size, 40)[..., None]
    grey = np.clip(150 + 80 * shade * rng.uniform(0.5, 1.5) - rng.uniform(0, 90), 25, 245)
    image = image * (1 - density) + grey * density + rng.normal(0, NOISE_STD, (h, w, 1))
    return np.clip(image, 0, 255).astype(np.float32)


def probe_flat_areas(stylize: Callable[[np.ndarray], np.ndarray], count: int, seed: int = 0,
                     size: tuple[int, int] = PROBE_SIZE) -> list[float]:
    """flat_area of the stylized frame of each of `count` probes (seeds seed..seed+count-1);
    `stylize`: a (1, H, W, 3) float batch -> the same."""
    shares = []
    for k in range(count):
        frame = np.asarray(stylize(sky_probe(seed + k, size)[None]))[0]
        shares.append(flat_area(np.clip(frame, 0, 255)))
    return shares


def sky_blob_figures(stylize: Callable[[np.ndarray], np.ndarray], count: int) -> dict[str, float]:
    """How a filter paints `count` probes: {count, blotted (probes with a flat blob),
    mean_flat_area}. The quality stage reports it; the choice among runs ranks by blotted."""
    shares = probe_flat_areas(stylize, count)
    return {"count": len(shares), "blotted": sum(a > 0 for a in shares), "mean_flat_area": float(np.mean(shares))}
