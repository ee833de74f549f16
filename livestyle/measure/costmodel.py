"""A cost model read from the Core ML program, and A12 latency estimates from it.

Core ML cannot run off macOS and no iPhone is at hand, so the frame budget is checked
by counting what the exported program does (FLOPs, weights, activation traffic) and
dividing by a device profile. Counting the *Core ML* program rather than the Keras
model means the estimate sees what ships: folded batch norm, the pads, transposes and
tiles the converter inserted, the in-model 1920x1080 upscale, fp16 storage.

Conventions:
- a multiply-add is 2 FLOPs; conv (grouped/depthwise too) and conv_transpose cost
  2 x (spatial positions) x (weight elements) per image, plus one add per output for
  a bias; batch norm 2 per element, instance/layer norm 5, element-wise ops 1 per
  output element, bilinear resize 4 taps = 8 per output element; pure data movement
  (pad, transpose, tile, slice, nearest upsample, cast) 0 FLOPs but bytes moved.
- parameters are the elements of non-scalar float constants that feed an op (each
  constant counted once); weight bytes are as stored (fp16 = 2 bytes, fp32 = 4).
- activation bytes are the outputs of every non-const op at their stored dtype;
  the peak is the largest sum of tensors live at once over the program order
  (a tensor lives from the op that makes it to its last reader; outputs to the end).

Latency model (a per-op roofline, summed): for each op
``max(flops / (peak * efficiency), bytes_moved / bandwidth) + dispatch``. Activations,
scalar scales, pads and casts are taken as fused into their neighbouring conv (what
Core ML's GPU and ANE compilers do): their FLOPs count, their DRAM round trip and
launch do not; reshape/expand_dims are views. One frame at
batch 1 is a chain of dependent ops, so ops do not overlap each other: a memory-bound
pad cannot hide behind a compute-bound conv as a whole-model ``max`` would pretend,
while within one op compute and memory traffic do overlap (so not their sum).
Every figure from this model is an *estimate* and is labelled so by its callers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from livestyle.convert.coreml_io import load_mlmodel
from livestyle.errors import LivestyleError

BUDGET_FPS = 15.0

# Ops that only re-label a buffer: no bytes moved on a device that uses views.
_VIEW_OPS = {"reshape", "expand_dims", "squeeze", "identity"}
# Pure data movement: bytes but no arithmetic.
_MOVE_OPS = {
    "pad", "transpose", "tile", "slice_by_index", "slice_by_size", "concat", "split", "cast",
    "upsample_nearest_neighbor", "resize_nearest_neighbor", "gather", "gather_along_axis",
    "stack", "space_to_depth", "depth_to_space", "pixel_shuffle", "crop", "reverse",
}
# Assumed fused into the neighbouring conv by the device compiler (epilogue/prologue
# fusion, as Core ML's GPU and ANE backends do for activations, scalar scales and
# padding): their arithmetic counts, their tensor round trip through DRAM does not.
_FUSABLE_UNARY = {
    "relu", "relu6", "leaky_relu", "prelu", "elu", "sigmoid", "sigmoid_hard", "tanh", "clip", "clamped_relu",
    "softplus", "silu", "gelu", "scaled_tanh", "linear_activation", "pad", "cast",
}
_SCALAR_BINARY = {"add", "sub", "mul", "real_div", "maximum", "minimum"}
# FLOPs per output element.
_PER_ELEMENT = {
    "batch_norm": 2, "instance_norm": 5, "layer_norm": 5, "l2_norm": 3, "local_response_norm": 5,
    "upsample_bilinear": 8, "resize_bilinear": 8, "crop_resize": 8,
    "softmax": 5,
}
_ELEMENTWISE = {
    "add", "sub", "mul", "real_div", "maximum", "minimum", "pow", "floor_div", "mod",
    "relu", "relu6", "leaky_relu", "prelu", "elu", "sigmoid", "sigmoid_hard", "tanh", "clip",
    "clamped_relu", "softplus", "softsign", "silu", "gelu", "scaled_tanh", "linear_activation",
    "thresholded_relu", "exp", "exp2", "log", "sqrt", "rsqrt", "inverse", "abs", "square",
    "sin", "cos", "erf", "floor", "ceil", "round", "sign", "select", "equal", "not_equal",
    "less", "less_equal", "greater", "greater_equal", "logical_and", "logical_or", "logical_not",
}
_REDUCE_PREFIX = "reduce_"


# -- reading the program ---------------------------------------------------------


def load_program(source):
    """The MIL program of an mlprogram: from a `.mlpackage` path or an MLModel.

    An MLModel fresh from `ct.convert` carries `_mil_program`; a saved package is read
    back with the milproto loader, which works on Linux.
    """
    from coremltools.converters.mil.frontend.milproto.load import load

    if isinstance(source, (str, Path)):
        path = Path(source)
        model = load_mlmodel(path)
    else:
        model, path = source, "<MLModel>"
        if getattr(model, "_mil_program", None) is not None:
            return model._mil_program
    spec = model.get_spec()
    if spec.WhichOneof("Type") != "mlProgram":
        raise LivestyleError(path, "the cost model reads an mlprogram (.mlpackage), not a neuralnetwork model")
    return load(spec, spec.specificationVersion, model.weights_dir)


# -- counting --------------------------------------------------------------------


def _itemsize(var) -> int:
    from coremltools.converters.mil.mil import types

    try:
        return np.dtype(types.nptype_from_builtin(var.dtype)).itemsize
    except Exception:
        return 4


def _numel(shape) -> int:
    n = 1
    for d in shape:
        if not isinstance(d, (int, np.integer)):
            raise ValueError(f"symbolic dimension {d}: the cost model needs fixed shapes")
        n *= int(d)
    return n


def _nbytes(var) -> int:
    return _numel(var.shape) * _itemsize(var)


def _is_weight(var) -> bool:
    """A constant (or a constexpr-decompressed constant) rather than an activation."""
    op = var.op
    return op is not None and (op.op_type == "const" or op.op_type.startswith("constexpr_"))


def _input_vars(op) -> list:
    out = []
    for v in op.inputs.values():
        out.extend(v if isinstance(v, (list, tuple)) else [v])
    return out


def _op_flops(op) -> int:
    t = op.op_type
    out = op.outputs[0]
    if t in ("conv", "conv_transpose"):
        x, w = op.inputs["x"], op.inputs["weight"]
        # weight elements = c_in * c_out / groups * prod(kernel), whatever the layout;
        # conv multiplies them once per output position, conv_transpose once per input position
        positions = _numel(out.shape[2:]) if t == "conv" else _numel(x.shape[2:])
        batch = int(x.shape[0])
        flops = 2 * batch * positions * _numel(w.shape)
        if op.inputs.get("bias") is not None:
            flops += _numel(out.shape)
        return flops
    if t == "linear":
        flops = 2 * _numel(op.inputs["x"].shape[:-1]) * _numel(op.inputs["weight"].shape)
        return flops + (_numel(out.shape) if op.inputs.get("bias") is not None else 0)
    if t in ("matmul", "einsum"):
        x = op.inputs.get("x")
        k = int(x.shape[-2] if op.inputs.get("transpose_x") is not None and op.inputs["transpose_x"].val else x.shape[-1])
        return 2 * _numel(out.shape) * k
    if t in _PER_ELEMENT:
        return _PER_ELEMENT[t] * _numel(out.shape)
    if t in _ELEMENTWISE:
        return _numel(out.shape)
    if t.startswith(_REDUCE_PREFIX):
        return _numel(op.inputs["x"].shape)
    return 0


@dataclass
class OpCost:
    name: str
    op_type: str
    flops: int
    params: int  # weight elements first read by this op
    weight_bytes: int
    input_bytes: int  # activations read
    output_bytes: int  # activations written
    output_shape: tuple
    fused: bool = False  # folded into a neighbouring op on the device: no DRAM round trip

    @property
    def dispatched(self) -> bool:
        return not self.fused and self.op_type not in _VIEW_OPS

    @property
    def bytes_moved(self) -> int:
        if not self.dispatched:
            return 0
        return self.input_bytes + self.output_bytes + self.weight_bytes


@dataclass
class ProgramCost:
    ops: list[OpCost]
    peak_activation_bytes: int
    input_bytes: int
    unknown_op_types: list[str]

    @property
    def flops(self) -> int:
        return sum(o.flops for o in self.ops)

    @property
    def params(self) -> int:
        return sum(o.params for o in self.ops)

    @property
    def weight_bytes(self) -> int:
        return sum(o.weight_bytes for o in self.ops)

    @property
    def activation_bytes(self) -> int:
        return sum(o.output_bytes for o in self.ops)

    @property
    def bytes_moved(self) -> int:
        return sum(o.bytes_moved for o in self.ops)

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for o in self.ops:
            counts[o.op_type] = counts.get(o.op_type, 0) + 1
        return dict(sorted(counts.items()))

    def summary(self) -> dict[str, Any]:
        return {
            "flops": self.flops,
            "gflops": round(self.flops / 1e9, 3),
            "params": self.params,
            "weight_bytes": self.weight_bytes,
            "activation_bytes": self.activation_bytes,
            "peak_activation_bytes": self.peak_activation_bytes,
            "bytes_moved": self.bytes_moved,
            "op_counts": self.op_counts(),
            "unknown_op_types": self.unknown_op_types,
        }


_KNOWN = _VIEW_OPS | _MOVE_OPS | set(_PER_ELEMENT) | _ELEMENTWISE | {"conv", "conv_transpose", "linear", "matmul", "einsum"}


def program_cost(program, function: str = "main") -> ProgramCost:
    """Per-op costs and totals of one function of a MIL program (top-level ops)."""
    fn = program.functions[function]
    ops = [op for op in fn.operations if op.op_type != "const" and not op.op_type.startswith("constexpr_")]
    seen_weights: set[str] = set()
    costs: list[OpCost] = []
    unknown: set[str] = set()
    for op in ops:
        params = wbytes = in_bytes = 0
        activations = 0
        for v in _input_vars(op):
            if v is None:
                continue
            if _is_weight(v):
                if v.rank >= 1 and _float_var(v) and v.name not in seen_weights:
                    seen_weights.add(v.name)
                    params += _numel(v.shape)
                    wbytes += _stored_bytes(v)
            else:
                in_bytes += _nbytes(v)
                activations += 1
        fused = op.op_type in _FUSABLE_UNARY or (op.op_type in _SCALAR_BINARY and activations == 1)
        out_bytes = sum(_nbytes(o) for o in op.outputs)
        if op.op_type not in _KNOWN and not op.op_type.startswith(_REDUCE_PREFIX):
            unknown.add(op.op_type)
        costs.append(OpCost(op.name, op.op_type, _op_flops(op), params, wbytes, in_bytes, out_bytes,
                            tuple(int(d) for d in op.outputs[0].shape), fused))
    return ProgramCost(costs, _peak_live_bytes(fn, ops), sum(_nbytes(v) for v in fn.inputs.values()), sorted(unknown))


def _float_var(v) -> bool:
    from coremltools.converters.mil.mil import types

    return types.is_float(v.dtype)


def _stored_bytes(v) -> int:
    """Bytes of a constant as stored: a constexpr's compressed inputs, else the tensor."""
    op = v.op
    if op.op_type.startswith("constexpr_"):
        return sum(_nbytes(i) for i in _input_vars(op) if i is not None)
    return _nbytes(v)


