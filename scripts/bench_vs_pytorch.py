"""Shipped 3-block model (Keras/TF, TFLite, ONNX Runtime) vs PyTorch's classic network.

One run on this machine, the same frame size and thread count for all, runtimes
interleaved round by round: prints the median ms per frame of each, and how many
times faster the shipped model is than pytorch/examples' TransformerNet (5 residual blocks, instance norm; eager,
torch.inference_mode) and than the same network cut to 3 blocks.

    python scripts/bench_vs_pytorch.py [--runs 20] [--export-dir data/export/STYLE --style STYLE]

Without --export-dir the untrained 3-block model is exported to a temporary folder
(speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, nargs=2, default=[853, 480], metavar=("H", "W"))
    ap.add_argument("--runs", type=int, default=20, help="per runtime, first dropped (the article: 100)")
    ap.add_argument("--drop-first", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--torch-blocks", type=int, nargs="+", default=[5, 3])
    ap.add_argument("--export-dir", type=Path, help="folder with STYLE.tflite and STYLE.onnx")
    ap.add_argument("--style", default="model")
    ap.add_argument("--weights", type=Path, help="Keras weights of the style (default: untrained)")
    args = ap.parse_args(argv)

    import time

    import keras
    from tqdm import tqdm

    from livestyle.config import NetworkConfig
    from livestyle.convert.export import export_onnx, export_tflite
    from livestyle.measure.bench import bench_input, keras_runner, onnx_runner, summarize, tflite_runner, _tf_threads
    from livestyle.model.network import build_transformer

    _tf_threads(args.threads)
    h, w = args.size
    net = NetworkConfig()  # the shipped shape: 3 blocks, width 32, batch norm, resize-conv
    x = bench_input(h, w)
    with tempfile.TemporaryDirectory(prefix="bench_vs_pytorch_") as tmp:
        if args.export_dir:
            tfl, onx = args.export_dir / f"{args.style}.tflite", args.export_dir / f"{args.style}.onnx"
        else:
            keras.utils.set_random_seed(0)
            model = build_transformer(net, h, w)
            tfl, onx = export_tflite(model, Path(tmp) / "m.tflite"), export_onnx(model, Path(tmp) / "m.onnx")
            del model
        fns = {
            "keras": keras_runner(args.weights, net, x, args.threads),
            "tflite": tflite_runner(tfl, x, args.threads),
            "onnx": onnx_runner(onx, x, args.threads),
        }
    try:
        from livestyle.model.torch_reference import torch_runner

        for b in args.torch_blocks:
            fns[f"torch_{b}_blocks"] = torch_runner(b, h, w, args.threads)
    except ImportError as exc:
        print(f"PyTorch skipped: {exc}")
    # round-robin, one inference of each per round: on a shared machine the load drifts,
    # and interleaving spreads that drift evenly over the runtimes being compared
    times = {name: [] for name in fns}
    for _ in tqdm(range(args.runs), desc="rounds", unit="round"):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) * 1e3)
    stats = {name: summarize(t, args.drop_first) for name, t in times.items()}
    print(f"\n{w}x{h}, {args.runs} interleaved rounds (first {args.drop_first} dropped), {args.threads} threads, "
          f"load average now {os.getloadavg()[0]:.1f}")
    for name, s in stats.items():
        print(f"  {name:16s} median {s['median_ms']:8.1f} ms   p90 {s['p90_ms']:8.1f} ms   {s['fps']:.2f} fps")
    torch_keys = [k for k in stats if k.startswith("torch_")]
    if torch_keys:
        print("speed-up of the shipped model (torch median / runtime median):")
        for rt in ("keras", "tflite", "onnx"):
            for tk in torch_keys:
                print(f"  {rt} vs {tk:16s} {stats[tk]['median_ms'] / stats[rt]['median_ms']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
