"""Benchmark an exported style against the A12 frame budget (15 fps at 480x853).

The protocol is the reference article's: N inferences (100) on one 480x853 frame, the
first dropped because it includes warm-up (graph compilation, allocation), then the
median, 90th percentile, mean and fps (1000 / mean, i.e. sustained throughput) of the
rest. It runs on every runtime present here: Keras on TensorFlow (the model rebuilt
from the trained weights), TFLite with XNNPACK (ai_edge_litert), ONNX Runtime (CPU),
Core ML only on macOS (coremltools cannot predict elsewhere: the skip and its reason
are recorded), and, when PyTorch is importable, the classic PyTorch network of
pytorch/examples for comparison. Host CPU timings say nothing direct about an iPhone,
so the A12 figures come from the cost model of the exported Core ML program
(livestyle.measure.costmodel) and are labelled "estimate" everywhere they appear.
"""

from __future__ import annotations

import dataclasses
import gc
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from livestyle.atomic import write_json, write_text
from livestyle.config import NetworkConfig, _build
from livestyle.convert import runners, verify
from livestyle.convert.ort_session import OrtConfig
from livestyle.convert.quantize import QuantizeConfig
from livestyle.errors import LivestyleError
from livestyle.images import save_figure
from livestyle.markdown import table
from livestyle.measure import costmodel

# *_int8/_fp16: copies of the exports made here, calibrated on held-out photos and
# checked against Keras (PSNR) before they are timed (livestyle.convert.quantize)
QUANTIZED = ("onnx_int8", "tflite_int8", "tflite_fp16")
RUNTIMES = ("keras", "tflite", "onnx", "coreml", "torch") + QUANTIZED
ESTIMATE = "estimate"  # the label every cost-model figure carries


@dataclass(frozen=True)
class BenchConfig:
    runs: int = 100  # inferences per runtime, including the dropped ones
    drop_first: int = 1  # warm-up runs left out of the statistics
    threads: int = 2  # CPU threads for TF, TFLite, ONNX Runtime, PyTorch
    runtimes: tuple = RUNTIMES
    budget_fps: float = 15.0
    size: tuple = (853, 480)  # [height, width] of the benchmarked model
    torch_blocks: tuple = (5, 3)  # PyTorch reference: the classic 5 blocks, and the shipped depth
    seed: int = 0
    profiles: dict = field(default_factory=costmodel.default_profiles)  # name -> DeviceProfile
    onnx: OrtConfig = field(default_factory=OrtConfig)  # ONNX Runtime session settings
    quantize: QuantizeConfig = field(default_factory=QuantizeConfig)

    def __post_init__(self):
        if self.runs <= self.drop_first or self.drop_first < 0:
            raise LivestyleError("params.yaml", f"bench.runs ({self.runs}) must exceed bench.drop_first ({self.drop_first})")
        unknown = sorted(set(self.runtimes) - set(RUNTIMES))
        if unknown:
            raise LivestyleError("params.yaml", f"bench.runtimes: unknown {', '.join(unknown)} (have {', '.join(RUNTIMES)})")

    @classmethod
    def from_params(cls, d):
        d = dict(d or {})
        profiles = costmodel.profiles_from_params(d.pop("profiles", None))
        onnx, quantize = OrtConfig.from_params(d.pop("onnx", None)), QuantizeConfig.from_params(d.pop("quantize", None))
        return dataclasses.replace(_build(cls, d, "bench"), profiles=profiles, onnx=onnx, quantize=quantize)

    @property
    def budget_ms(self) -> float:
        return 1e3 / self.budget_fps


# -- protocol --------------------------------------------------------------------


