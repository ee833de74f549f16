"""DVC stage: train one style -> data/train/STYLE/ (resumes from its checkpoint), then fit
its palette map on the training photos (data/train/STYLE/palette.json)."""

from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from livestyle.config import WEIGHTS, load_params, style_config
from livestyle.convert.export import stylizer
from livestyle.errors import run_cli
from livestyle.images import load_rgb
from livestyle.model.data import DataConfig
from livestyle.model.determinism import ensure_deterministic_process
from livestyle.model.palette import PALETTE_FILE, fit_palette, save_palette, training_photos
from livestyle.model.train import train_style
from livestyle.provenance import file_sha256


def main(argv):
    (style,) = argv
    params = load_params()
    cfg = style_config(params, style)
    if cfg.train.deterministic and __name__ == "__main__":  # not when a test calls main()
        ensure_deterministic_process()  # a rerun or a resume gives the same bytes
    # a painting smaller than a usable photo gives the loss network no texture to learn
    painting = load_rgb(cfg.image, min_side=DataConfig.from_params(params.get("data")).min_side)
    out = Path("data/train") / style
    metrics = train_style(cfg, Path("data/prepared"), out)
    print(f"{style}: held-out losses {metrics['heldout']}")
    # the filter as deployed (levels, margin) but without a palette map of its own
    stylize = stylizer(out / WEIGHTS, replace(cfg.network, palette_strength=0.0))
    photos = training_photos(Path("data/prepared/train"), cfg.train.palette_photos)
    record = fit_palette(stylize, (load_rgb(p) for p in tqdm(photos, desc=f"palette {style}", unit="photo")), painting)
    save_palette(out / PALETTE_FILE, {**record, "weights_sha256": file_sha256(out / WEIGHTS), "painting": cfg.image})


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
