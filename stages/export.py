"""DVC stage: trained weights -> Core ML (mlprogram, neuralnetwork), TFLite, ONNX."""

from pathlib import Path

from livestyle.config import WEIGHTS, load_params, style_config
from livestyle.convert.export import ExportConfig, export_style, model_metadata
from livestyle.errors import run_cli
from livestyle.provenance import start_export, write_record


def main(argv):
    (style,) = argv
    params = load_params()
    cfg = style_config(params, style)
    export = ExportConfig.from_params(params["export"])
    out = Path("data/export") / style
    version = params["release"]["version"]
    meta = model_metadata(cfg, export, version)
    weights = Path("data/train") / style / WEIGHTS
    start_export(out, style, weights)
    written = export_style(weights, cfg.network, export, style, meta, out)
    write_record(out, style, version, weights, written)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
