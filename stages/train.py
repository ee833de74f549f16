"""DVC stage: train one style -> data/train/STYLE/ (resumes from its checkpoint; with
train.candidates > 1, several seeds and the one the quality judge prefers on held-out
photos: data/train/STYLE/choice.json), then fit its palette map on the training photos
(data/train/STYLE/palette.json)."""

from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from livestyle.config import WEIGHTS, load_params, style_config
from livestyle.convert.export import stylizer
from livestyle.errors import run_cli
from livestyle.images import load_rgb
from livestyle.measure.quality import filter_figures
from livestyle.measure.sky_probes import sky_blob_figures
from livestyle.model.choice import SKY_BLOBS, train_candidates
from livestyle.model.data import DataConfig, load_images
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

    def train(run_cfg, run_dir):
        metrics = train_style(run_cfg, Path("data/prepared"), run_dir)
        print(f"{style} (seed {run_cfg.train.seed}): held-out losses {metrics['heldout']}")

    # each filter as deployed (levels, margin) but without a palette map of its own
    def deployed(weights):
        return stylizer(weights, replace(cfg.network, palette_strength=0.0))

    heldout: list = []  # read at the first candidate's judging, once for all of them

    def judge(weights):  # the independent figures on held-out photos no run trained on
        if not heldout:
            heldout.extend(load_rgb(p) for p in load_images(Path("data/prepared/heldout"))[: cfg.train.choice_photos])
        stylize = deployed(weights)
        figures = filter_figures(stylize, heldout, painting)
        if cfg.train.choice_probes:  # smooth skies, where filters paint blobs photos rarely show
            figures[SKY_BLOBS] = sky_blob_figures(stylize, cfg.train.choice_probes)["blotted"]
        return figures

    choice = train_candidates(cfg, train, out, judge)
    if choice["candidates"] > 1:
        print(f"{style}: shipping seed {choice['chosen_seed']} of {choice['candidates']} ({out / 'choice.json'})")
    stylize = deployed(out / WEIGHTS)
    photos = training_photos(Path("data/prepared/train"), cfg.train.palette_photos)
    record = fit_palette(stylize, (load_rgb(p) for p in tqdm(photos, desc=f"palette {style}", unit="photo")), painting)
    save_palette(out / PALETTE_FILE, {**record, "weights_sha256": file_sha256(out / WEIGHTS), "painting": cfg.image})


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
