"""The reference article's architecture experiment, reproducible: depth x separable x width.

The article pruned the 5 residual blocks of Johnson et al. and tried depthwise-separable
convs in them, timing each variant on an iPhone XS; it found separable blocks did not
help and kept 3 full blocks. Here every variant is built with seeded, untrained
weights (speed does not depend on training), costed from its Core ML program, timed
on the host runtimes at 480x853, and estimated on the A12 profiles. Defaults keep it
to a few minutes on 2 cores: 10 variants, 3 runs each (first dropped), width 32.

Variants are the grid and every architecture of the trained manifest (`trained`);
the trained ones also get quality figures against a peer's output and make the
quality-vs-latency and quality-vs-size fronts (livestyle.measure.sweep_quality).
"""

from __future__ import annotations

import dataclasses
import itertools
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from livestyle.atomic import write_json, write_text
from livestyle.config import NetworkConfig, _build
from livestyle.errors import LivestyleError
from livestyle.images import save_figure
from livestyle.markdown import table
from livestyle.measure import costmodel
from livestyle.measure.bench import bench_input, onnx_runner, summarize, tflite_runner, time_runs, _tf_threads
from livestyle.measure.quality import FLAT_METRIC, METRICS, fmt_figure
from livestyle.measure.sweep_quality import (FIGURES, INPUTS_README, SweepQualityConfig, at_peer_quality, fronts,
                                             latency_keys, measure, trained_architectures, vs_peer)

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
    trained: str = ""  # folder of trained.json (data/sweep_trained); "": no trained architectures, no quality
    quality: SweepQualityConfig = field(default_factory=SweepQualityConfig)

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
        quality = SweepQualityConfig.from_params(d.pop("quality", None))
        return dataclasses.replace(_build(cls, d, "sweep"), profiles=profiles, quality=quality)

    def variants(self) -> list[NetworkConfig]:
        """The grid: widths x separable x res_blocks."""
        return [NetworkConfig(res_blocks=b, separable=bool(s), width=w)
                for w, s, b in itertools.product(self.widths, self.separable, self.res_blocks)]


def arch_name(net: NetworkConfig) -> str:
    return f"b{net.res_blocks}_{'sep' if net.separable else 'full'}_w{net.width}"


def _variant_row(net: NetworkConfig, cfg: SweepConfig, x: np.ndarray, tmp: Path) -> dict[str, Any]:
    import keras

    from livestyle.convert.export import convert_coreml, display_model, export_onnx, export_tflite
    from livestyle.model.network import build_transformer

    h, w = x.shape[1:3]
    keras.utils.set_random_seed(cfg.seed)
    model = build_transformer(net, h, w)
    ml = convert_coreml(display_model(model, tuple(cfg.display)), "mlprogram", h, w)
    cost = costmodel.program_cost(costmodel.load_program(ml))
    row: dict[str, Any] = {
        "arch": arch_name(net), "res_blocks": net.res_blocks, "separable": net.separable, "width": net.width,
        "gflops": round(cost.flops / 1e9, 3), "params": cost.params, "weight_bytes": cost.weight_bytes,
        "peak_activation_bytes": cost.peak_activation_bytes,
    }
    tag = arch_name(net)
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
    """One row per variant (the grid, then trained architectures not in it); writes
    sweep.json, sweep.md and sweep.png under out_dir."""
    from tqdm import tqdm

    _tf_threads(cfg.threads)
    h, w = (int(v) for v in cfg.size)
    x = bench_input(h, w, cfg.seed)
    archs = trained_architectures(cfg.trained)
    trained = {a.net: a.name for a in archs}
    rows = []
    with tempfile.TemporaryDirectory(prefix="livestyle_sweep_") as tmp:
        for net in tqdm(list(dict.fromkeys([*cfg.variants(), *trained])), desc="sweep", unit="variant"):
            rows.append({**_variant_row(net, cfg, x, Path(tmp)), "trained": trained.get(net), "quality": None})
    result = {
        "size": {"height": h, "width": w},
        "protocol": {"runs": cfg.runs, "drop_first": cfg.drop_first, "threads": cfg.threads, "seed": cfg.seed},
        "budget": {"fps": cfg.budget_fps, "ms": round(1e3 / cfg.budget_fps, 2)},
        "profiles": {n: costmodel.profile_dict(p) for n, p in cfg.profiles.items()},
        "rows": rows,
        "quality": add_quality(rows, archs, cfg.quality),
    }
    if result["quality"].get("peer"):
        result.update(fronts(rows, cfg.quality.tolerance, cfg.quality.fps))
    else:
        result.update(fronts={}, recommended={})
    out_dir = Path(out_dir)
    write_json(out_dir / "sweep.json", result)
    write_text(out_dir / "sweep.md", markdown(result))
    plot(result, out_dir / "sweep.png")
    return result