def time_runs(fn: Callable[[], Any], runs: int, desc: str = "bench", clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Milliseconds of each of `runs` calls of `fn`, in order (nothing dropped yet)."""
    from tqdm import tqdm

    times = []
    for _ in tqdm(range(runs), desc=desc, unit="run", leave=False):
        t0 = clock()
        fn()
        times.append((clock() - t0) * 1e3)
    return times


def summarize(times_ms: list[float], drop_first: int, budget_fps: float = costmodel.BUDGET_FPS) -> dict[str, Any]:
    """The article's statistics over the runs left after dropping the first ones."""
    kept = np.asarray(times_ms[drop_first:], dtype=np.float64)
    if kept.size == 0:
        raise ValueError("no runs left after dropping the warm-up runs")
    mean = float(kept.mean())
    return {
        "median_ms": round(float(np.median(kept)), 3),
        "p90_ms": round(float(np.percentile(kept, 90)), 3),
        "mean_ms": round(mean, 3),
        "fps": round(1e3 / mean, 3),
        "runs_timed": int(kept.size),
        "dropped_ms": [round(t, 3) for t in times_ms[:drop_first]],
        "meets_budget": bool(float(np.median(kept)) <= 1e3 / budget_fps),
    }


def bench_input(height: int, width: int, seed: int = 0) -> np.ndarray:
    """One fixed frame, NHWC float32 RGB 0..255 (content does not change the cost)."""
    return np.random.default_rng(seed).uniform(0, 255, (1, height, width, 3)).astype(np.float32)


# -- runners: each returns a zero-argument callable doing one inference ----------


def keras_runner(weights_path: Path | None, net_cfg: NetworkConfig, x: np.ndarray, threads: int):
    _tf_threads(threads)
    model = _keras_model(weights_path, net_cfg, x.shape[1], x.shape[2])
    # predict_on_batch compiles the graph once (in the dropped first run), like an app
    return lambda: model.predict_on_batch(x)


def _tf_threads(threads: int) -> None:
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # TF already initialised in this process: keep its setting


def tflite_runner(path: Path, x: np.ndarray, threads: int):
    """The LiteRT runner the verify stage runs, bound to the bench input."""
    run = runners.tflite_runner(path, threads)
    return lambda: run(x[0])[None]  # batch of one, as the input


def onnx_runner(path: Path, x: np.ndarray, threads: int, settings: OrtConfig | None = None):
    run = runners.onnx_runner(path, threads, settings)
    return lambda: run(x[0])[None]  # batch of one, as the input


def coreml_runner(path: Path, x: np.ndarray):
    from PIL import Image

    from livestyle.convert.coreml_io import load_mlmodel

    model = load_mlmodel(path, for_prediction=True)
    img = Image.fromarray(x[0].clip(0, 255).astype(np.uint8))
    return lambda: model.predict({"image": img})


def coreml_skip_reason() -> str | None:
    if platform.system() != "Darwin":
        return f"Core ML predicts only on macOS (coremltools has no runtime on {platform.system()})"
    return None


def _model_path(export_dir: Path, style: str, fmt: str, h: int, w: int) -> Path | None:
    from livestyle.convert.export import model_filename

    for multiple in (False, True):
        p = Path(export_dir) / model_filename(style, fmt, h, w, multiple)
        if p.exists():
            return p
    return None


def host_runners(export_dir: Path, style: str, weights_path: Path | None, net_cfg: NetworkConfig, cfg: BenchConfig, x: np.ndarray):
    """name -> (callable | None, skip reason | None), built lazily one at a time."""
    h, w = x.shape[1:3]
    for name in cfg.runtimes:
        if name == "torch" or name in QUANTIZED:
            continue  # the PyTorch reference and the quantized copies are separate steps
        if name == "keras":
            yield name, (lambda: keras_runner(weights_path, net_cfg, x, cfg.threads)), None
            continue
        if name == "coreml" and (reason := coreml_skip_reason()):
            yield name, None, reason
            continue
        fmt = {"tflite": "tflite", "onnx": "onnx", "coreml": "mlprogram"}[name]
        path = _model_path(export_dir, style, fmt, h, w)
        if path is None:
            yield name, None, f"no {fmt} model for {style} at {w}x{h} in {export_dir}"
        elif name == "tflite":
            yield name, (lambda p=path: tflite_runner(p, x, cfg.threads)), None
        elif name == "onnx":
            yield name, (lambda p=path: onnx_runner(p, x, cfg.threads, cfg.onnx)), None
        else:
            yield name, (lambda p=path: coreml_runner(p, x)), None


def bench_runner(make: Callable[[], Callable], cfg: BenchConfig, desc: str) -> dict:
    fn = make()
    stats = summarize(time_runs(fn, cfg.runs, desc), cfg.drop_first, cfg.budget_fps)
    del fn
    gc.collect()
    return stats


def torch_comparison(cfg: BenchConfig, height: int, width: int, host: dict) -> dict:
    """PyTorch's classic network timed here, and how the shipped model compares."""
    try:
        from livestyle.model.torch_reference import torch_runner
    except ImportError as exc:
        return {"skipped": f"PyTorch not importable ({exc})"}
    import torch

    out: dict[str, Any] = {"torch_version": torch.__version__, "mode": "eager, torch.inference_mode, float32"}
    for blocks in cfg.torch_blocks:
        key = f"torch_{blocks}_blocks"
        out[key] = bench_runner(lambda b=blocks: torch_runner(b, height, width, cfg.threads, cfg.seed), cfg, f"bench {key}")
    # ratio > 1: the shipped model is that many times faster than PyTorch's network
    out["speedup_vs_torch"] = {
        f"{rt}_vs_torch_{b}_blocks": round(out[f"torch_{b}_blocks"]["median_ms"] / host[rt]["median_ms"], 3)
        for rt in host if "median_ms" in host[rt] for b in cfg.torch_blocks
    }
    # the headlines: the fastest runtime at equal output (the exports verify checks at
    # their fp32/fp16 bounds), and the fastest quantized copy that passed its own bound
    for key, quantized in (("fastest", False), ("fastest_quantized", True)):
        ok = {rt: r["median_ms"] for rt, r in host.items()
              if "median_ms" in r and ("psnr_db" in r) == quantized and r.get("verified", True)}
        if ok and cfg.torch_blocks:
            best, b = min(ok, key=ok.get), cfg.torch_blocks[0]
            out[key] = {"runtime": best, "median_ms": ok[best], f"speedup_vs_torch_{b}_blocks":
                        round(out[f"torch_{b}_blocks"]["median_ms"] / ok[best], 3)}
    return out


# -- the stage entry -------------------------------------------------------------


def quantized_runtimes(export_dir: Path, style: str, weights_path: Path | None, net_cfg: NetworkConfig, cfg: BenchConfig,
                       x: np.ndarray, heldout_dir: Path | None) -> dict[str, dict]:
    """Each quantized copy in cfg.runtimes: made, checked against Keras, then timed."""
    import tempfile

    from livestyle.convert import quantize

    names = [n for n in cfg.runtimes if n in QUANTIZED]
    if not names:
        return {}
    if heldout_dir is None or not Path(heldout_dir).is_dir():
        return {n: {"skipped": f"no held-out photos to calibrate on ({heldout_dir})"} for n in names}
    h, w = x.shape[1:3]
    q = cfg.quantize
    photos = quantize.read_photos(heldout_dir)
    calib = quantize.calibration_frames(photos, q.calibration_frames, h, w, q.min_crop, q.seed)
    # checked on the whole photos, not on the calibration crops
    check = [runners.fit_frame(p, h, w).astype(np.float32) for p in photos]
    model = _keras_model(weights_path, net_cfg, h, w)
    reference = runners.keras_reference(model)
    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            fmt, mode = name.split("_")
            dst = Path(tmp) / f"{style}_{mode}.{fmt}"
            if fmt == "onnx":
                src = _model_path(export_dir, style, "onnx", h, w)
                if src is None:
                    out[name] = {"skipped": f"no onnx model for {style} at {w}x{h} in {export_dir}"}
                    continue
                run = runners.onnx_runner(quantize.onnx_int8(src, dst, calib, q.float_ends), cfg.threads, cfg.onnx)
                fp32 = src
            else:
                run = runners.tflite_runner(quantize.tflite_variant(model, dst, mode, calib), cfg.threads)
                fp32 = _model_path(export_dir, style, "tflite", h, w)
            quality = verify.compare(run, reference, check, q.min_psnr, name)
            stats = bench_runner(lambda r=run: (lambda: r(x[0])), cfg, f"bench {style} {name}")
            out[name] = {**stats, "psnr_db": quality["psnr_db"], "min_psnr": q.min_psnr, "verified": quality["passed"],
                         "size_bytes": quantize.size_bytes(dst),
                         "fp32_size_bytes": quantize.size_bytes(fp32) if fp32 is not None else None}
    return out


def _keras_model(weights_path: Path | None, net_cfg: NetworkConfig, h: int, w: int):
    """The transformer at h x w with the trained weights (untrained when None), built as
    export builds it (input levels, edge margin, palette): the reference the exports are held to."""
    from livestyle.convert.export import load_transformer
    from livestyle.model.network import build_transformer

    if weights_path is None:
        return build_transformer(net_cfg, h, w, input_levels=net_cfg.input_levels, edge_margin=net_cfg.edge_margin)
    if not Path(weights_path).exists():
        raise LivestyleError(weights_path, "no such weights file")
    return load_transformer(Path(weights_path), net_cfg, h, w)


def bench_style(export_dir: Path, style: str, weights_path: Path | None, net_cfg: NetworkConfig, cfg: BenchConfig,
                out_dir: Path, heldout_dir: Path | None = None) -> dict:
    """Time every runtime, estimate the A12, write bench.json, bench.md and bench.png.
    `heldout_dir`: photos the quantized copies are calibrated and checked on."""
    export_dir, out_dir = Path(export_dir), Path(out_dir)
    h, w = (int(v) for v in cfg.size)
    x = bench_input(h, w, cfg.seed)
    load_before = _load()
    host: dict[str, Any] = {}
    for name, make, reason in host_runners(export_dir, style, weights_path, net_cfg, cfg, x):
        host[name] = {"skipped": reason} if reason else bench_runner(make, cfg, f"bench {style} {name}")
    host.update(quantized_runtimes(export_dir, style, weights_path, net_cfg, cfg, x, heldout_dir))

    result: dict[str, Any] = {
        "style": style,
        "size": {"height": h, "width": w},
        "protocol": {"runs": cfg.runs, "drop_first": cfg.drop_first, "threads": cfg.threads,
                     "onnx": dataclasses.asdict(cfg.onnx)},
        "budget": {"fps": cfg.budget_fps, "ms": round(cfg.budget_ms, 2)},
        "host": host,
    }
    if "torch" in cfg.runtimes:
        result["torch_comparison"] = torch_comparison(cfg, h, w, host)
    # a shared machine's load explains noisy host figures: record it with them
    result["machine"] = {**_machine(), "load_1m_before": load_before, "load_1m_after": _load()}

    mlpackage = _model_path(export_dir, style, "mlprogram", h, w)
    if mlpackage is None:
        result["a12_estimate"] = {"skipped": f"no mlprogram for {style} at {w}x{h} in {export_dir}"}
    else:
        cost = costmodel.program_cost(costmodel.load_program(mlpackage))
        result["cost"] = cost.summary()
        result["a12_estimate"] = costmodel.estimates(cost, cfg.profiles, cfg.budget_fps)
        result["a12_estimate"]["profiles"] = {n: costmodel.profile_dict(p) for n, p in cfg.profiles.items()}

    write_json(out_dir / "bench.json", result)
    write_text(out_dir / "bench.md", markdown(result))
    plot(result, out_dir / "bench.png")
    return result


def _load() -> float | None:
    import os

    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _machine() -> dict:
    import os

    return {"system": platform.system(), "machine": platform.machine(), "cpus": os.cpu_count()}


# -- reporting ---------------------------------------------------------------------


def _estimate_rows(result: dict) -> list[tuple[str, dict]]:
    est = result.get("a12_estimate") or {}
    return [(n, e) for n, e in est.items() if isinstance(e, dict) and "latency_ms_estimate" in e]


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _host_cells(name: str, s: dict) -> list[str]:
    if "skipped" in s:
        return [name, f"skipped: {s['skipped']}", "", "", "", ""]
    return [name, f"{s['median_ms']:.1f}", f"{s['p90_ms']:.1f}", f"{s['mean_ms']:.1f}", f"{s['fps']:.2f}", _yes(s["meets_budget"])]


def markdown(result: dict) -> str:
    size = result["size"]
    budget = result["budget"]
    lines = [
        f"# Benchmark: {result['style']} at {size['width']}x{size['height']}",
        "",
        f"{result['protocol']['runs']} runs per runtime, first {result['protocol']['drop_first']} dropped, "
        f"{result['protocol']['threads']} threads; budget {budget['fps']:g} fps = {budget['ms']} ms/frame. "
        f"Host: {result['machine']['cpus']} CPUs, load average {result['machine']['load_1m_before']} before, "
        f"{result['machine']['load_1m_after']} after.",
        "",
        "## Host (measured)",
        "",
    ]
    rows = dict(result["host"])
    tc = result.get("torch_comparison") or {}
    rows.update({k: v for k, v in tc.items() if k.startswith("torch_") and isinstance(v, dict) and "median_ms" in v})
    lines.append(table(["runtime", "median ms", "p90 ms", "mean ms", "fps", "meets budget"],
                       [_host_cells(name, s) for name, s in rows.items()], align="lrrrrl"))
    if tc.get("speedup_vs_torch"):
        lines += ["", "Speed-up of the shipped model over PyTorch (torch median / runtime median): "
                  + ", ".join(f"{k} {v:.2f}x" for k, v in tc["speedup_vs_torch"].items())]
    for key, what in (("fastest", "Fastest runtime at equal output"), ("fastest_quantized", "Fastest quantized copy that passed its bound")):
        if tc.get(key):
            f = tc[key]
            ratio = next(v for k, v in f.items() if k.startswith("speedup"))
            lines += ["", f"{what}: {f['runtime']}, {f['median_ms']:.1f} ms, {ratio:.2f}x the classic network."]
    quant = {n: r for n, r in result["host"].items() if "psnr_db" in r}
    if quant:
        lines += ["", "## Quantized copies (calibrated on held-out crops, checked against Keras)", "", table(
            ["runtime", "median ms", "PSNR vs Keras dB (min)", "bound dB", "passed", "size KiB", "fp32 KiB"],
            [[n, f"{r['median_ms']:.1f}", f"{r['psnr_db']['min']:.1f}", f"{r['min_psnr']:g}", _yes(r["verified"]),
              f"{r['size_bytes'] / 1024:.0f}", f"{r['fp32_size_bytes'] / 1024:.0f}" if r.get("fp32_size_bytes") else ""]
             for n, r in quant.items()], align="lrrrlrr")]
    elif tc.get("skipped"):
        lines += ["", f"PyTorch comparison skipped: {tc['skipped']}"]
    est = _estimate_rows(result)
    lines += ["", "## A12 (estimate, from the Core ML program's cost model)", ""]
    if est:
        lines.append(table(
            ["profile", "latency ms (estimate)", "fps (estimate)", "compute ms (estimate)", "memory ms (estimate)",
             "meets budget (estimate)"],
            [[n, f"{e['latency_ms_estimate']:.1f}", f"{e['fps_estimate']:.1f}", f"{e['compute_ms_estimate']:.1f}",
              f"{e['memory_ms_estimate']:.1f}", _yes(e["meets_budget_estimate"])] for n, e in est], align="lrrrrl"))
    else:
        lines.append(f"skipped: {(result.get('a12_estimate') or {}).get('skipped', 'no cost model')}")
    if "cost" in result:
        c = result["cost"]
        lines += ["", f"Core ML program: {c['gflops']:.2f} GFLOPs, {c['params']:,} parameters, "
                  f"{c['weight_bytes'] / 2**20:.2f} MiB weights, peak activations {c['peak_activation_bytes'] / 2**20:.1f} MiB, "
                  f"{sum(c['op_counts'].values())} ops."]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> Path:
    """Bars: host medians (p90 whiskers) and A12 estimates (hatched), budget line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, values, errs, colors, hatches = [], [], [], [], []
    rows = {k: v for k, v in result["host"].items() if "median_ms" in v}
    tc = result.get("torch_comparison") or {}
    rows.update({k: v for k, v in tc.items() if k.startswith("torch_") and isinstance(v, dict) and "median_ms" in v})
    for name, s in rows.items():
        labels.append(f"{name} (host, measured)")
        values.append(s["median_ms"])
        errs.append(max(s["p90_ms"] - s["median_ms"], 0))
        colors.append("#4c72b0" if not name.startswith("torch") else "#8172b2")
        hatches.append("")
    for n, e in _estimate_rows(result):
        labels.append(f"{n} (ESTIMATE)")
        values.append(e["latency_ms_estimate"])
        errs.append(0)
        colors.append("#dd8452")
        hatches.append("//")
    fig, ax = plt.subplots(figsize=(8, 0.55 * max(len(labels), 2) + 1.6))
    y = np.arange(len(labels))
    bars = ax.barh(y, values, xerr=errs, color=colors, capsize=3)
    for b, hatch in zip(bars, hatches):
        b.set_hatch(hatch)
    for yi, v, e in zip(y, values, errs):
        ax.text((v + e) * 1.08, yi, f"{v:.0f} ms", va="center", fontsize=8)
    budget = result["budget"]["ms"]
    ax.axvline(budget, color="#c44e52", linestyle="--", label=f"{result['budget']['fps']:g} fps budget ({budget:.1f} ms)")
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("ms per frame (log scale); host: median with p90 whisker")
    s = result["size"]
    ax.set_title(f"{result['style']}: {s['width']}x{s['height']} inference; A12 bars are cost-model estimates", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    if values:
        ax.set_xlim(min(values + [budget]) / 3, max(v + e for v, e in zip(values, errs)) * 2.5)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)
