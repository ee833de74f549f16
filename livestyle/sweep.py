"""The reference article's architecture experiment, reproducible: depth x separable x width.

The article pruned the 5 residual blocks of Johnson et al. and tried depthwise-separable
convs in them, timing each variant on an iPhone XS; it found separable blocks did not
help and kept 3 full blocks. Here every variant is built with seeded, untrained
weights (speed does not depend on training), costed from its Core ML program, timed
on the host runtimes at 480x853, and estimated on the A12 profiles. Defaults keep it
to a few minutes on 2 cores: 10 variants, 3 runs each (first dropped), width 32.
"""

from __future__ import annotations

import dataclasses
import itertools
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from livestyle import costmodel
from livestyle.atomic import atomic_path, write_json, write_text
from livestyle.bench import bench_input, onnx_runner, summarize, tflite_runner, time_runs, _tf_threads
from livestyle.config import NetworkConfig, _build
from livestyle.errors import LivestyleError

SWEEP_RUNTIMES = ("keras", "tflite", "onnx")


@dataclass(frozen=True)
class SweepConfig:
    res_blocks: tuple = (1, 2, 3, 4, 5)
    separable: tuple = (False, True)
    widths: tuple = (32,)
    runs: int = 3  # per runtime and variant, first dropped: a sweep ranks, the bench measures
    drop_first: int = 1
    threads: int = 2
    runtimes: tuple = SWEEP_RUNTIMES
    size: tuple = (853, 480)  # [height, width]
    display: tuple = (1920, 1080)  # in-model upscale of the Core ML program that is costed
    seed: int = 0
    budget_fps: float = 15.0
    profiles: dict = field(default_factory=costmodel.default_profiles)

    def __post_init__(self):
        if self.runs <= self.drop_first:
            raise LivestyleError("params.yaml", f"sweep.runs ({self.runs}) must exceed sweep.drop_first ({self.drop_first})")
        unknown = sorted(set(self.runtimes) - set(SWEEP_RUNTIMES))
        if unknown:
            raise LivestyleError("params.yaml", f"sweep.runtimes: unknown {', '.join(unknown)} (have {', '.join(SWEEP_RUNTIMES)})")

    @classmethod
    def from_params(cls, d, profiles: dict | None = None):
        """`profiles`: the bench section's device profiles, so they live once in params."""
        d = dict(d or {})
        profiles = costmodel.profiles_from_params(d.pop("profiles", None) or profiles)
        return dataclasses.replace(_build(cls, d, "sweep"), profiles=profiles)

    def variants(self) -> list[NetworkConfig]:
        return [NetworkConfig(res_blocks=b, separable=bool(s), width=w)
                for w, s, b in itertools.product(self.widths, self.separable, self.res_blocks)]


def _variant_row(net: NetworkConfig, cfg: SweepConfig, x: np.ndarray, tmp: Path) -> dict[str, Any]:
    import keras

    from livestyle.export import convert_coreml, display_model, export_onnx, export_tflite
    from livestyle.network import build_transformer

    h, w = x.shape[1:3]
    keras.utils.set_random_seed(cfg.seed)
    model = build_transformer(net, h, w)
    ml = convert_coreml(display_model(model, tuple(cfg.display)), "mlprogram", h, w)
    cost = costmodel.program_cost(costmodel.load_program(ml))
    row: dict[str, Any] = {
        "res_blocks": net.res_blocks, "separable": net.separable, "width": net.width,
        "gflops": round(cost.flops / 1e9, 3), "params": cost.params, "weight_bytes": cost.weight_bytes,
        "peak_activation_bytes": cost.peak_activation_bytes,
    }
    tag = f"b{net.res_blocks}_{'sep' if net.separable else 'full'}_w{net.width}"
    for rt in cfg.runtimes:
        if rt == "keras":
            fn = lambda: model.predict_on_batch(x)  # noqa: E731
        elif rt == "tflite":
            fn = tflite_runner(export_tflite(model, tmp / f"{tag}.tflite"), x, cfg.threads)
        else:
            fn = onnx_runner(export_onnx(model, tmp / f"{tag}.onnx"), x, cfg.threads)
        stats = summarize(time_runs(fn, cfg.runs, f"sweep {tag} {rt}"), cfg.drop_first, cfg.budget_fps)
        row[f"{rt}_median_ms"] = stats["median_ms"]
    for name, e in costmodel.estimates(cost, cfg.profiles, cfg.budget_fps).items():
        row[f"{name}_latency_ms_estimate"] = e["latency_ms_estimate"]
        row[f"{name}_meets_budget_estimate"] = e["meets_budget_estimate"]
    return row