def _peak_live_bytes(fn, ops) -> int:
    """Max over the op order of the bytes of activations alive at once."""
    last_use: dict[str, int] = {}
    size: dict[str, int] = {}
    for v in fn.inputs.values():
        size[v.name] = _nbytes(v)
        last_use[v.name] = -1
    for i, op in enumerate(ops):
        for v in _input_vars(op):
            if v is not None and not _is_weight(v):
                last_use[v.name] = i
        for o in op.outputs:
            size[o.name] = _nbytes(o)
            last_use.setdefault(o.name, i)
    for o in fn.outputs:
        last_use[o.name] = len(ops)
    live = sum(size[v.name] for v in fn.inputs.values())
    peak = live
    for i, op in enumerate(ops):
        live += sum(size[o.name] for o in op.outputs)
        peak = max(peak, live)
        # free what was read for the last time here, and outputs nobody reads
        freed = {v.name for v in _input_vars(op) if v is not None and not _is_weight(v) and last_use.get(v.name) == i}
        freed |= {o.name for o in op.outputs if last_use.get(o.name) == i}
        live -= sum(size[n] for n in freed)
    return peak


# -- device profiles -------------------------------------------------------------


@dataclass(frozen=True)
class DeviceProfile:
    """A device as a roofline: peak arithmetic rate, memory bandwidth, efficiency.

    `efficiency` scales the peak to what conv nets sustain; it is calibrated against a
    measured point where one exists (`calibrated: true`), else an assumption.
    """

    name: str
    peak_flops: float  # FLOP/s
    bandwidth: float  # bytes/s
    efficiency: float = 1.0
    dispatch_s: float = 0.0  # fixed cost per op (kernel launch)
    calibrated: bool = False
    source: str = ""

    @classmethod
    def from_params(cls, name: str, d: dict) -> "DeviceProfile":
        d = dict(d or {})
        known = {"peak_flops", "bandwidth", "efficiency", "dispatch_s", "calibrated", "source"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise LivestyleError("params.yaml", f"unknown key(s) in profile {name}: {', '.join(unknown)}")
        for key in ("peak_flops", "bandwidth"):
            if key not in d:
                raise LivestyleError("params.yaml", f"profile {name} needs {key}")
        prof = cls(name=name, **{k: (float(v) if k not in ("calibrated", "source") else v) for k, v in d.items()})
        if prof.peak_flops <= 0 or prof.bandwidth <= 0 or prof.efficiency <= 0:
            raise LivestyleError("params.yaml", f"profile {name}: peak_flops, bandwidth and efficiency must be > 0")
        return prof


# Public figures (the report and params.yaml carry the same numbers):
# - A12 GPU: 4 cores, 256 ALUs at 1125 MHz = 576 GFLOP/s (the usual spec-sheet figure).
# - A12 Neural Engine: "5 trillion operations per second" (Apple; int8 ops).
# - Memory: LPDDR4X-4266 on a 64-bit bus = 34.1 GB/s, shared by both.
# Both efficiencies are fitted to the one measured point (CALIBRATION): we do not know
# which unit Core ML picked on the article's iPhone. The fit is itself telling: the
# article's network is ~96 GFLOP per frame, so 66 ms needs ~1.9 TFLOP/s sustained,
# 3.2x the GPU's peak (implausible) but 37% of the Neural Engine's (plausible):
# Core ML's default compute units put such a network on the ANE.
DEFAULT_PROFILES: dict[str, dict] = {
    "a12_gpu": {
        "peak_flops": 5.76e11, "bandwidth": 3.41e10, "efficiency": 3.2302, "dispatch_s": 1.0e-5,
        "calibrated": True, "source": "A12 GPU 576 GFLOP/s, LPDDR4X 34.1 GB/s; efficiency fitted to the article's 66 ms",
    },
    "a12_ane": {
        "peak_flops": 5.0e12, "bandwidth": 3.41e10, "efficiency": 0.3721, "dispatch_s": 1.0e-5,
        "calibrated": True, "source": "A12 Neural Engine 5 TOPS (Apple), LPDDR4X 34.1 GB/s; efficiency fitted to the article's 66 ms",
    },
}

# The one measured point: the article's network on an iPhone XS (A12), 100 runs at
# 480x853 with the first dropped, Core ML with the 1920x1080 upscale in the model.
CALIBRATION = {"profile": "a12_gpu", "target_ms": 66.0, "res_blocks": 3, "width": 32, "separable": False,
               "norm": "batch", "upsample": "resize_conv", "size": (853, 480), "display": (1920, 1080)}


def default_profiles() -> dict[str, DeviceProfile]:
    return {name: DeviceProfile.from_params(name, d) for name, d in DEFAULT_PROFILES.items()}


def profiles_from_params(d: dict | None) -> dict[str, DeviceProfile]:
    if not d:
        return default_profiles()
    return {name: DeviceProfile.from_params(name, v) for name, v in d.items()}


def _op_seconds(o: OpCost, p: DeviceProfile, efficiency: float) -> tuple[float, float]:
    return o.flops / (p.peak_flops * efficiency), o.bytes_moved / p.bandwidth


def estimate(cost: ProgramCost, profile: DeviceProfile, budget_fps: float = BUDGET_FPS,
             efficiency: float | None = None) -> dict[str, Any]:
    """Latency estimate of one frame on `profile`; every key says it is an estimate."""
    eff = profile.efficiency if efficiency is None else efficiency
    total = compute = memory = 0.0
    for o in cost.ops:
        c, m = _op_seconds(o, profile, eff)
        compute += c
        memory += m
        # a fused op's arithmetic rides along with its neighbour's (no launch, no traffic)
        total += max(c, m) + profile.dispatch_s if o.dispatched else c
    ms = total * 1e3
    budget_ms = 1e3 / budget_fps
    return {
        "latency_ms_estimate": round(ms, 3),
        "fps_estimate": round(1e3 / ms, 2) if ms > 0 else None,
        "compute_ms_estimate": round(compute * 1e3, 3),
        "memory_ms_estimate": round(memory * 1e3, 3),
        "meets_budget_estimate": bool(ms <= budget_ms),
        "budget_ms": round(budget_ms, 2),
        "efficiency": eff,
        "calibrated": profile.calibrated,
    }


def calibrate(cost: ProgramCost, profile: DeviceProfile, target_ms: float) -> float:
    """Efficiency at which `cost` comes out at `target_ms` on `profile` (bisection).

    The estimate falls monotonically with efficiency down to the memory-bound floor;
    a target below that floor cannot be met by any efficiency.
    """
    floor = estimate(cost, profile, efficiency=1e12)["latency_ms_estimate"]
    if target_ms <= floor:
        raise ValueError(f"{profile.name}: {target_ms} ms is below the memory-bound floor {floor:.1f} ms")
    lo, hi = 1e-4, 1e4
    for _ in range(200):
        mid = (lo * hi) ** 0.5
        if estimate(cost, profile, efficiency=mid)["latency_ms_estimate"] > target_ms:
            lo = mid
        else:
            hi = mid
    return round(hi, 4)


def reference_cost() -> ProgramCost:
    """Cost of the article's network (CALIBRATION) as converted to an mlprogram now."""
    from livestyle.config import NetworkConfig
    from livestyle.convert.export import convert_coreml, display_model
    from livestyle.model.network import build_transformer

    c = CALIBRATION
    net = NetworkConfig(res_blocks=c["res_blocks"], width=c["width"], separable=c["separable"], norm=c["norm"],
                        upsample=c["upsample"])
    h, w = c["size"]
    ml = convert_coreml(display_model(build_transformer(net, h, w), tuple(c["display"])), "mlprogram", h, w)
    return program_cost(load_program(ml))


def estimates(cost: ProgramCost, profiles: dict[str, DeviceProfile], budget_fps: float = BUDGET_FPS) -> dict:
    return {name: estimate(cost, p, budget_fps) for name, p in profiles.items()}


def profile_dict(p: DeviceProfile) -> dict:
    return asdict(p)
