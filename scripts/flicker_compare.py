"""Flicker of trained filters on a clip, by the preview stage's own figure.

    python scripts/flicker_compare.py OUT_DIR --clip ../shared/data/video/fox.mp4 \
        LABEL=WEIGHTS.h5 [LABEL=WEIGHTS.h5 ...] [--max-seconds 10] [--side-by-side A,B] [--stabilise 0.7]

A filter trained with other network settings than params.yaml's names them after its
weights as JSON: `LABEL=WEIGHTS.h5@{"antialias": 3}`.

Each filter renders the clip as `dvc repro preview@S` does (params.yaml's preview:
section: frame rate, model size, DIS flow), into OUT_DIR/LABEL/; the table gives the
warping error of the stylized frames over the clip's own (1.0 = adds no flicker).
--side-by-side A,B also writes OUT_DIR/A_vs_B.gif: the two filters' GIFs side by side.
--stabilise S adds a row LABEL+stabS per filter: its frames through `livestyle stylize
--stabilise S`'s temporal blend (media.stabilise), in order, as the stylize command
blends them (at the preview's rate and model size, not the clip's own).
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import numpy as np

from livestyle import markdown
from livestyle.convert.export import stylizer
from livestyle.media import clip_filters
from livestyle.media.preview import render_clip
from livestyle.media.stabilise import TemporalBlend
from livestyle.media.video import ffmpeg_exe


def stabilised(stylize, strength: float):
    """The stylizer (batch in, float batch out) with a fresh temporal blend over its
    frames, one at a time in order (render_clip feeds the clip's frames in order, in
    batches of preview.batch_size): rounded to uint8 first, as a Runner's frames are."""
    blend = TemporalBlend(strength)

    def run(batch) -> np.ndarray:
        styled = np.clip(np.rint(np.asarray(stylize(batch), np.float32)), 0, 255).astype(np.uint8)
        return np.stack([blend(frame, sty) for frame, sty in zip(np.asarray(batch, np.uint8), styled)])

    return run


def main() -> None:
    ap = argparse.ArgumentParser()
    clip_filters.add_arguments(ap)
    ap.add_argument("--side-by-side", metavar="A,B")
    ap.add_argument("--stabilise", type=float, metavar="S", help="also each filter through the temporal blend at S (0..1)")
    args = ap.parse_args()
    cfg, filters = clip_filters.resolve(args)
    if args.stabilise:
        TemporalBlend(args.stabilise)  # a bad strength fails before minutes of rendering
    runs = []
    for label, weights, net in filters:
        stylize = stylizer(weights, net)  # stateless: the blended row shares its models
        runs.append((label, stylize))
        if args.stabilise:
            runs.append((f"{label}+stab{args.stabilise:g}", stabilised(stylize, args.stabilise)))
    out = Path(args.out)
    rows = {}
    # a header first, then one row as each filter's clip finishes (a run takes minutes)
    # the ratio is the figure; the contrast-normalised one tells steady from pale
    print(markdown.table(["filter", "frame pairs", "warp error, stylized", "warp error, input", "ratio",
                          "ratio, contrast-normalised"], [], align="lrrrrr"), flush=True)
    for label, stylize in runs:
        m = render_clip(stylize, label, args.clip, out / label, cfg, name="clip")
        rows[label] = {k: m[k] for k in ("pairs", "warp_error_stylized", "warp_error_original", "warp_error_ratio",
                                         "contrast_normalised_ratio")}
        print(markdown.row([label, f"{m['pairs']}", f"{m['warp_error_stylized']:.5f}", f"{m['warp_error_original']:.5f}",
                            f"{m['warp_error_ratio']:.2f}", f"{m['contrast_normalised_ratio']:.2f}"]), flush=True)
    (out / "flicker.json").write_text(json.dumps(rows, indent=1))
    if args.side_by_side:
        a, b = args.side_by_side.split(",")
        gif = out / f"{a}_vs_{b}.gif"
        subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(out / a / "clip.gif"), "-i", str(out / b / "clip.gif"),
                        "-filter_complex", "[0][1]hstack=inputs=2,split[s0][s1];[s0]palettegen[p];[s1][p]paletteuse",
                        str(gif)], check=True)
        print(gif)


if __name__ == "__main__":
    main()
