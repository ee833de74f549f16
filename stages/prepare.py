"""DVC stage: training crops and held-out images -> data/prepared/."""

from livestyle.config import load_params
from livestyle.errors import run_cli
from livestyle.model.data import DataConfig, prepare

OUT = "data/prepared"


def main(argv):
    stats = prepare(DataConfig.from_params(load_params()["data"]), OUT)
    print(f"prepared {stats['train_crops']} crops from {stats['train_images']} images, "
          f"{stats['heldout_images']} held out, skipped {stats['skipped']}")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
