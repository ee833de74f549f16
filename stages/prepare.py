"""DVC stage: training crops and held-out images -> data/prepared/."""

from livestyle.config import load_params, tracked_input
from livestyle.errors import run_cli
from livestyle.model.data import DataConfig, prepare

OUT = "data/prepared"


def main(argv):
    cfg = DataConfig.from_params(load_params()["data"])
    if cfg.coco:
        tracked_input(cfg.coco, cfg.raw_dir, "data.coco")
    stats = prepare(cfg, OUT)
    print(f"prepared {stats['train_crops']} crops from {stats['train_images']} images, "
          f"{stats['heldout_images']} held out, skipped {stats['skipped']}")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