def add_quality(rows: list[dict], archs, cfg: SweepQualityConfig) -> dict[str, Any]:
    """Measure the trained architectures and fill their rows' `quality`; the result's
    quality section. Without trained architectures or inputs: {"absent": why}, printed
    as one line (a fresh clone has no data/quality_inputs: the sweep still runs)."""
    missing = cfg.missing()
    if not archs or missing:
        why = ("no trained architectures (sweep.trained is empty)" if not archs else
               f"missing {', '.join(missing)}: copy the painting, photo(s) and peer output there ({INPUTS_README})")
        print(f"sweep: quality not measured: {why}")
        return {"absent": why}
    q = measure(archs, cfg)
    for row in rows:
        if row["trained"]:
            figures = q["architectures"][row["trained"]]
            row["quality"] = {**{k: round(figures[k], 4) for k in FIGURES},
                              "vs_peer": vs_peer(figures["first_photo"], q["peer"], cfg.flat_tolerance) if q["peer"] else None}
    return q


def _quality_cells(q: dict | None, tolerance: float) -> list[str]:
    if not q:
        return ["-"] * 6
    vp = q.get("vs_peer")
    at = "-" if not vp else ("yes" if at_peer_quality(vp, tolerance) else "no (blob)" if vp.get("blob") else "no")
    # the measure that sets the score, so a reader sees what keeps a network from the peer
    worst = max(METRICS, key=lambda k: vp[k]) if vp else None
    flat = f"{100 * q[FLAT_METRIC]:.1f}" if FLAT_METRIC in q else "-"
    return [fmt_figure(q[k]) for k in METRICS] + [flat, f"{vp['score']:.2f} ({worst})" if vp else "-", at]


def markdown(result: dict) -> str:
    rows = result["rows"]
    if not rows:
        return "# Architecture sweep\n\nno variants\n"
    host = [k for k in rows[0] if k.endswith("_median_ms")]
    est = latency_keys(rows)
    s = result["size"]
    quality = result.get("quality") or {}
    tol = quality.get("tolerance", 0.0)
    head = ["blocks", "convs", "width", "trained", "GFLOPs", "params", "weights KiB"] \
        + [f"{k[:-len('_median_ms')]} ms (host)" for k in host] \
        + [f"{k[:-len('_latency_ms_estimate')]} ms (estimate)" for k in est] + [f"meets {result['budget']['fps']:g} fps (estimate)"] \
        + ["texture", "colour", "content", "flat %", "vs peer", "at peer"]
    lines = [f"# Architecture sweep at {s['width']}x{s['height']}", "",
             f"{result['protocol']['runs']} runs per runtime, first {result['protocol']['drop_first']} dropped; "
             "latency from untrained seeded weights (speed does not depend on them); A12 columns are cost-model "
             "estimates; weights KiB: the Core ML program's fp16 weights. Quality columns (0 = best): trained "
             "architectures only, see below.", ""]
    cells = []
    for r in rows:
        meets = ", ".join(k[:-len("_meets_budget_estimate")] for k in r if k.endswith("_meets_budget_estimate") and r[k]) or "none"
        cells.append([str(r["res_blocks"]), "separable" if r["separable"] else "full", str(r["width"]), r.get("trained") or "-",
                      f"{r['gflops']:.1f}", f"{r['params']:,}", f"{r['weight_bytes'] / 1024:,.0f}"]
                     + [f"{r[k]:.0f}" for k in host] + [f"{r[k]:.1f}" for k in est] + [meets] + _quality_cells(r.get("quality"), tol))
    blank = ["-"] * (len(head) - 10)
    if quality.get("peer"):
        ref = Path(quality["reference"]).name
        cells.append([f"peer ({ref})", "", "", ""] + blank + _quality_cells({**quality["peer"], "vs_peer": None}, tol))
    if quality.get("photo"):
        cells.append(["photo (unstylized)", "", "", ""] + blank + _quality_cells({**quality["photo"], "vs_peer": None}, tol))
    # text left (the variant, meets, at peer), figures right
    align = "llll" + "r" * (3 + len(host) + len(est)) + "l" + "rrrrr" + "l"
    lines.append(table(head, cells, align=align))
    return "\n".join(lines + [""] + quality_markdown(result)) + "\n"


