"""DVC stage: time a style's models on this machine and estimate the A12 frame time."""

import dataclasses
from pathlib import Path

from livestyle.config import WEIGHTS, load_params, style_config
from livestyle.convert.export import ExportConfig
from livestyle.errors import run_cli
from livestyle.measure.bench import BenchConfig, bench_style
from livestyle.provenance import check_export


def main(argv):
    (style,) = argv
    params = load_params()
    export = ExportConfig.from_params(params["export"])
    # the benchmarked size is the first exported size: named once, in export.sizes
    cfg = dataclasses.replace(BenchConfig.from_params(params["bench"]), size=tuple(export.sizes[0]))
    weights = Path("data/train", style, WEIGHTS)
    check_export(Path("data/export", style), style, weights)  # time one complete export of these weights
    # quantized copies are calibrated on the held-out photos of the prepare stage
    result = bench_style(Path("data/export", style), style, weights, style_config(params, style).network, cfg, Path("data/bench", style),
                         heldout_dir=Path("data/prepared/heldout"))
    for name, r in result["host"].items():
        print(f"{style} {name}: " + (f"median {r['median_ms']:.1f} ms" if "median_ms" in r else f"skipped ({r['skipped']})"))
    for key in ("fastest", "fastest_quantized"):
        if fastest := result.get("torch_comparison", {}).get(key):
            print(f"{style} {key}: " + ", ".join(f"{k} {v}" for k, v in fastest.items()))


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
