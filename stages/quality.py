"""DVC stage: score a style's filter on held-out photos -> data/quality/STYLE/."""

import json
from pathlib import Path

from livestyle.config import WEIGHTS, load_params, style_config
from livestyle.convert.export import stylizer
from livestyle.errors import run_cli
from livestyle.measure.quality_report import QualityConfig, evaluate_style, summary_line
from livestyle.model.data import load_images


def main(argv):
    (style,) = argv
    params = load_params()
    cfg = QualityConfig.from_params(params.get("quality"))
    scfg = style_config(params, style)
    photos = cfg.photos(style, load_images("data/prepared/heldout"))
    preview = Path("data/preview", style, "preview.json")
    flicker = json.loads(preview.read_text()).get("warp_error_ratio") if preview.is_file() else None
    stylize = stylizer(Path("data/train", style, WEIGHTS), scfg.network)
    result = evaluate_style(style, stylize, scfg.image, photos, cfg, Path("data/quality", style),
                            loss_cfg=scfg.loss if cfg.lossnet else None, flicker_ratio=flicker)
    print(summary_line(result))


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
