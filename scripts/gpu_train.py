"""Train styles on a GPU machine with the production profile, then stylize a test photo.

Runs the same library code as the DVC stages (prepare + train_style) with params.yaml's
`profiles.gpu` (or --profile), for machines without DVC or TensorFlow (the `device`
H100/H200, KERAS_BACKEND=jax); see README "Training on a GPU". One run per style at
train.seed: the DAG's train.candidates (several seeds, one chosen) is not applied here,
so an ablation measures one recipe on one seed.

    KERAS_BACKEND=jax python scripts/gpu_train.py --photos DIR --styles-dir DIR \
        --out OUT the_scream mosaic --content chicago.jpg
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("styles", nargs="+")
    ap.add_argument("--photos", required=True)
    ap.add_argument("--styles-dir", required=True)
    ap.add_argument("--profile", default="gpu", help="profiles.<name> of params.yaml (default gpu)")
    ap.add_argument("--override", default=None, help="a YAML merged over the profile")
    ap.add_argument("--out", required=True)
    ap.add_argument("--content", default=None)
    ap.add_argument("--set", action="append", default=[], help="dotted override, e.g. loss.style_weight=3")
    args = ap.parse_args()

    from livestyle.config import deep_merged, load_params, style_config, with_overrides
    from livestyle.convert.export import stylizer
    from livestyle.images import load_rgb, save_png
    from livestyle.model.data import DataConfig, prepare
    from livestyle.model.train import train_style

    params = load_params(profile=args.profile)
    if args.override:
        params = deep_merged(params, yaml.safe_load(Path(args.override).read_text()))
    params = with_overrides(params, args.set)
    out = Path(args.out)
    params["data"]["coco"] = args.photos
    prepared = Path(params.pop("prepared_dir", out / "prepared"))
    if not (prepared / "prepare.json").exists():
        print(prepare(DataConfig.from_params(params["data"]), prepared), flush=True)
    summary = {}
    for style in args.styles:
        painting = next(Path(args.styles_dir).glob(f"{style}.*"))
        params["styles"][style] = deep_merged(params["styles"].get(style, {}), {"image": str(painting)})
        cfg = style_config(params, style)
        t0 = time.perf_counter()
        metrics = train_style(cfg, prepared, out / "train" / style)
        metrics["wall_s"] = round(time.perf_counter() - t0, 1)
        summary[style] = metrics
        print(style, json.dumps(metrics), flush=True)
        if args.content:
            stylize = stylizer(out / "train" / style / "transformer.weights.h5", cfg.network)
            # full size, as the peer's published outputs are: the network pads to a multiple of 4
            for photo in [Path(args.content), *sorted((prepared / "heldout").glob("*.png"))[:4]]:
                content = load_rgb(photo)
                styled = stylize(content[None])[0]
                (out / "stylized").mkdir(parents=True, exist_ok=True)
                save_png(out / "stylized" / f"{style}__{photo.stem}.png", styled)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    main()
