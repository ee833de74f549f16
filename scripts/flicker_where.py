"""Where filters flicker on a clip: the preview stage's warping error split by how flat
the original frame is (livestyle.measure.flicker_where), and a mean error map.

    python scripts/flicker_where.py OUT_DIR --clip ../shared/data/video/fox.mp4 --max-seconds 5 \
        --profile gpu LABEL=WEIGHTS.h5[@{"antialias": 3}] [LABEL=...]

Frames are read, decimated and sized as `dvc repro preview@S` does (params.yaml's
preview: section), so the total ratio equals scripts/flicker_compare.py's. Writes
OUT_DIR/LABEL_where.json (the table), OUT_DIR/LABEL_where.png (the clip's first frame |
the RMS stylized error per pixel, brighter = more flicker; --heat-top gives every filter
one scale) and OUT_DIR/LABEL_where_rms.npy (that map as numbers).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from livestyle import markdown
from livestyle.atomic import atomic_path, write_json
from livestyle.convert.export import stylizer
from livestyle.images import save_png
from livestyle.media import clip_filters
from livestyle.measure.flicker_where import FlickerWhereMeter
from livestyle.media.preview import PreviewConfig, plan_sizes
from livestyle.media.video import expected_frames, fit, probe, read_frames


def measure(stylize, clip: str, cfg: PreviewConfig, label: str) -> tuple[FlickerWhereMeter, np.ndarray]:
    info = probe(clip)
    mh, mw = plan_sizes(info, cfg).model
    meter = FlickerWhereMeter(cfg.flow_preset, cfg.flow_scale)
    first = None
    total = expected_frames(info, cfg.fps, cfg.max_seconds)
    for frame in tqdm(read_frames(clip, cfg.fps, cfg.max_seconds), total=total, desc=label, unit="frame", file=sys.stderr):
        x = fit(frame.rgb, mh, mw)
        y = np.clip(np.asarray(stylize(x[None].astype(np.float32)))[0], 0, 255).round().astype(np.uint8)
        meter.update(x, y)
        first = x if first is None else first
    return meter, first


def main() -> None:
    ap = argparse.ArgumentParser()
    clip_filters.add_arguments(ap)
    ap.add_argument("--heat-top", type=float, help="RMS error (0..1 levels) drawn at full brightness, the same for every "
                    "filter (default: each filter's 99.5th percentile)")
    args = ap.parse_args()
    cfg, filters = clip_filters.resolve(args)
    out = Path(args.out)
    for label, weights, filter_net in filters:
        meter, first = measure(stylizer(weights, filter_net), args.clip, cfg, label)
        rows = meter.by_contrast()
        total = meter.summary()
        print(f"\n{label}: whole clip {total['warp_error_ratio']:.2f}x over {total['pairs']} pairs")
        print(markdown.table(
            ["local contrast", "pixels", "warp error, stylized", "warp error, input", "ratio", "share of the flicker"],
            [[r["contrast"], f"{r['pixel_share']:.0%}", f"{r['warp_error_stylized']:.5f}", f"{r['warp_error_original']:.5f}",
              f"{r['ratio']:.2f}", f"{r['stylized_error_share']:.0%}"] for r in rows], align="lrrrrr"), flush=True)
        write_json(out / f"{label}_where.json", {"whole_clip": total, "by_contrast": rows})
        with atomic_path(out / f"{label}_where_rms.npy") as tmp:
            np.save(tmp, meter.rms_map())
        save_png(out / f"{label}_where.png", np.concatenate([first, meter.heat_map(args.heat_top)], axis=1))


if __name__ == "__main__":
    main()
