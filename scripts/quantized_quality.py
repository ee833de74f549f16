"""What quantization costs a filter: each exported and quantized copy of one trained
style, checked against Keras (PSNR) and scored with the quality metrics.

    python scripts/quantized_quality.py OUT_DIR --weights W.weights.h5 --painting P.jpg \
        --photo chicago.jpg [--photo ...] [--reference PEER.jpg] [--profile gpu]

Copies, all at export.sizes[0] (853x480): ONNX fp32 and int8 (static QDQ, first and last
conv float, as bench's onnx_int8), TFLite fp32, fp16 weights and int8 (full integer),
Core ML mlprogram fp16 (as shipped) and 8-bit linear weights (run through the NumPy
executor with fp16 rounding, about 10 s a frame). Calibration: bench.quantize's random
crops of data/prepared/heldout. Every copy runs each photo the way `livestyle stylize`
does (a landscape photo turned a quarter into the portrait model, scaled to fit, and
back), Keras too, so PSNR and the quality figures compare copies of one model.
Writes OUT_DIR/quantized.md and quantized.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def copies(transformer, display, out: Path, frames) -> dict[str, tuple[Path, str]]:
    """Every copy written under `out`, as {label: (path, format)}."""
    from livestyle.convert.export import display_model, export_coreml, export_onnx, export_tflite
    from livestyle.convert.quantize import mlprogram_int8, onnx_int8, tflite_variant

    made = {
        "ONNX fp32": (export_onnx(transformer, out / "fp32.onnx"), "onnx"),
        "TFLite fp32": (export_tflite(transformer, out / "fp32.tflite"), "tflite"),
        "TFLite fp16 weights": (tflite_variant(transformer, out / "fp16.tflite", "fp16"), "tflite"),
        "TFLite int8": (tflite_variant(transformer, out / "int8.tflite", "int8", frames), "tflite"),
    }
    made["ONNX int8 (ends float)"] = (onnx_int8(out / "fp32.onnx", out / "int8.onnx", frames), "onnx")
    fp16 = export_coreml(display_model(transformer, display), "mlprogram", out / "fp16.mlpackage", {})
    made["Core ML fp16 (shipped)"] = (fp16, "mlprogram")
    made["Core ML 8-bit weights"] = (mlprogram_int8(fp16, out / "int8.mlpackage"), "mlprogram")
    return made


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--weights", required=True)
    ap.add_argument("--painting", required=True)
    ap.add_argument("--photo", action="append", required=True)
    ap.add_argument("--reference", default=None, help="another filter's output of the first photo (scored beside)")
    ap.add_argument("--profile", default=None, help="params.yaml profile whose network settings apply")
    args = ap.parse_args()

    from tqdm import tqdm

    from livestyle import markdown
    from livestyle.config import NetworkConfig, load_params
    from livestyle.convert.export import ExportConfig, load_transformer
    from livestyle.convert.quantize import QuantizeConfig, calibration_frames, read_photos, size_bytes
    from livestyle.convert.runtime import Runner
    from livestyle.convert.runners import keras_reference, make_runner
    from livestyle.convert.verify import psnr
    from livestyle.images import load_rgb
    from livestyle.measure import quality

    params = load_params(profile=args.profile)
    net = NetworkConfig.from_params(params["network"])
    export = ExportConfig.from_params(params["export"])
    qcfg = QuantizeConfig.from_params(params["bench"]["quantize"])
    h, w = export.sizes[0]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    transformer = load_transformer(Path(args.weights), net, h, w)
    frames = calibration_frames(read_photos(Path("data/prepared/heldout")), qcfg.calibration_frames, h, w,
                                qcfg.min_crop, qcfg.seed)
    made = copies(transformer, export.display_for(h, w), out, frames)
    painting = load_rgb(args.painting)
    keras = Runner("keras", keras_reference(transformer), (h, w))
    rows, results = [], {}
    for photo_path in args.photo:
        photo = load_rgb(photo_path)
        ref = keras(photo)
        outputs, psnrs = {"Keras fp32": ref}, {"Keras fp32": float("inf")}
        for label, (path, fmt) in tqdm(made.items(), desc=Path(photo_path).name, unit="copy"):
            t0 = time.perf_counter()
            outputs[label] = Runner(label, make_runner(path, fmt), (h, w))(photo)
            psnrs[label] = psnr(outputs[label].astype(np.float32), ref.astype(np.float32))
            tqdm.write(f"{label}: {time.perf_counter() - t0:.1f} s, {psnrs[label]:.1f} dB")
        refs = dict(outputs)
        if args.reference and photo_path == args.photo[0]:
            refs["reference"] = load_rgb(args.reference)
        scored = quality.score(photo, photo, painting, references=refs)
        for label in refs:
            f = scored[label]
            size = "" if label in ("Keras fp32", "reference") else f"{size_bytes(made[label][0]) / 1024:.0f}"
            db = "" if label == "reference" else ("-" if label == "Keras fp32" else f"{psnrs[label]:.1f}")
            rows.append([Path(photo_path).name, label, size, db, f"{f['texture']:.2f}", f"{f['colour']:.2f}", f"{f['content']:.3f}"])
            results.setdefault(Path(photo_path).name, {})[label] = {
                "size_kib": size or None, "psnr_db": None if db in ("", "-") else psnrs[label],
                **{k: f[k] for k in ("texture", "colour", "content")}}
    table = markdown.table(["photo", "copy", "KiB", "PSNR vs Keras, dB", "texture", "colour", "content"], rows, align="llrrrrr")
    (out / "quantized.md").write_text(table + "\n")
    (out / "quantized.json").write_text(json.dumps(results, indent=1, default=str))
    print(table)


if __name__ == "__main__":
    main()
