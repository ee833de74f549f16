"""DVC stage: trained weights -> Core ML (mlprogram, neuralnetwork), TFLite, ONNX."""

from pathlib import Path

from livestyle.atomic import write_json
from livestyle.config import load_params, style_config
from livestyle.errors import run_cli
from livestyle.export import ExportConfig, export_style, model_metadata


def main(argv):
    (style,) = argv
    params = load_params()
    cfg = style_config(params, style)
    export = ExportConfig.from_params(params["export"])
    out = Path("data/export") / style
    version = params["release"]["version"]
    meta = model_metadata(cfg, export, version)
    written = export_style(Path("data/train") / style / "transformer.weights.h5", cfg.network, export, style, meta, out)
    write_json(out / "export.json", {"style": style, "version": version, "models": written})


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
