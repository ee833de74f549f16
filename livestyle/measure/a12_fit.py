"""Calibrate the A12 cost model on published on-device latencies of several networks,
and say how well it predicts a network it was not fitted on (leave-one-out).

Fitted on the article's single 66 ms point alone, the model returns 66 ms for the
shipped network by construction. Here each published point (data/a12/points.yaml: the
network, the device, the figure and where it was published) is costed the way bench
costs a style: the network is converted to an fp16 mlprogram and
livestyle.measure.costmodel counts its ops. The free parameters of the per-op roofline are
the sustained fraction of peak (`efficiency`) and the fixed cost per dispatched op
(`dispatch_s`); they are fitted by least squares on log latency (a 2x error counts
the same either way), on a grid: the model is not smooth (max(compute, memory) per
op) and, vectorised over the grid, cheap.

Costs are cached (data/a12/costs.json) because converting Xception takes minutes:
the cache is keyed by the point's network spec and the coremltools version.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from livestyle.errors import LivestyleError
from livestyle.measure import costmodel

# Keras applications whose architecture (not weights) the points name
KERAS_APPS = ("MobileNet", "MobileNetV2", "Xception", "InceptionV3", "ResNet50", "VGG16")
_EFF_GRID = np.geomspace(0.01, 10.0, 241)
_DISPATCH_GRID = np.concatenate([[0.0], np.geomspace(1e-6, 3e-3, 60)])


@dataclass(frozen=True)
class Point:
    name: str
    device: str
    latency_ms: float
    source: str  # URL of the published figure
    network: dict  # {keras_app: NAME, input: [h, w], options: {...}} or {transformer: {...}, input, display}
    note: str = ""
    approximate: bool = False  # the costed network is a stand-in for the measured one

    @property
    def key(self) -> str:
        return json.dumps(self.network, sort_keys=True)


def load_points(path: Path) -> list[Point]:
    import yaml

    path = Path(path)
    if not path.exists():
        raise LivestyleError(path, "no such points file")
    raw = yaml.safe_load(path.read_text()) or {}
    points = []
    for i, d in enumerate(raw.get("points") or []):
        missing = [k for k in ("name", "device", "latency_ms", "source", "network") if k not in d]
        if missing:
            raise LivestyleError(path, f"point {i + 1}: missing {', '.join(missing)}")
        if not str(d["source"]).startswith("http"):
            raise LivestyleError(path, f"point {d['name']}: source must be a URL, got {d['source']!r}")
        if not float(d["latency_ms"]) > 0:
            raise LivestyleError(path, f"point {d['name']}: latency_ms must be > 0")
        points.append(Point(**{**d, "latency_ms": float(d["latency_ms"])}))
    if len({p.name for p in points}) != len(points):
        raise LivestyleError(path, "point names must be unique")
    return points


# -- costing -----------------------------------------------------------------------


def keras_network(spec: dict):
    """The Keras model a point names: a keras.applications architecture (random weights:
    only the shape costs) or livestyle's transformer with its display upscale."""
    import keras

    h, w = spec["input"]
    if "keras_app" in spec:
        name = spec["keras_app"]
        if name not in KERAS_APPS:
            raise LivestyleError("points", f"unknown keras_app {name!r} (have {', '.join(KERAS_APPS)})")
        return getattr(keras.applications, name)(weights=None, input_shape=(h, w, 3), **(spec.get("options") or {}))
    from livestyle.config import NetworkConfig
    from livestyle.convert.export import display_model
    from livestyle.model.network import build_transformer

    model = build_transformer(NetworkConfig(**spec["transformer"]), h, w)
    return display_model(model, tuple(spec["display"])) if spec.get("display") else model


def mlprogram_cost(model) -> costmodel.ProgramCost:
    """Cost of a Keras model converted as bench's exports are: fp16 mlprogram, iOS16."""
    import coremltools as ct

    h, w = model.input_shape[1:3]
    ml = ct.convert(model, source="tensorflow", convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
                    compute_precision=ct.precision.FLOAT16, inputs=[ct.TensorType(shape=(1, h, w, 3))])
    return costmodel.program_cost(costmodel.load_program(ml))


