"""DVC stage: run every exported model of a style on held-out frames against Keras."""

from pathlib import Path

from livestyle.atomic import write_json
from livestyle.config import WEIGHTS, load_params, style_config
from livestyle.convert.export import ExportConfig, load_transformer
from livestyle.convert.runners import keras_reference
from livestyle.convert.verify import VerifyConfig, failures, save_comparison, verify_models
from livestyle.errors import LivestyleError, run_cli
from livestyle.model.data import heldout_frames
from livestyle.provenance import check_export


def main(argv):
    (style,) = argv
    params = load_params()
    cfg = VerifyConfig.from_params(params.get("verify"))
    export = ExportConfig.from_params(params["export"])
    net = style_config(params, style).network
    h, w = export.sizes[0]
    weights = Path("data/train", style, WEIGHTS)
    # the export stage's own record of what it wrote (checked: one complete export of
    # these weights), at the first (verified) size
    written = check_export(Path("data/export", style), style, weights)["models"]
    models = {m["format"]: Path("data/export", style, name) for name, m in sorted(written.items()) if [m["height"], m["width"]] == [h, w]}
    reference = keras_reference(load_transformer(weights, net, h, w))
    frames = heldout_frames("data/prepared/heldout", h, w, cfg.frames)
    out = Path("data/verify", style)
    results = verify_models(models, reference, frames, cfg, input_hw=(h, w), display_hw=export.display_for(h, w), style=style)
    write_json(out / "verify.json", results)
    if "mlprogram" in models:
        from livestyle.convert.runners import make_runner
        from livestyle.convert.verify import upscale

        coreml = make_runner(models["mlprogram"], "mlprogram")(frames[0])
        keras_up = upscale(reference(frames[0]), *coreml.shape[:2])  # as the model's own bilinear upscale
        save_comparison(out / "compare.png", frames[0], keras_up, coreml, title=f"{style}: Keras vs Core ML mlprogram")
    for fmt in sorted(k for k in results if isinstance(results[k], dict)):
        print(f"{style} {fmt}: PSNR {results[fmt]['psnr_db']['mean']:.1f} dB  passed={results[fmt]['passed']}")
    if not results["passed"]:
        raise LivestyleError(out / "verify.json", "; ".join(failures(results)))


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