def _pick_text(e: dict) -> str:
    return f"{e['latency_ms_estimate']:.1f} ms, {e['vs_peer']:.2f}x peer"


def quality_markdown(result: dict) -> list[str]:
    """The quality rule, the fronts and the recommendations, or why there are none."""
    quality = result.get("quality") or {}
    lines = ["## Quality and fronts", ""]
    if "absent" in quality:
        return lines + [f"Not measured: {quality['absent']}. Latency and size above are complete; no front is drawn.", ""]
    tol = quality["tolerance"]
    photos = ", ".join(Path(p).name for p in quality["photos"])
    lines += [f"Each trained architecture stylizes {photos} (long side capped as the quality stage) and is scored against "
              f"the painting {Path(quality['painting']).name} with livestyle.measure.quality: texture (random-CNN Gram distance), "
              "colour (Lab sliced Wasserstein) and content (1 - multi-scale SSIM structure against the photo). "
              "All are distances, 0 = best; the table shows means over the photos.", ""]
    if not quality.get("peer"):
        return lines + ["No peer reference (sweep.quality.reference): nothing is judged against the peer, no front is drawn.", ""]
    lines += [f"**Rule.** On the peer's photo ({Path(quality['photos'][0]).name}) each distance is divided by the peer's "
              f"({Path(quality['reference']).name}); *vs peer* is the worst of the three ratios (1.00 = the peer's figures, "
              f"lower = better). An architecture is **at peer quality** when vs peer <= {1 + tol:.2f}: no distance more than "
              f"{tol:.0%} worse than the peer's, **and no blob**: *flat %*, the share of the frame in large flat patches "
              "(livestyle.measure.quality.flat_area), at most "
              f"{100 * quality.get('flat_tolerance', 0.0):.0f} point(s) above the peer's; the distances hardly see a flat white "
              "sky, so a blob rules a network out whatever its score. A front is the Pareto set over (cost, vs peer); its "
              "smallest member at peer quality is the answer to how small the network can get before it looks worse than "
              "the peer.", ""]
    by = {r["arch"]: r for r in result["rows"]}
    for name, f in result["fronts"].items():
        title = "size (Core ML fp16 weight bytes)" if name == "size" else f"{name[:-len('_latency')]} latency (estimate)"
        cells = []
        for m in f["members"]:
            r = by[m]
            cost = f"{r[f['cost']] / 1024:,.0f} KiB" if name == "size" else f"{r[f['cost']]:.1f} ms"
            cells.append([m, r["trained"], cost] + _quality_cells(r["quality"], tol)[-2:])
        lines += [f"### Quality vs {title}", "", table(["front member", "trained", "cost", "vs peer", "at peer"], cells, align="llrrl"),
                  "", f"Smallest at peer quality: **{f['smallest_at_peer_quality'] or 'none'}**"
                  + (f" ({f['note']})" if f["note"] else ""), ""]
    lines += ["### Recommended (A12, estimates)", "",
              "The best-scoring architecture at peer quality whose latency estimate meets the frame budget; where none "
              "is, the best-scoring one within the budget all the same.", ""]
    cells = []
    for profile, picks in result["recommended"].items():
        cells.append([profile] + [f"**{e['arch']}** ({_pick_text(e)})" if e["arch"] else f"none: {e['why']}" + (
                      f"; best within {e['budget_ms']:.1f} ms: {e['closest_in_budget']['arch']} ({_pick_text(e['closest_in_budget'])})"
                      if e.get("closest_in_budget") else "") for e in picks.values()])
    fps = next(iter(result["recommended"].values()), {})
    return lines + [table(["profile"] + [f"{k} fps" for k in fps], cells), ""]


