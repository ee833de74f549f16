"""Ablation (docs/ABLATIONS.md section 25), not pipeline code: the CPU default's 200-step
fine-tune of one style with a share of its training crops replaced by synthetic skies
(livestyle.measure.sky_probes seeds from 1000 on, disjoint from the 12 the quality stage
scores), then the figures the quality stage reports: held-out photos and 12 probes.

    cd <a set-up clone after dvc repro> && .venv/bin/python scripts/ablations/cpu_sky_crops.py \
        mosaic 0.25 /tmp/sky25
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, ".")
import livestyle.model.train as train_module  # noqa: E402
from livestyle.config import load_params, style_config  # noqa: E402
from livestyle.convert.export import stylizer  # noqa: E402
from livestyle.images import load_rgb  # noqa: E402
from livestyle.measure.quality import filter_figures  # noqa: E402
from livestyle.measure.sky_probes import sky_blob_figures, sky_probe  # noqa: E402
from livestyle.model.data import load_images  # noqa: E402

style, share, out = sys.argv[1], float(sys.argv[2]), Path(sys.argv[3])
photo_batches = train_module.Batches.__call__


def with_skies(self, step):
    """The step's batch with each crop a sky crop at probability `share` (a sky twice and
    three times the crop, as a frame's sky is to a 112 px crop)."""
    batch = photo_batches(self, step)
    rng = np.random.default_rng([self.cfg.seed, step, 7])
    size = self.cfg.image_size
    for i in np.flatnonzero(rng.random(len(batch)) < share):
        sky = sky_probe(1000 + int(rng.integers(0, 100000)), (size * 2, size * 3))
        top, left = rng.integers(0, size + 1), rng.integers(0, 2 * size + 1)
        batch[i] = sky[top : top + size, left : left + size]
    return batch


train_module.Batches.__call__ = with_skies
cfg = style_config(load_params(), style)
train_module.train_style(cfg, Path("data/prepared"), out)
heldout = [load_rgb(p) for p in load_images(Path("data/prepared/heldout"))][:4]
painting = load_rgb(cfg.image)
for label, weights in (("shipped", Path("data/train") / style / "transformer.weights.h5"),
                       (f"skies {share}", out / "transformer.weights.h5")):
    stylize = stylizer(weights, cfg.network)
    print(label, filter_figures(stylize, heldout, painting), sky_blob_figures(stylize, 12), flush=True)
