"""Calibrate the A12 cost model on published latencies of several networks and print
its leave-one-out errors (issue 13, part 4).

    python scripts/a12_calibrate.py [--points data/a12/points.yaml] [--exact-only]

Costs each point's network as an fp16 mlprogram (cached in data/a12/costs.json), fits
the profile's efficiency and per-op dispatch cost on all points, then, for each point,
fits on the others and predicts it. Writes the figures to data/a12/fit.json. The
fitted values go into params.yaml `bench.profiles` by hand (the file keeps comments).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=Path, default=Path("data/a12/points.yaml"))
    ap.add_argument("--cache", type=Path, default=Path("data/a12/costs.json"))
    ap.add_argument("--out", type=Path, default=Path("data/a12/fit.json"))
    ap.add_argument("--max-efficiency", type=float, default=1.0, help="a unit's sustained fraction of its peak, at most")
    ap.add_argument("--exact-only", action="store_true", help="leave out points costed on a stand-in network")
    args = ap.parse_args(argv)

    import numpy as np

    from livestyle.atomic import write_json
    from livestyle import markdown
    from livestyle.config import load_params
    from livestyle.measure import a12_fit, costmodel

    points = a12_fit.load_points(args.points)
    cost = a12_fit.costs(points, args.cache)
    profiles = costmodel.profiles_from_params((load_params().get("bench") or {}).get("profiles"))
    result = {"points": [], "fits": {}}
    for p in points:
        c = cost[p.name]
        result["points"].append({"name": p.name, "published_ms": p.latency_ms, "gflops": round(c.flops / 1e9, 3),
                                 "weight_mib": round(c.weight_bytes / 2**20, 2), "ops": len(c.ops),
                                 "approximate": p.approximate, "source": p.source})
    sets = {"all points": points, "exact points": [p for p in points if not p.approximate]}
    if args.exact_only:
        sets.pop("all points")
    for set_name, pts in sets.items():
        for prof_name, prof in profiles.items():
            for fit_dispatch in (False, True):
                label = f"{set_name}, {prof_name}, " + ("efficiency + dispatch" if fit_dispatch else "efficiency only")
                f = a12_fit.fit(pts, cost, prof, fit_dispatch, args.max_efficiency)
                loo = a12_fit.leave_one_out(pts, cost, prof, fit_dispatch, args.max_efficiency)
                errs = np.abs([r["error_pct"] for r in loo])
                result["fits"][label] = {"fit": f, "leave_one_out": loo, "median_abs_error_pct": float(np.median(errs)),
                                         "max_abs_error_pct": float(errs.max())}
                print(f"\n## {label}: fit on all {len(pts)}: efficiency {f['efficiency']}, dispatch {f['dispatch_s']:.2e} s, "
                      f"rms log error {f['rms_log_error']}")
                if prof_name != next(iter(profiles)):
                    continue  # the profiles differ by peak alone: the same predictions, another efficiency
                print(markdown.table(["held out", "published ms", "predicted ms", "error %"],
                                     [[r["name"], f"{r['published_ms']:g}", f"{r['predicted_ms']:.1f}", f"{r['error_pct']:+.0f}"]
                                      for r in loo], align="lrrr"))
                print(f"median |error| {np.median(errs):.0f} %, max {errs.max():.0f} %")
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