def plot(result: dict, path: Path) -> Path:
    """Top: host medians and A12 estimates by residual blocks, budget line. Bottom (when
    quality was judged): vs peer against each A12 latency estimate and against size,
    fronts drawn, the peer and tolerance lines, the 15/30 fps budgets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    judged = [r for r in rows if (r.get("quality") or {}).get("vs_peer")]
    if judged:
        fig = plt.figure(figsize=(15, 10))
        grid = fig.add_gridspec(2, 6)
        ax_h, ax_e = fig.add_subplot(grid[0, :3]), fig.add_subplot(grid[0, 3:])
        bottom = [fig.add_subplot(grid[1, 2 * i : 2 * i + 2]) for i in range(3)]
    else:
        fig, (ax_h, ax_e) = plt.subplots(1, 2, figsize=(11, 4.2))
    _plot_latency(result, ax_h, ax_e)
    if judged:
        fronts = list(result["fronts"].items())[:3]
        for ax, (name, front) in zip(bottom, fronts):
            _plot_front(result, judged, name, front, ax)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)


def _plot_latency(result: dict, ax_h, ax_e) -> None:
    import matplotlib.pyplot as plt

    rows = result["rows"]
    groups = sorted({(r["width"], r["separable"]) for r in rows})
    host = [k for k in (rows[0] if rows else {}) if k.endswith("_median_ms")]
    est = latency_keys(rows)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    markers = "os^Dv<>p"
    for gi, (width, sep) in enumerate(groups):
        sel = sorted((r for r in rows if r["width"] == width and r["separable"] == sep), key=lambda r: r["res_blocks"])
        xs = [r["res_blocks"] for r in sel]
        style = "--" if sep else "-"
        label = f"{'separable' if sep else 'full'} w{width}"
        for ki, k in enumerate(host):
            ax_h.plot(xs, [r[k] for r in sel], style, marker=markers[gi % len(markers)], color=colors[ki % len(colors)],
                      label=f"{k[:-len('_median_ms')]} {label}")
        for ki, k in enumerate(est):
            ax_e.plot(xs, [r[k] for r in sel], style, marker=markers[gi % len(markers)], color=colors[(ki + 3) % len(colors)],
                      label=f"{k[:-len('_latency_ms_estimate')]} {label}")
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
        ax.legend(fontsize=6.5, ncol=3, loc="upper left")
        # head room for the legend above the curves
        ax.set_ylim(0, 1.45 * max((float(np.max(line.get_ydata())) for line in ax.get_lines() if len(line.get_ydata())), default=1.0))


def _plot_front(result: dict, judged: list[dict], name: str, front: dict, ax) -> None:
    key = front["cost"]
    size = name == "size"
    scale = 1 / 1024 if size else 1.0
    tol = result["quality"]["tolerance"]
    for r in judged:
        q = r["quality"]["vs_peer"]["score"]
        member = r["arch"] in front["members"]
        ax.scatter(r[key] * scale, q, s=50 if member else 30, zorder=3,
                   color="#4c72b0" if member else "#999999", marker="o" if not r["separable"] else "s")
        blob = r["quality"]["vs_peer"].get("blob")  # ruled out of peer quality whatever its score
        if blob:
            ax.scatter(r[key] * scale, q, s=120, zorder=2, facecolors="none", edgecolors="#c44e52")
        ax.annotate(r["arch"] + (" (blob)" if blob else ""), (r[key] * scale, q), textcoords="offset points",
                    xytext=(5, 4), fontsize=7.5, color="#c44e52" if blob else "black")
    pts = sorted((by[key] * scale, by["quality"]["vs_peer"]["score"]) for by in judged if by["arch"] in front["members"])
    if pts:
        ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", color="#4c72b0", label="Pareto front")
    ax.axhline(1.0, color="#55a868", label="peer (1.0)")
    ax.axhline(1 + tol, color="#55a868", linestyle="--", label=f"peer + {tol:.0%} (at peer quality below)")
    if not size:
        # the frame rates of sweep.quality.fps, as the recommendations use them
        for fps, style in zip((float(f) for f in next(iter(result["recommended"].values()), {})), (":", "-.", "--")):
            ax.axvline(1e3 / fps, color="#c44e52", linestyle=style, label=f"{fps:g} fps ({1e3 / fps:.1f} ms)")
    pick = front["smallest_at_peer_quality"]
    subtitle = f"smallest at peer quality: {pick}" if pick else "none at peer quality"
    what = "size: Core ML fp16 weights (KiB)" if size else f"{name[:-len('_latency')]} latency, ms (ESTIMATE)"
    ax.set_title(f"quality vs {what.split(':')[0].split(',')[0]}\n{subtitle}", fontsize=10)
    ax.set_xlabel(what)
    ax.set_ylabel("vs peer: worst distance ratio (lower = better)")
    ax.margins(x=0.15)  # room for the right-most labels
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right", framealpha=0.9)  # the points sit above the peer lines
