"""Ablation (docs/ABLATIONS.md section 26), not pipeline code: the CPU default's 200-step
fine-tune of one style with the temporal term on (any `--set` overrides of params.yaml),
then the quality stage's figures for the shipped filter and the new one: held-out photos
and 12 sky probes. Flicker: scripts/flicker_compare.py on both weights.

    cd <a set-up clone after dvc repro> && .venv/bin/python scripts/ablations/cpu_temporal.py \
        mosaic /tmp/cpu_warp2 loss.temporal_weight=3000 loss.temporal_moves=warp \
        loss.temporal_warp=2 loss.temporal_noise=3
"""
import sys
from pathlib import Path

sys.path.insert(0, ".")
from livestyle.config import load_params, style_config, with_overrides  # noqa: E402
from livestyle.convert.export import stylizer  # noqa: E402
from livestyle.images import load_rgb  # noqa: E402
from livestyle.measure.quality import filter_figures  # noqa: E402
from livestyle.measure.sky_probes import sky_blob_figures  # noqa: E402
from livestyle.model.data import load_images  # noqa: E402
from livestyle.model.train import train_style  # noqa: E402

style, out, overrides = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
cfg = style_config(with_overrides(load_params(), overrides), style)
train_style(cfg, Path("data/prepared"), out)
heldout = [load_rgb(p) for p in load_images(Path("data/prepared/heldout"))]
painting = load_rgb(cfg.image)
for label, weights in (("shipped", Path("data/train") / style / "transformer.weights.h5"),
                       (" ".join(overrides), out / "transformer.weights.h5")):
    stylize = stylizer(weights, cfg.network)
    print(label, filter_figures(stylize, heldout, painting), sky_blob_figures(stylize, 12), flush=True)
