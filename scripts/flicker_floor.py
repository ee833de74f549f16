"""The flicker figure's floor for a filter's palette.

    python scripts/flicker_floor.py OUT --clip CLIP WEIGHTS.h5 [--net '{"antialias": 3}'] \
        [--profile gpu] [--max-seconds 5]

A pointwise filter (each output pixel a function of its own input pixel, so it invents
nothing from frame to frame) with the trained filter's tonality: the trained filter's
mean output colour per input luminance (64 bins), fitted on the clip's first frame as
the preview feeds it. It renders the clip as flicker_compare.py does and prints the same
warping-error ratio; docs/ABLATIONS.md section 14: gpu_video's 2.49x filter gives 0.50x.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from livestyle.config import NetworkConfig, load_params
from livestyle.convert.export import stylizer
from livestyle.measure.quality import luminance
from livestyle.media.preview import PreviewConfig, render_clip

BINS = 64


def fit_lut(frame: np.ndarray, stylized: np.ndarray) -> np.ndarray:
    """(BINS, 3): the stylized frame's mean colour per input luminance bin; empty bins
    interpolated from their neighbours."""
    bins = np.clip((luminance(frame) / 256 * BINS).astype(int), 0, BINS - 1)
    counts = np.bincount(bins.ravel(), minlength=BINS)
    sums = np.stack([np.bincount(bins.ravel(), stylized[..., c].ravel(), BINS) for c in range(3)], -1)
    idx, known = np.arange(BINS), counts > 0
    return np.stack([np.interp(idx, idx[known], sums[known, c] / counts[known]) for c in range(3)], -1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("weights")
    ap.add_argument("--clip", required=True)
    ap.add_argument("--net", default="{}", help="network settings over the profile's, as JSON")
    ap.add_argument("--profile", default="gpu")
    ap.add_argument("--max-seconds", type=float, default=5.0)
    args = ap.parse_args()
    params = load_params(profile=args.profile)
    cfg = dataclasses.replace(PreviewConfig.from_params(params.get("preview")), max_seconds=args.max_seconds)
    net = dataclasses.replace(NetworkConfig.from_params(params.get("network")), **json.loads(args.net))
    trained = stylizer(Path(args.weights), net)
    centres = (np.arange(BINS) + 0.5) * 256 / BINS
    lut = []

    def pointwise(batch) -> np.ndarray:
        if not lut:
            lut.append(fit_lut(batch[0], np.clip(trained(batch[:1])[0], 0, 255)))
        # linear between bin centres: a stepped map would flicker at bin edges
        y = luminance(batch)
        return np.stack([np.interp(y, centres, lut[0][:, c]) for c in range(3)], -1).astype(np.float32)

    m = render_clip(pointwise, "pointwise", args.clip, Path(args.out) / "pointwise", cfg, name="clip")
    print(f"pointwise: warp error {m['warp_error_stylized']:.5f}, input {m['warp_error_original']:.5f}, "
          f"ratio {m['warp_error_ratio']:.2f}")


if __name__ == "__main__":
    main()
