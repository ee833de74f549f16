"""How fast can a style run on this CPU? Every runtime setting and network shape against
the classic PyTorch network, in one run (issue 13, part 3).

Times, at 480x853 with the same threads: the classic 5-block PyTorch network (at the
start and at the end, since a shared machine's load drifts); the shipped model under
ONNX Runtime (graph optimisation levels, threads, execution modes, static and dynamic
int8) and TFLite/XNNPACK (fp32, fp16 weights, int8, threads, and how many delegate
partitions the graph falls into); then untrained networks of other shapes (width,
blocks, separable, padding) under the fastest fp32 and int8 settings, for latency
only. Quantized copies are checked against Keras on the held-out photos (PSNR).
Each result is appended to --out as a JSON line as soon as it exists.

    python scripts/cpu_speed.py --style mosaic [--runs 6] [--out docs/cpu_speed.jsonl] [--skip-archs]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# (label, NetworkConfig keywords): the shipped shape first, then cheaper ones
ARCHS = [
    ("w32 b3 (shipped)", {}),
    ("w32 b3 zero-pad", {"padding": "zero"}),
    ("w32 b3 separable", {"separable": True}),
    ("w24 b3", {"width": 24}),
    ("w16 b3", {"width": 16}),
    ("w16 b3 separable", {"width": 16, "separable": True}),
    ("w16 b5 separable", {"width": 16, "res_blocks": 5, "separable": True}),
    ("w12 b3", {"width": 12}),
    ("w8 b3", {"width": 8}),
    ("w8 b3 separable", {"width": 8, "separable": True}),
]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--style", default="mosaic")
    ap.add_argument("--runs", type=int, default=6, help="per setting, first dropped")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, nargs=2, default=[853, 480], metavar=("H", "W"))
    ap.add_argument("--calibration-frames", type=int, default=8)
    ap.add_argument("--out", type=Path, default=Path("docs/cpu_speed.jsonl"))
    ap.add_argument("--weights", type=Path, help="default: data/train/STYLE's (exported afresh: data/export may lag them)")
    ap.add_argument("--skip-archs", action="store_true")
    ap.add_argument("--archs-only", action="store_true", help="only the classic network and the other shapes")
    ap.add_argument("--arch", action="append", help="only shapes whose label starts with this (repeatable)")
    ap.add_argument("--skip-coreml", action="store_true", help="no Core ML 8-bit weights row (its NumPy check takes minutes)")
    args = ap.parse_args(argv)

    from livestyle.config import load_params, style_config
    from livestyle.convert import quantize, runners, verify
    from livestyle.convert.export import export_onnx, export_tflite, xnnpack_partitions
    from livestyle.convert.ort_session import OrtConfig, session
    from livestyle.measure.bench import bench_input, summarize, time_runs, _keras_model
    from livestyle.model.torch_reference import torch_runner

    h, w = args.size
    x = bench_input(h, w)
    params = load_params()
    net = style_config(params, args.style).network
    weights = args.weights or Path("data/train", args.style, "transformer.weights.h5")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("")
    rows: list[dict] = []

    def record(group: str, label: str, fn=None, **extra) -> dict:
        row = {"group": group, "label": label, **extra}
        if fn is not None:
            s = summarize(time_runs(fn, args.runs, label), 1)
            row.update(median_ms=s["median_ms"], p90_ms=s["p90_ms"])
        rows.append(row)
        with args.out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
        return row

    photos = quantize.read_photos(Path("data/prepared/heldout"))
    calib = quantize.calibration_frames(photos, args.calibration_frames, h, w)
    check = [runners.fit_frame(p, h, w).astype("float32") for p in photos]
    model = _keras_model(weights, net, h, w)
    reference = runners.keras_reference(model)

    def quality(run) -> dict:
        r = verify.compare(run, reference, check, 0.0)
        return {"psnr_db_min": r["psnr_db"]["min"]}

    classic = torch_runner(5, h, w, args.threads)
    record("classic", "torch 5 blocks (start)", classic)

    tmp_dir = tempfile.TemporaryDirectory()
    tmp = Path(tmp_dir.name)
    if args.archs_only:
        arch_rows(record, tmp, h, w, calib, args.threads, args.arch)
        record("classic", "torch 5 blocks (end)", classic)
        print_table(rows)
        return 0
    onnx_path, tfl = export_onnx(model, tmp / "fp32.onnx"), export_tflite(model, tmp / "fp32.tflite")
    for level in ("all", "extended", "basic"):
        for threads in (args.threads, 1):
            cfg = OrtConfig(graph_optimization=level)
            sess = session(onnx_path, threads, cfg)
            check_fp32 = quality(runners.onnx_runner(onnx_path)) if (level, threads) == ("all", args.threads) else {}
            record("ort", f"ort fp32 {level} threads={threads}", lambda s=sess: s.run(None, {"image": x}), **check_fp32)
    sess = session(onnx_path, args.threads, OrtConfig(execution_mode="parallel"))
    record("ort", f"ort fp32 all parallel threads={args.threads}", lambda: sess.run(None, {"image": x}))
    sess = session(onnx_path, args.threads, OrtConfig(allow_spinning=False))
    record("ort", f"ort fp32 all no-spin threads={args.threads}", lambda: sess.run(None, {"image": x}))

    q = quantize.onnx_int8(onnx_path, tmp / "int8.onnx", calib)
    run = runners.onnx_runner(q, args.threads)
    record("ort", "ort int8 static QDQ (per-channel), ends float", lambda: run(x[0]), **quality(run), size_bytes=quantize.size_bytes(q),
           fp32_size_bytes=quantize.size_bytes(onnx_path))
    q = quantize.onnx_int8(onnx_path, tmp / "int8_all.onnx", calib, float_ends=False)
    run = runners.onnx_runner(q, args.threads)
    record("ort", "ort int8 static QDQ (per-channel), every conv", lambda: run(x[0]), **quality(run), size_bytes=quantize.size_bytes(q))
    dyn = _onnx_dynamic(onnx_path, tmp / "dyn.onnx")
    run = runners.onnx_runner(dyn, args.threads)
    record("ort", "ort int8 dynamic", lambda: run(x[0]), **quality(run), size_bytes=quantize.size_bytes(dyn))

    for threads in (args.threads, 1):
        run = runners.tflite_runner(tfl, threads)
        record("tflite", f"tflite fp32 threads={threads}", lambda r=run: r(x[0]), partitions=xnnpack_partitions(tfl))
    for mode in ("fp16", "int8"):
        p = quantize.tflite_variant(model, tmp / f"{mode}.tflite", mode, calib)
        run = runners.tflite_runner(p, args.threads)
        record("tflite", f"tflite {mode}", lambda r=run: r(x[0]), **quality(run), size_bytes=quantize.size_bytes(p),
               fp32_size_bytes=quantize.size_bytes(tfl), partitions=xnnpack_partitions(p))

    if not args.skip_coreml:
        coreml_rows(record, tmp, model, quality, params)
    if not args.skip_archs:
        arch_rows(record, tmp, h, w, calib, args.threads, args.arch)
    record("classic", "torch 5 blocks (end)", classic)
    tmp_dir.cleanup()
    print_table(rows)
    return 0


def coreml_rows(record, tmp: Path, model, quality, params) -> None:
    """Core ML fp16 and 8-bit weights: size and PSNR against Keras (no timing: no Core ML runtime here)."""
    from livestyle.convert import quantize, runners
    from livestyle.convert.export import ExportConfig, display_model, export_coreml

    h, w = model.input_shape[1:3]
    fp16 = export_coreml(display_model(model, ExportConfig.from_params(params["export"]).display_for(h, w)), "mlprogram",
                         tmp / "fp16.mlpackage", {})
    int8 = quantize.mlprogram_int8(fp16, tmp / "int8.mlpackage")
    for label, path in (("coreml mlprogram fp16", fp16), ("coreml mlprogram 8-bit weights", int8)):
        record("coreml", label, None, **quality(runners.coreml_runner(path)), size_bytes=quantize.size_bytes(path))


def _onnx_dynamic(src: Path, dst: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = dst.with_suffix(".pre.onnx")
    quant_pre_process(str(src), str(pre))
    quantize_dynamic(str(pre), str(dst), weight_type=QuantType.QUInt8)
    return dst


def arch_rows(record, tmp: Path, h: int, w: int, calib, threads: int, only: list[str] | None = None) -> None:
    """Untrained networks of other shapes: fp32 and int8 ONNX latency, GFLOPs, parameters."""
    import numpy as np

    from livestyle.config import NetworkConfig
    from livestyle.convert import quantize, runners
    from livestyle.convert.export import export_onnx, export_tflite, xnnpack_partitions
    from livestyle.measure.bench import bench_input
    from livestyle.model.network import build_transformer

    x = bench_input(h, w)
    for label, kw in ARCHS:
        if only and not any(label.startswith(o) for o in only):
            continue
        model = build_transformer(NetworkConfig(**kw), h, w)
        tag = label.split(" (")[0].replace(" ", "_")
        fp32 = export_onnx(model, tmp / f"{tag}.onnx")
        int8 = quantize.onnx_int8(fp32, tmp / f"{tag}_int8.onnx", calib[:2])
        tfl = export_tflite(model, tmp / f"{tag}.tflite")
        params = int(sum(np.prod(v.shape) for v in model.weights))
        gflops = _gflops(model, h, w)
        for kind, path in (("fp32", fp32), ("int8", int8)):
            run = runners.onnx_runner(path, threads)
            record("arch", f"{label} ort {kind}", lambda r=run: r(x[0]), network=kw, params=params, gflops=gflops,
                   size_bytes=quantize.size_bytes(path))
        run = runners.tflite_runner(tfl, threads)
        record("arch", f"{label} tflite fp32", lambda r=run: r(x[0]), network=kw, params=params, gflops=gflops,
               partitions=xnnpack_partitions(tfl))


def _gflops(model, h: int, w: int) -> float:
    """Multiply-adds x 2 of the convolutions (what dominates), counted from the Keras layers."""
    from keras import layers

    total = 0
    for layer in model.layers:
        if isinstance(layer, (layers.Conv2D, layers.SeparableConv2D)):
            oh, ow = layer.output.shape[1:3]
            for k in layer.weights:
                if len(k.shape) == 4:  # kernels (depthwise and pointwise alike): kh*kw*cin*cout per output position
                    kh, kw_, cin, cout = k.shape
                    per = kh * kw_ * cin * (cout if "depthwise" not in k.path else 1)
                    total += 2 * oh * ow * per
    return round(total / 1e9, 2)


def print_table(rows: list[dict]) -> None:
    torch_ms = [r["median_ms"] for r in rows if r["group"] == "classic"]
    ref = sum(torch_ms) / len(torch_ms)
    print(f"\nclassic PyTorch 5 blocks: {ref:.0f} ms (mean of start and end medians)\n")
    from livestyle import markdown

    cells = []
    for r in rows:
        ms = r.get("median_ms")
        cells.append([r["label"], f"{ms:.0f}" if ms else "", f"{ref / ms:.1f}" if ms else "",
                      f"{r['psnr_db_min']:.1f}" if "psnr_db_min" in r else "",
                      f"{r['size_bytes'] / 1024:.0f}" if "size_bytes" in r else "", str(r.get("partitions", "")),
                      str(r.get("gflops", ""))])
    print(markdown.table(["setting", "median ms", "x classic", "PSNR vs Keras dB", "size KiB", "partitions", "GFLOPs"],
                         cells, align="lrrrrrr"))


if __name__ == "__main__":
    raise SystemExit(main())
