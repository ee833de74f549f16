"""DVC stage: render a style's preview videos as the live filter would."""

import dataclasses
from pathlib import Path

from livestyle.atomic import write_json
from livestyle.config import WEIGHTS, load_params, style_config, tracked_input
from livestyle.convert.export import ExportConfig, stylizer
from livestyle.errors import run_cli
from livestyle.media.preview import PreviewConfig, render_style_previews


def main(argv):
    (style,) = argv
    params = load_params()
    export = ExportConfig.from_params(params["export"])
    h, w = export.sizes[0]
    # model and display sizes are named once, in export:
    cfg = dataclasses.replace(PreviewConfig.from_params(params["preview"]), model_size=(h, w), display_size=tuple(export.display))
    for i, clip in enumerate(cfg.clips):
        tracked_input(clip, cfg.clips_dir, f"preview.clips[{i}]")
    # a landscape clip runs the model at the transposed size: stylizer builds each size once
    stylize = stylizer(Path("data/train", style, WEIGHTS), style_config(params, style).network)
    out = Path("data/preview", style)
    metrics = render_style_previews(stylize, style, None, out / "media", cfg)
    write_json(out / "preview.json", metrics)
    print(f"{style}: {metrics['frames']} frames at {metrics['render_fps']:.2f} fps, flicker ratio {metrics.get('warp_error_ratio', 'n/a')}")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
