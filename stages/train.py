"""DVC stage: train one style -> data/train/STYLE/ (resumes from its checkpoint)."""

from pathlib import Path

from livestyle.config import load_params, style_config
from livestyle.errors import run_cli
from livestyle.train import train_style


def main(argv):
    (style,) = argv
    cfg = style_config(load_params(), style)
    metrics = train_style(cfg, Path("data/prepared"), Path("data/train") / style)
    print(f"{style}: held-out losses {metrics['heldout']}")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
