"""DVC stage: the built-in preview clip, synthesized from built-in images (no download)."""

from livestyle.config import load_params
from livestyle.errors import run_cli
from livestyle.media.preview import PreviewConfig
from livestyle.media.synth_clip import ensure_synth_clip


def main(argv):
    cfg = PreviewConfig.from_params(load_params()["preview"])
    print(ensure_synth_clip(cfg.builtin_cache, cfg.builtin))


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