def run_sweep(cfg: SweepConfig, out_dir: Path) -> dict:
    """One row per variant; writes sweep.json, sweep.md and sweep.png under out_dir."""
    from tqdm import tqdm

    _tf_threads(cfg.threads)
    h, w = (int(v) for v in cfg.size)
    x = bench_input(h, w, cfg.seed)
    rows = []
    with tempfile.TemporaryDirectory(prefix="livestyle_sweep_") as tmp:
        for net in tqdm(cfg.variants(), desc="sweep", unit="variant"):
            rows.append(_variant_row(net, cfg, x, Path(tmp)))
    result = {
        "size": {"height": h, "width": w},
        "protocol": {"runs": cfg.runs, "drop_first": cfg.drop_first, "threads": cfg.threads, "seed": cfg.seed},
        "budget": {"fps": cfg.budget_fps, "ms": round(1e3 / cfg.budget_fps, 2)},
        "profiles": {n: costmodel.profile_dict(p) for n, p in cfg.profiles.items()},
        "rows": rows,
    }
    out_dir = Path(out_dir)
    write_json(out_dir / "sweep.json", result)
    write_text(out_dir / "sweep.md", markdown(result))
    plot(result, out_dir / "sweep.png")
    return result


def markdown(result: dict) -> str:
    rows = result["rows"]
    if not rows:
        return "# Architecture sweep\n\nno variants\n"
    host = [k for k in rows[0] if k.endswith("_median_ms")]
    est = [k for k in rows[0] if k.endswith("_latency_ms_estimate")]
    s = result["size"]
    head = ["blocks", "convs", "width", "GFLOPs", "params"] + [f"{k[:-len('_median_ms')]} ms (host)" for k in host] \
        + [f"{k[:-len('_latency_ms_estimate')]} ms (estimate)" for k in est] + [f"meets {result['budget']['fps']:g} fps (estimate)"]
    lines = [f"# Architecture sweep at {s['width']}x{s['height']}", "",
             f"{result['protocol']['runs']} runs per runtime, first {result['protocol']['drop_first']} dropped; "
             "untrained seeded weights; A12 columns are cost-model estimates.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 3) + "---|"]
    for r in rows:
        meets = ", ".join(k[:-len("_meets_budget_estimate")] for k in r if k.endswith("_meets_budget_estimate") and r[k]) or "none"
        cells = [str(r["res_blocks"]), "separable" if r["separable"] else "full", str(r["width"]), f"{r['gflops']:.1f}",
                 f"{r['params']:,}"] + [f"{r[k]:.0f}" for k in host] + [f"{r[k]:.1f}" for k in est] + [meets]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> Path:
    """Left: host medians; right: A12 estimates with the budget line. x: residual blocks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    fig, (ax_h, ax_e) = plt.subplots(1, 2, figsize=(11, 4.2))
    groups = sorted({(r["width"], r["separable"]) for r in rows})
    host = [k for k in (rows[0] if rows else {}) if k.endswith("_median_ms")]
    est = [k for k in (rows[0] if rows else {}) if k.endswith("_latency_ms_estimate")]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for gi, (width, sep) in enumerate(groups):
        sel = sorted((r for r in rows if r["width"] == width and r["separable"] == sep), key=lambda r: r["res_blocks"])
        xs = [r["res_blocks"] for r in sel]
        style = "--" if sep else "-"
        label = f"{'separable' if sep else 'full'} w{width}"
        for ki, k in enumerate(host):
            ax_h.plot(xs, [r[k] for r in sel], style, marker="o", color=colors[ki % len(colors)],
                      label=f"{k[:-len('_median_ms')]} {label}")
        for ki, k in enumerate(est):
            ax_e.plot(xs, [r[k] for r in sel], style, marker="s", color=colors[(ki + 3) % len(colors)],
                      label=f"{k[:-len('_latency_ms_estimate')]} {label} (estimate)")
    budget = result["budget"]["ms"]
    ax_e.axhline(budget, color="#c44e52", linestyle=":", label=f"{result['budget']['fps']:g} fps budget ({budget:.1f} ms)")
    s = result["size"]
    ax_h.set_title(f"host CPU, measured median ({s['width']}x{s['height']})", fontsize=10)
    ax_e.set_title("A12: cost-model ESTIMATE", fontsize=10)
    for ax in (ax_h, ax_e):
        ax.set_xlabel("residual blocks")
        ax.set_ylabel("ms per frame" + (" (estimate)" if ax is ax_e else ""))
        ax.set_xticks(sorted({r["res_blocks"] for r in rows}))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    ax_e.set_ylim(bottom=0)
    ax_h.set_ylim(bottom=0)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path
