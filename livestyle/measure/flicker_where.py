"""Where a filter's flicker comes from: its warping error split by how flat the frame is.

The preview stage's figure (livestyle.measure.flicker) is one number per clip. Binning
each trusted pixel of each frame pair by the local contrast of the ORIGINAL frame (the
std of its luminance in a small window) says whether the stylized frames change where
the input has detail that really moves, or where it is flat and the network invents
strokes from noise. Each bin reports its share of the pixels, the stylized and original
warping errors there, their ratio, and its share of the whole stylized error; a mean
error map shows the same in a picture.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from livestyle.measure.flicker import FlickerMeter

# local luminance std (0..1) bounds: on fox.mp4 the wall and the sheet fall under 0.01
# (58 % of the pixels) and only edges (the eye, the ear, the garland) over 0.05 (8 %)
DEFAULT_EDGES = (0.0, 0.01, 0.02, 0.05, np.inf)


def local_contrast(rgb01: np.ndarray, window: int = 9) -> np.ndarray:
    """Std of luminance in a window x window box around each pixel (rgb in 0..1)."""
    y = cv2.cvtColor(np.ascontiguousarray(rgb01, np.float32), cv2.COLOR_RGB2GRAY)
    mean = cv2.blur(y, (window, window))
    sq = cv2.blur(y * y, (window, window))
    return np.sqrt(np.maximum(sq - mean * mean, 0.0))


@dataclass
class FlickerWhereMeter(FlickerMeter):
    """FlickerMeter that also splits each pair's error by the original frame's local contrast."""

    edges: tuple[float, ...] = DEFAULT_EDGES
    window: int = 9
    sums: dict = field(default_factory=dict)  # name -> per-bin sums over pairs
    error_map: np.ndarray | None = None  # sum of the stylized error per pixel (trusted pixels)
    pairs_mapped: int = 0

    def __post_init__(self):
        super().__post_init__()
        n = len(self.edges) - 1
        self.sums = {k: np.zeros(n, np.float64) for k in ("pixels", "stylized", "original")}

    def update(self, original: np.ndarray, stylized: np.ndarray) -> None:
        self.last_pair = None
        super().update(original, stylized)
        if self.last_pair is None:
            return
        o, err_s, err_o, mask = self.last_pair
        bins = np.digitize(local_contrast(o, self.window), self.edges[1:-1])
        for k, err in (("stylized", err_s), ("original", err_o)):
            self.sums[k] += np.bincount(bins[mask], weights=err[mask], minlength=len(self.edges) - 1)
        self.sums["pixels"] += np.bincount(bins[mask], minlength=len(self.edges) - 1)
        masked = np.where(mask, err_s, 0.0)
        self.error_map = masked if self.error_map is None else self.error_map + masked
        self.pairs_mapped += 1

    def by_contrast(self) -> list[dict]:
        """One row per contrast bin: pixel share, mean errors, ratio, share of the stylized error."""
        px, sty, org = self.sums["pixels"], self.sums["stylized"], self.sums["original"]
        rows = []
        for i in range(len(px)):
            lo, hi = self.edges[i], self.edges[i + 1]
            n = px[i]
            rows.append({
                "contrast": f"{lo:g}-{hi:g}" if np.isfinite(hi) else f">{lo:g}",
                "pixel_share": float(n / px.sum()) if px.sum() else float("nan"),
                "warp_error_stylized": float(sty[i] / n) if n else float("nan"),
                "warp_error_original": float(org[i] / n) if n else float("nan"),
                "ratio": float(sty[i] / org[i]) if org[i] > 0 else float("nan"),
                "stylized_error_share": float(sty[i] / sty.sum()) if sty.sum() else float("nan"),
            })
        return rows

    def rms_map(self) -> np.ndarray:
        """Per pixel, the RMS over frame pairs of the stylized warping error (0..1 levels);
        a pair where the pixel was occluded adds 0 (the clip's figure leaves such pixels out)."""
        if self.error_map is None:
            raise ValueError("no frame pairs measured")
        return np.sqrt(self.error_map / max(self.pairs_mapped, 1)).astype(np.float32)

    def heat_map(self, top: float | None = None) -> np.ndarray:
        """rms_map as a uint8 colour map, brighter = more flicker; `top` (0..1 levels) is
        full brightness: give filters one top to compare them, else each its 99.5th percentile."""
        m = self.rms_map()
        top = top or float(np.percentile(m, 99.5)) or 1.0
        gray = np.clip(m / top * 255, 0, 255).astype(np.uint8)
        return cv2.cvtColor(cv2.applyColorMap(gray, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)