def costs(points: list[Point], cache_path: Path, progress: bool = True) -> dict[str, costmodel.ProgramCost]:
    """name -> ProgramCost, from the cache where the spec and coremltools version match."""
    import coremltools as ct

    cache = json.loads(Path(cache_path).read_text()) if Path(cache_path).exists() else {}
    out, dirty = {}, False
    for p in points:
        entry = cache.get(p.key)
        if entry is None or entry.get("coremltools") != ct.__version__:
            if progress:
                print(f"costing {p.name} ({p.network})", flush=True)
            entry = {"coremltools": ct.__version__, "cost": _to_json(mlprogram_cost(keras_network(p.network)))}
            cache[p.key], dirty = entry, True
        out[p.name] = _from_json(entry["cost"])
    if dirty:
        from livestyle.atomic import write_json

        write_json(cache_path, cache)
    return out


def _to_json(cost: costmodel.ProgramCost) -> dict:
    return {"ops": [dataclasses.asdict(o) for o in cost.ops], "peak_activation_bytes": cost.peak_activation_bytes,
            "input_bytes": cost.input_bytes, "unknown_op_types": cost.unknown_op_types}


def _from_json(d: dict) -> costmodel.ProgramCost:
    ops = [costmodel.OpCost(**{**o, "output_shape": tuple(o["output_shape"])}) for o in d["ops"]]
    return costmodel.ProgramCost(ops, d["peak_activation_bytes"], d["input_bytes"], list(d["unknown_op_types"]))


# -- fitting -----------------------------------------------------------------------


def _curve(cost: costmodel.ProgramCost, profile: costmodel.DeviceProfile, effs: np.ndarray) -> tuple[np.ndarray, int]:
    """costmodel.estimate's sum without the dispatch term, in ms, for every efficiency at
    once; and the number of dispatched ops (each adds dispatch_s)."""
    flops = np.array([o.flops for o in cost.ops], np.float64)
    moved = np.array([o.bytes_moved for o in cost.ops], np.float64)
    disp = np.array([o.dispatched for o in cost.ops], bool)
    compute = flops[None, :] / (profile.peak_flops * effs[:, None])
    memory = moved[None, :] / profile.bandwidth
    per_op = np.where(disp[None, :], np.maximum(compute, memory), compute)
    return per_op.sum(axis=1) * 1e3, int(disp.sum())


def predict_ms(cost: costmodel.ProgramCost, profile: costmodel.DeviceProfile, efficiency: float, dispatch_s: float) -> float:
    prof = dataclasses.replace(profile, efficiency=efficiency, dispatch_s=dispatch_s)
    return costmodel.estimate(cost, prof)["latency_ms_estimate"]


def fit(points: list[Point], cost: dict[str, costmodel.ProgramCost], profile: costmodel.DeviceProfile,
        fit_dispatch: bool = True, max_efficiency: float = 1.0) -> dict[str, float]:
    """Efficiency (and dispatch cost) minimising the squared log error over `points`.
    No unit sustains more than its peak: efficiency stays <= max_efficiency, so the fit
    cannot explain slow small networks by a fast unit with a huge launch cost."""
    if not points:
        raise ValueError("fit: no points")
    dispatches = _DISPATCH_GRID if fit_dispatch else np.array([profile.dispatch_s])
    target = np.log([p.latency_ms for p in points])
    effs = _EFF_GRID[_EFF_GRID <= max_efficiency * (1 + 1e-9)]
    curves = [_curve(cost[p.name], profile, effs) for p in points]
    # ms[point, efficiency, dispatch]
    ms = np.stack([c[:, None] + n * dispatches[None, :] * 1e3 for c, n in curves])
    err = ((np.log(ms) - target[:, None, None]) ** 2).sum(axis=0)
    i, j = np.unravel_index(np.argmin(err), err.shape)
    return {"efficiency": round(float(effs[i]), 4), "dispatch_s": float(dispatches[j]),
            "rms_log_error": round(float(np.sqrt(err[i, j] / len(points))), 4)}


def leave_one_out(points: list[Point], cost: dict[str, costmodel.ProgramCost], profile: costmodel.DeviceProfile,
                  fit_dispatch: bool = True, max_efficiency: float = 1.0) -> list[dict[str, Any]]:
    """For each point: fit on the others, predict it; error in % of the published figure."""
    rows = []
    for i, p in enumerate(points):
        f = fit(points[:i] + points[i + 1:], cost, profile, fit_dispatch, max_efficiency)
        pred = predict_ms(cost[p.name], profile, f["efficiency"], f["dispatch_s"])
        rows.append({"name": p.name, "published_ms": p.latency_ms, "predicted_ms": round(pred, 2),
                     "error_pct": round(100 * (pred - p.latency_ms) / p.latency_ms, 1),
                     "factor": round(max(pred, p.latency_ms) / min(pred, p.latency_ms), 2), **f})
    return rows
