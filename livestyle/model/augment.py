"""Overexposed training crops, so a filter learns to paint blown-out skies.

Phone frames and photos hold flat regions clipped at 255 (skies, windows, lamps);
training crops rarely do, and a filter that never saw them answers with a flat white or
cream blob of its own (docs/ABLATIONS.md section 8). A chosen share of each batch's
crops is brightened by a random gain and clipped, which makes exactly such regions;
the content target is the brightened crop, so the scene is kept and only the painting's
treatment of saturated areas is learned.

The gains are drawn on the host (the Keras loop) or on the device (livestyle.model.fastloop);
`overexpose` is written with array methods both NumPy and JAX arrays have.
"""

from __future__ import annotations

import numpy as np


def overexpose(batch, gains):
    """batch (N, H, W, 3, float 0..255) times a gain per crop, clipped at 255."""
    return (batch * gains[:, None, None, None]).clip(0.0, 255.0)


def host_gains(rng: np.random.Generator, n: int, prob: float, max_gain: float) -> np.ndarray | None:
    """One gain per crop: uniform in [1, max_gain] for a share `prob`, 1 for the rest;
    None when the augmentation is off (so no random numbers are drawn)."""
    if prob <= 0:
        return None
    picked = rng.random(n) < prob
    return np.where(picked, rng.uniform(1.0, max_gain, n), 1.0).astype(np.float32)
