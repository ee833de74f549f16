"""DVC stage: train one style -> data/train/STYLE/ (resumes from its checkpoint)."""

from pathlib import Path

from livestyle.config import load_params, style_config
from livestyle.errors import run_cli
from livestyle.images import load_rgb
from livestyle.model.data import DataConfig
from livestyle.model.determinism import ensure_deterministic_process
from livestyle.model.train import train_style


def main(argv):
    (style,) = argv
    params = load_params()
    cfg = style_config(params, style)
    if cfg.train.deterministic and __name__ == "__main__":  # not when a test calls main()
        ensure_deterministic_process()  # a rerun or a resume gives the same bytes
    # a painting smaller than a usable photo gives the loss network no texture to learn
    load_rgb(cfg.image, min_side=DataConfig.from_params(params.get("data")).min_side)
    metrics = train_style(cfg, Path("data/prepared"), Path("data/train") / style)
    print(f"{style}: held-out losses {metrics['heldout']}")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
