"""Run a Core ML mlprogram (.mlpackage) with NumPy, on Linux.

`MLModel.predict` needs the Core ML framework (macOS only), so
verification could never see what the exported program computes. coremltools can
still load an mlprogram back into a MIL program with its weights
(`milproto.load.load`), and this module evaluates that program op by op with NumPy.

Choices:
- Arithmetic in float32; a value the program types as fp16 is *stored* as float16
  (`emulate_fp16=True`, the default), i.e. rounded after every op as a device that
  keeps activations in fp16 does. Accumulation inside an op stays fp32, so this is
  a lower bound on the device's fp16 error, not a bit-exact replay.
- Image I/O as the Core ML runtime does it: the RGB frame is reordered to the
  input's declared colour layout (BGR, grayscale) before the program sees it; the
  ImageType scale/bias are ops inside an mlprogram, so the program applies them
  itself. The output image is read as NCHW in its declared layout and returned RGB,
  clipped to 0..255 as an 8-bit pixel buffer would be.
- Unknown ops raise naming the op type and op name: an executor that silently
  skipped an op would "verify" a different model.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from livestyle.convert.coreml_io import load_spec
from livestyle.errors import LivestyleError

WEIGHTS_SUBDIR = os.path.join("Data", "com.apple.CoreML", "weights")
# im2col scratch per chunk (float32 elements): bounds memory at 480x853 with 9x9 kernels
_COLS_BUDGET = 8_000_000


class UnsupportedOpError(LivestyleError):
    """The program uses an op this executor does not implement."""


# --------------------------------------------------------------------------- kernels
# Shared with nn_exec: both formats describe the same NCHW convolutions and resizes.


def same_pads(size: int, kernel: int, stride: int, dilation: int, lower: bool = False) -> tuple[int, int]:
    """TF/Core ML "same" padding: output = ceil(size/stride); the odd pixel goes at the end
    ("same_lower" puts it at the start)."""
    k = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    small = total // 2
    return (total - small, small) if lower else (small, total - small)


def conv2d(x, w, bias=None, strides=(1, 1), dilations=(1, 1), pads=(0, 0, 0, 0), groups=1):
    """Cross-correlation of NCHW `x` with OIHW `w`; pads = (top, bottom, left, right)."""
    x = np.asarray(x, np.float32)
    w = np.asarray(w, np.float32)
    pt, pb, pl, pr = (int(p) for p in pads)
    if any((pt, pb, pl, pr)):
        x = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    n, c, h, wd = x.shape
    co, cg, kh, kw = w.shape
    sh, sw = (int(s) for s in strides)
    dh, dw = (int(d) for d in dilations)
    oh = (h - (kh - 1) * dh - 1) // sh + 1
    ow = (wd - (kw - 1) * dw - 1) // sw + 1
    if cg * groups != c or co % groups:
        raise ValueError(f"conv: input has {c} channels, weight {w.shape} with groups={groups}")
    if oh <= 0 or ow <= 0:
        raise ValueError(f"conv: kernel {kh}x{kw} larger than padded input {h}x{wd}")

    def window(src, ky, kx, r0, r1):
        y0 = r0 * sh + ky * dh
        x0 = kx * dw
        return src[..., y0 : y0 + sh * (r1 - r0 - 1) + 1 : sh, x0 : x0 + sw * (ow - 1) + 1 : sw]

    out = np.empty((n, co, oh, ow), np.float32)
    if groups == c and cg == 1:
        # depthwise: one multiply-add per kernel tap is far cheaper than per-group GEMMs
        mult = co // c
        xr = np.repeat(x, mult, axis=1) if mult > 1 else x
        out[:] = 0
        for ky in range(kh):
            for kx in range(kw):
                out += w[:, 0, ky, kx][None, :, None, None] * window(xr, ky, kx, 0, oh)
    else:
        cog = co // groups
        k = cg * kh * kw
        rows = max(1, min(oh, _COLS_BUDGET // max(1, k * ow)))
        for b in range(n):
            for g in range(groups):
                xg = x[b, g * cg : (g + 1) * cg]
                if sh == sw == 1 and cog < cg and kh * kw > 1:
                    _conv_taps(xg, w[g * cog : (g + 1) * cog], dh, dw, out[b, g * cog : (g + 1) * cog])
                    continue
                wg = w[g * cog : (g + 1) * cog].reshape(cog, k)
                for r0 in range(0, oh, rows):
                    r1 = min(oh, r0 + rows)
                    if kh == kw == 1:
                        cols = window(xg, 0, 0, r0, r1).reshape(cg, -1)
                    else:
                        cols = np.empty((cg, kh, kw, r1 - r0, ow), np.float32)
                        for ky in range(kh):
                            for kx in range(kw):
                                cols[:, ky, kx] = window(xg, ky, kx, r0, r1)
                        cols = cols.reshape(k, -1)
                    out[b, g * cog : (g + 1) * cog, r0:r1] = (wg @ cols).reshape(cog, r1 - r0, ow)
    if bias is not None:
        out += np.asarray(bias, np.float32).reshape(1, -1, 1, 1)
    return out


def _conv_taps(xg, wg, dh, dw, out) -> None:
    """Stride-1 conv as one GEMM per row band over all taps, then shifted adds.

    Chosen when the conv narrows channels (C_out < C_in, e.g. the 9x9 RGB output
    conv): its scratch is C_out*KH*KW per pixel where im2col's is C_in*KH*KW, so it
    moves less memory (3x faster on the 480x853 decoder convs here).
    """
    cog, cg, kh, kw = wg.shape
    _, oh, ow = out.shape
    width = xg.shape[2]
    halo = (kh - 1) * dh
    wt = wg.transpose(2, 3, 0, 1).reshape(kh * kw * cog, cg)
    rows = max(1, min(oh, _COLS_BUDGET // max(1, kh * kw * cog * width) - halo))
    for r0 in range(0, oh, rows):
        r1 = min(oh, r0 + rows)
        band = xg[:, r0 : r1 + halo, :].reshape(cg, -1)
        z = (wt @ band).reshape(kh, kw, cog, r1 - r0 + halo, width)
        acc = out[:, r0:r1]
        acc[...] = z[0, 0, :, : r1 - r0, :ow]
        for ky in range(kh):
            for kx in range(kw):
                if ky or kx:
                    acc += z[ky, kx, :, ky * dh : ky * dh + r1 - r0, kx * dw : kx * dw + ow]


def conv_transpose2d(x, w, bias=None, strides=(1, 1), dilations=(1, 1), groups=1, crop=(0, 0), out_hw=None):
    """Transposed conv (gradient of `conv2d`), weight (C_in, C_out/groups, KH, KW).

    The full output is (H-1)*s + (K-1)*d + 1; `crop` = (top, left) rows/cols are cut and
    `out_hw` kept (zero-filled where the full output is shorter).
    """
    x = np.asarray(x, np.float32)
    w = np.asarray(w, np.float32)
    n, ci, h, wd = x.shape
    cin, cog, kh, kw = w.shape
    sh, sw = (int(s) for s in strides)
    dh, dw = (int(d) for d in dilations)
    cig = ci // groups
    fh = (h - 1) * sh + (kh - 1) * dh + 1
    fw = (wd - 1) * sw + (kw - 1) * dw + 1
    full = np.zeros((n, cog * groups, fh, fw), np.float32)
    for b in range(n):
        for g in range(groups):
            xg = x[b, g * cig : (g + 1) * cig].reshape(cig, -1)
            wg = w[g * cig : (g + 1) * cig]  # (cig, cog, kh, kw)
            taps = (wg.transpose(1, 2, 3, 0).reshape(-1, cig) @ xg).reshape(cog, kh, kw, h, wd)
            dst = full[b, g * cog : (g + 1) * cog]
            for ky in range(kh):
                for kx in range(kw):
                    dst[:, ky * dh : ky * dh + sh * (h - 1) + 1 : sh, kx * dw : kx * dw + sw * (wd - 1) + 1 : sw] += taps[:, ky, kx]
    if out_hw is None:
        out_hw = (fh - crop[0], fw - crop[1])
    oh, ow = (int(v) for v in out_hw)
    out = np.zeros((n, full.shape[1], oh, ow), np.float32)
    src = full[:, :, crop[0] : crop[0] + oh, crop[1] : crop[1] + ow]
    out[:, :, : src.shape[2], : src.shape[3]] = src
    if bias is not None:
        out += np.asarray(bias, np.float32).reshape(1, -1, 1, 1)
    return out


def grid_points(n_in: int, n_out: int, mode: str) -> np.ndarray:
    """Sampling positions of a 1-D bilinear resize, as coremltools documents them
    (MIL `upsample_bilinear` / `resize_bilinear`, NeuralNetwork `upsample`):

    - align_corners:   i * (Xin-1)/(Xout-1)                 (TF align_corners=True)
    - half_pixel:      (i + 0.5) * Xin/Xout - 0.5           (TF half_pixel_centers=True)
    - asymmetric:      i * Xin/Xout                         (TF legacy default)
    - default:         i * (Xin - Xin/Xout)/(Xout-1)        (NN / resize_bilinear DEFAULT)
    - offset_corners:  0.5*delta + i*delta, delta = max(1, Xin-1)/Xout
    - align_corners_1: as align_corners, but (Xin-1)/2 when Xout == 1
    All clipped to [0, Xin-1].
    """
    i = np.arange(n_out, dtype=np.float64)
    if mode in ("align_corners", "align_corners_1"):
        if n_out == 1:
            g = np.array([(n_in - 1) / 2.0 if mode == "align_corners_1" else 0.0])
        else:
            g = i * (n_in - 1) / (n_out - 1)
    elif mode == "half_pixel":
        g = (i + 0.5) * n_in / n_out - 0.5
    elif mode == "asymmetric":
        g = i * n_in / n_out
    elif mode == "default":
        g = i * (n_in - n_in / n_out) / (n_out - 1) if n_out > 1 else np.zeros(1)
    elif mode == "offset_corners":
        delta = max(1, n_in - 1) / n_out
        g = 0.5 * delta + i * delta
    else:
        raise ValueError(f"unknown bilinear sampling mode {mode!r}")
    return np.clip(g, 0, n_in - 1)


def _lerp_axis(x: np.ndarray, axis: int, g: np.ndarray) -> np.ndarray:
    i0 = np.floor(g).astype(np.int64)
    i1 = np.minimum(i0 + 1, x.shape[axis] - 1)
    f = (g - i0).astype(np.float32)
    shape = [1] * x.ndim
    shape[axis] = -1
    f = f.reshape(shape)
    a = np.take(x, i0, axis=axis)
    b = np.take(x, i1, axis=axis)
    return a + (b - a) * f


def resize_bilinear(x, out_h: int, out_w: int, mode_h: str, mode_w: str | None = None) -> np.ndarray:
    """Bilinear resize of the last two axes, separably (rows, then columns)."""
    x = np.asarray(x, np.float32)
    h, w = x.shape[-2:]
    y = _lerp_axis(x, x.ndim - 2, grid_points(h, int(out_h), mode_h))
    return _lerp_axis(y, y.ndim - 1, grid_points(w, int(out_w), mode_w or mode_h))


def resize_nearest(x, out_h: int, out_w: int) -> np.ndarray:
    """Nearest neighbour: source index floor(i * Xin / Xout) (integer factors: repeat)."""
    h, w = x.shape[-2:]
    iy = np.minimum((np.arange(out_h) * h) // out_h, h - 1)
    ix = np.minimum((np.arange(out_w) * w) // out_w, w - 1)
    return np.take(np.take(x, iy, axis=-2), ix, axis=-1)


def pad_nd(x, pads: list[tuple[int, int]], mode: str = "constant", value: float = 0.0) -> np.ndarray:
    """Pad the last len(pads) axes; mode constant | reflect | replicate.

    Written out (one centre copy, then border copies) so reflect/replicate/constant
    share one code path with NumPy-only slicing.
    """
    if mode not in ("constant", "reflect", "replicate"):
        raise ValueError(f"unknown pad mode {mode!r}")
    x = np.asarray(x)
    widths = [(0, 0)] * (x.ndim - len(pads)) + [(int(a), int(b)) for a, b in pads]
    if any(a < 0 or b < 0 for a, b in widths):
        raise ValueError(f"negative padding {pads}")
    shape = [n + a + b for n, (a, b) in zip(x.shape, widths)]
    out = np.empty(shape, x.dtype)
    center = tuple(slice(a, a + n) for n, (a, _) in zip(x.shape, widths))
    out[center] = x
    for axis, ((before, after), n) in enumerate(zip(widths, x.shape)):
        if not before and not after:
            continue
        if mode == "reflect" and (before >= n or after >= n):
            raise ValueError(f"reflect padding {before, after} needs more than {n} elements")
        # axes already handled are filled in full; later ones only over their centre
        sel = [slice(None)] * axis + [None] + list(center[axis + 1 :])
        for count, dst_start, src in (
            (before, 0, lambda j: 2 * before - j if mode == "reflect" else before),
            (after, before + n, lambda j: before + n - 2 - j if mode == "reflect" else before + n - 1),
        ):
            if not count:
                continue
            dst = list(sel)
            dst[axis] = slice(dst_start, dst_start + count)
            if mode == "constant":
                out[tuple(dst)] = value
                continue
            src_idx = src(np.arange(count))
            src_sel = list(sel)
            src_sel[axis] = src_idx if mode == "reflect" else slice(src_idx, src_idx + 1)
            out[tuple(dst)] = out[tuple(src_sel)]
    return out


# ------------------------------------------------------------------------ MIL program


def _np_dtype(builtin) -> np.dtype:
    from coremltools.converters.mil.mil import types

    return np.dtype(types.nptype_from_builtin(builtin))


_CAST_DTYPES = {
    "fp16": np.float16, "fp32": np.float32, "fp64": np.float64, "int32": np.int32,
    "int16": np.int16, "int8": np.int8, "uint8": np.uint8, "uint16": np.uint16,
    "int64": np.int64, "bool": np.bool_,
}


class _Args:
    """Input values of one op: const inputs from the program, others from the run's env."""

    def __init__(self, op, env):
        self.op = op
        self.env = env

    def _value(self, var):
        if var.name in self.env:
            v = self.env[var.name]
        elif var.val is not None:
            v = var.val
        else:
            raise RuntimeError(f"{self.op.op_type} {self.op.name!r}: input {var.name!r} has no value")
        if isinstance(v, np.ndarray) and v.dtype == np.float16:
            return v.astype(np.float32)
        if isinstance(v, np.floating) and v.dtype == np.float16:
            return np.float32(v)
        return v

    def has(self, key) -> bool:
        return key in self.op.inputs and self.op.inputs[key] is not None

    def __call__(self, key, default=None):
        if not self.has(key):
            return default
        var = self.op.inputs[key]
        if isinstance(var, (list, tuple)):
            return [self._value(v) for v in var]
        return self._value(var)

    def scalar(self, key, default=None):
        v = self(key, default)
        return v.item() if isinstance(v, (np.ndarray, np.generic)) else v

    def ints(self, key, default):
        v = self(key, None)
        return default if v is None else [int(i) for i in np.asarray(v).reshape(-1)]


OpFn = Callable[[_Args], "np.ndarray | list[np.ndarray]"]
OPS: dict[str, OpFn] = {}


def _op(*names):
    def deco(fn):
        for name in names:
            OPS[name] = fn
        return fn

    return deco


# element-wise ---------------------------------------------------------------
_BINARY = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "real_div": np.divide,
    "maximum": np.maximum, "minimum": np.minimum, "pow": np.power,
    "floor_div": np.floor_divide, "mod": np.mod,
    "equal": np.equal, "not_equal": np.not_equal, "less": np.less, "less_equal": np.less_equal,
    "greater": np.greater, "greater_equal": np.greater_equal,
    "logical_and": np.logical_and, "logical_or": np.logical_or, "logical_xor": np.logical_xor,
}
for _name, _fn in _BINARY.items():
    OPS[_name] = (lambda fn: lambda a: fn(a("x"), a("y")))(_fn)


def _erf(x):
    try:
        from scipy.special import erf

        return erf(x).astype(np.float32)
    except ImportError:  # pragma: no cover - scipy ships with scikit-image
        return np.vectorize(math.erf, otypes=[np.float32])(x)


_UNARY = {
    "relu": lambda x: np.maximum(x, 0), "relu6": lambda x: np.clip(x, 0, 6),
    "tanh": np.tanh, "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "abs": np.abs, "ceil": np.ceil, "floor": np.floor, "round": np.round, "sign": np.sign,
    "sqrt": np.sqrt, "exp": np.exp, "exp2": np.exp2, "square": np.square,
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "atan": np.arctan, "asin": np.arcsin,
    "acos": np.arccos, "sinh": np.sinh, "cosh": np.cosh, "erf": _erf,
    "softplus": lambda x: np.logaddexp(0, x), "softsign": lambda x: x / (1 + np.abs(x)),
    "silu": lambda x: x / (1 + np.exp(-x)), "logical_not": np.logical_not,
    "identity": lambda x: x,
}
for _name, _fn in _UNARY.items():
    OPS[_name] = (lambda fn: lambda a: fn(a("x")))(_fn)


@_op("rsqrt")
def _rsqrt(a):
    return 1 / np.sqrt(a("x") + a.scalar("epsilon", 1e-12))


@_op("inverse")
def _inverse(a):
    return 1 / (a("x") + a.scalar("epsilon", 1e-4))


@_op("log")
def _log(a):
    return np.log(a("x") + a.scalar("epsilon", 1e-45))


@_op("clip")
def _clip(a):
    return np.clip(a("x"), a.scalar("alpha"), a.scalar("beta"))


@_op("leaky_relu")
def _leaky(a):
    x, al = a("x"), a.scalar("alpha", 0.01)
    return np.where(x >= 0, x, al * x)


@_op("elu")
def _elu(a):
    x, al = a("x"), a.scalar("alpha", 1.0)
    return np.where(x > 0, x, al * (np.exp(np.minimum(x, 0)) - 1))


@_op("thresholded_relu")
def _trelu(a):
    x = a("x")
    return np.where(x > a.scalar("alpha", 1.0), x, 0)


@_op("linear_activation")
def _linact(a):
    return a.scalar("alpha") * a("x") + a.scalar("beta", 0.0)


@_op("scaled_tanh")
def _stanh(a):
    return a.scalar("alpha", 1.0) * np.tanh(a.scalar("beta", 1.0) * a("x"))


@_op("sigmoid_hard")
def _hsig(a):
    return np.clip(a.scalar("alpha", 0.2) * a("x") + a.scalar("beta", 0.5), 0, 1)


@_op("prelu")
def _prelu(a):
    x, al = a("x"), np.asarray(a("alpha"), np.float32)
    al = al.reshape((1, -1) + (1,) * (x.ndim - 2))
    return np.where(x >= 0, x, al * x)


@_op("gelu")
def _gelu(a):
    x, mode = a("x"), a.scalar("mode", "EXACT")
    if mode == "TANH_APPROXIMATION":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    if mode == "SIGMOID_APPROXIMATION":
        return x / (1 + np.exp(-1.702 * x))
    return 0.5 * x * (1 + _erf(x / math.sqrt(2)))


@_op("softmax")
def _softmax(a):
    x, axis = a("x"), a.scalar("axis", -1)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@_op("constexpr_affine_dequantize")
def _affine_dequantize(a):
    """8-bit weights (coremltools linear_quantize_weights): (q - zero_point) * scale per channel of `axis`."""
    q = np.asarray(a("quantized_data"), np.float32)
    axis = int(a.scalar("axis")) % q.ndim
    shape = [1] * q.ndim
    shape[axis] = -1
    zero = np.asarray(a("zero_point"), np.float32).reshape(shape if np.ndim(a("zero_point")) else ())
    scale = np.asarray(a("scale"), np.float32).reshape(shape if np.ndim(a("scale")) else ())
    return (q - zero) * scale


@_op("select")
def _select(a):
    return np.where(a("cond"), a("a"), a("b"))


@_op("cast")
def _cast(a):
    dtype = a.scalar("dtype")
    if dtype not in _CAST_DTYPES:
        raise UnsupportedOpError(a.op.name, f"cast to {dtype!r} is not supported")
    # fp16 rounding is applied by the env store (emulate_fp16); arithmetic stays fp32
    return np.asarray(a("x")).astype(_CAST_DTYPES[dtype])


# convolution / normalisation ----------------------------------------------------


def _spatial_pads(a, x_hw, k_hw, strides, dilations):
    pad_type = a.scalar("pad_type", "valid")
    if pad_type == "valid":
        return [0, 0, 0, 0]
    if pad_type == "custom":
        return a.ints("pad", [0, 0, 0, 0])
    if pad_type in ("same", "same_lower"):
        out = []
        for size, k, s, d in zip(x_hw, k_hw, strides, dilations):
            out.extend(same_pads(size, k, s, d, lower=pad_type == "same_lower"))
        return out
    raise UnsupportedOpError(a.op.name, f"{a.op.op_type} pad_type {pad_type!r} is not supported")


def _as_2d(a, x, w):
    """1-D convs run as 2-D with a unit height; 3-D ones are not implemented."""
    if x.ndim == 3:
        return x[:, :, None, :], w[:, :, None, :], True
    if x.ndim != 4:
        raise UnsupportedOpError(a.op.name, f"{a.op.op_type} with {x.ndim - 2} spatial dims is not supported")
    return x, w, False


@_op("conv")
def _conv(a):
    x, w, one_d = _as_2d(a, a("x"), np.asarray(a("weight"), np.float32))
    strides = a.ints("strides", [1, 1])
    dil = a.ints("dilations", [1, 1])
    if one_d:
        strides, dil = [1] + strides, [1] + dil
    pads = _spatial_pads(a, x.shape[2:], w.shape[2:], strides, dil)
    if one_d and len(pads) == 2:
        pads = [0, 0] + pads
    y = conv2d(x, w, a("bias"), strides, dil, pads, int(a.scalar("groups", 1)))
    return y[:, :, 0, :] if one_d else y


@_op("conv_transpose")
def _conv_transpose(a):
    x, w, one_d = _as_2d(a, a("x"), np.asarray(a("weight"), np.float32))
    strides = a.ints("strides", [1, 1])
    dil = a.ints("dilations", [1, 1])
    if one_d:
        strides, dil = [1] + strides, [1] + dil
    groups = int(a.scalar("groups", 1))
    kh, kw = w.shape[2:]
    h, wd = x.shape[2:]
    full = [(h - 1) * strides[0] + (kh - 1) * dil[0] + 1, (wd - 1) * strides[1] + (kw - 1) * dil[1] + 1]
    pad_type = a.scalar("pad_type", "valid")
    out_shape = a.ints("output_shape", None)
    if out_shape is not None:
        out_hw = out_shape[2:] if not one_d else [1] + out_shape[2:]
    elif pad_type == "same":
        out_hw = [h * strides[0], wd * strides[1]]
    else:
        out_hw = None
    if pad_type == "custom":
        p = a.ints("pad", [0, 0, 0, 0])
        if one_d:
            p = [0, 0] + p
        crop = (p[0], p[2])
        if out_hw is None:
            out_hw = [full[0] - p[0] - p[1], full[1] - p[2] - p[3]]
    elif pad_type in ("same", "same_lower"):
        # the crop that makes it the gradient of a "same" conv with output size out_hw
        crop = tuple(
            same_pads(o, k, s, d, lower=pad_type == "same_lower")[0]
            for o, k, s, d in zip(out_hw, (kh, kw), strides, dil)
        )
    elif pad_type == "valid":
        crop = (0, 0)
    else:
        raise UnsupportedOpError(a.op.name, f"conv_transpose pad_type {pad_type!r} is not supported")
    y = conv_transpose2d(x, w, a("bias"), strides, dil, groups, crop, out_hw)
    return y[:, :, 0, :] if one_d else y


def _channel(v, ndim):
    return np.asarray(v, np.float32).reshape((1, -1) + (1,) * (ndim - 2))


@_op("batch_norm")
def _batch_norm(a):
    x = a("x")
    eps = a.scalar("epsilon", 1e-5)
    scale = 1 / np.sqrt(np.asarray(a("variance"), np.float32) + eps)
    gamma = a("gamma")
    if gamma is not None:
        scale = scale * gamma
    beta = a("beta")
    shift = -np.asarray(a("mean"), np.float32) * scale + (0 if beta is None else beta)
    return x * _channel(scale, x.ndim) + _channel(shift, x.ndim)


@_op("instance_norm")
def _instance_norm(a):
    x = a("x")
    axes = tuple(range(2, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(var + a.scalar("epsilon", 1e-5))
    if a.has("gamma"):
        y = y * _channel(a("gamma"), x.ndim)
    if a.has("beta"):
        y = y + _channel(a("beta"), x.ndim)
    return y


@_op("layer_norm")
def _layer_norm(a):
    x = a("x")
    axes = tuple(a.ints("axes", list(range(x.ndim))))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(var + a.scalar("epsilon", 1e-5))
    if a.has("gamma"):
        y = y * a("gamma")
    if a.has("beta"):
        y = y + a("beta")
    return y


@_op("matmul")
def _matmul(a):
    x, y = a("x"), a("y")
    if a.scalar("transpose_x", False):
        x = np.swapaxes(x, -1, -2)
    if a.scalar("transpose_y", False):
        y = np.swapaxes(y, -1, -2)
    return np.matmul(x, y)


@_op("linear")
def _linear(a):
    y = a("x") @ np.asarray(a("weight"), np.float32).T
    return y if a("bias") is None else y + a("bias")


# pooling ---------------------------------------------------------------------


@_op("avg_pool", "max_pool")
def _pool(a):
    x = a("x")
    if x.ndim != 4:
        raise UnsupportedOpError(a.op.name, f"{a.op.op_type} on rank {x.ndim} is not supported")
    k = a.ints("kernel_sizes", [1, 1])
    s = a.ints("strides", [1, 1])
    pads = _spatial_pads(a, x.shape[2:], k, s, [1, 1])
    is_max = a.op.op_type == "max_pool"
    fill = -np.inf if is_max else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[1]), (pads[2], pads[3])), constant_values=fill)
    ones = np.pad(np.ones(x.shape[2:], np.float32), ((pads[0], pads[1]), (pads[2], pads[3])))
    oh = (xp.shape[2] - k[0]) // s[0] + 1
    ow = (xp.shape[3] - k[1]) // s[1] + 1
    acc = np.full((x.shape[0], x.shape[1], oh, ow), fill, np.float32)
    cnt = np.zeros((oh, ow), np.float32)
    for ky in range(k[0]):
        for kx in range(k[1]):
            win = xp[:, :, ky : ky + s[0] * (oh - 1) + 1 : s[0], kx : kx + s[1] * (ow - 1) + 1 : s[1]]
            acc = np.maximum(acc, win) if is_max else acc + win
            cnt += ones[ky : ky + s[0] * (oh - 1) + 1 : s[0], kx : kx + s[1] * (ow - 1) + 1 : s[1]]
    if is_max:
        return acc
    if a.scalar("exclude_padding_from_average", False):
        return acc / cnt
    return acc / (k[0] * k[1])


# resampling / padding -----------------------------------------------------------


def _out_hw(a):
    """The output's static H, W from the program's type inference (exact sizes)."""
    shape = a.op.outputs[0].shape
    return int(shape[-2]), int(shape[-1])


@_op("upsample_bilinear")
def _upsample_bilinear(a):
    align = bool(a.scalar("align_corners", True))
    half = a.scalar("half_pixel_centers", None)
    half = (not align) if half is None else bool(half)
    mode = "align_corners" if align else ("half_pixel" if half else "asymmetric")
    return resize_bilinear(a("x"), *_out_hw(a), mode)


_RESIZE_MODES = {
    "STRICT_ALIGN_CORNERS": "align_corners", "ALIGN_CORNERS": "align_corners_1",
    "DEFAULT": "default", "OFFSET_CORNERS": "offset_corners", "UNALIGN_CORNERS": "half_pixel",
}


@_op("resize_bilinear")
def _resize_bilinear(a):
    mode = a.scalar("sampling_mode", "DEFAULT")
    if mode not in _RESIZE_MODES:
        raise UnsupportedOpError(a.op.name, f"resize_bilinear sampling_mode {mode!r} is not supported")
    return resize_bilinear(a("x"), *_out_hw(a), _RESIZE_MODES[mode])


@_op("upsample_nearest_neighbor", "resize_nearest_neighbor")
def _nearest(a):
    return resize_nearest(a("x"), *_out_hw(a))


@_op("pad")
def _pad(a):
    x = a("x")
    p = a.ints("pad", [])
    pairs = [(p[i], p[i + 1]) for i in range(0, len(p), 2)]
    return pad_nd(x, pairs, a.scalar("mode", "constant"), a.scalar("constant_val", 0.0))


# shape ops ---------------------------------------------------------------------


@_op("transpose")
def _transpose(a):
    return np.transpose(a("x"), a.ints("perm", None))


@_op("reshape")
def _reshape(a):
    x = a("x")
    shape = a.ints("shape", [])
    # iOS17 reshape: 0 copies the input's dimension at that position
    shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return x.reshape(shape)


@_op("expand_dims")
def _expand_dims(a):
    x = a("x")
    axes = a.ints("axes", [])
    rank = x.ndim + len(axes)
    for ax in sorted(ax % rank for ax in axes):
        x = np.expand_dims(x, ax)
    return x


@_op("squeeze")
def _squeeze(a):
    x = a("x")
    axes = a.ints("axes", None)
    return np.squeeze(x) if axes is None else np.squeeze(x, axis=tuple(axes))


@_op("tile")
def _tile(a):
    x = a("x")
    reps = a.ints("reps", [])
    if len(reps) == x.ndim and all(r == 1 or n == 1 for r, n in zip(reps, x.shape)):
        # repeating size-1 axes only (how nearest upsampling converts): a broadcast copy
        return np.ascontiguousarray(np.broadcast_to(x, [n * r for n, r in zip(x.shape, reps)]))
    return np.tile(x, reps)


@_op("concat")
def _concat(a):
    values = [np.asarray(v) for v in a("values")]
    axis = a.scalar("axis", 0)
    if a.scalar("interleave", False):
        stacked = np.stack(values, axis=axis + 1 if axis >= 0 else axis)
        shape = list(values[0].shape)
        shape[axis] = -1
        return stacked.reshape(shape)
    return np.concatenate(values, axis=axis)


@_op("split")
def _split(a):
    x = a("x")
    axis = a.scalar("axis", 0)
    sizes = a.ints("split_sizes", None)
    if sizes is None:
        return np.split(x, int(a.scalar("num_splits")), axis=axis)
    return np.split(x, np.cumsum(sizes)[:-1], axis=axis)


@_op("slice_by_index")
def _slice_by_index(a):
    x = a("x")
    r = x.ndim
    begin = a.ints("begin", [0] * r)
    end = a.ints("end", [0] * r)
    stride = a.ints("stride", [1] * r)
    bmask = a.ints("begin_mask", [0] * r)
    emask = a.ints("end_mask", [0] * r)
    smask = a.ints("squeeze_mask", [0] * r)
    idx = []
    for i in range(r):
        if smask[i]:
            idx.append(begin[i])
            continue
        idx.append(slice(None if bmask[i] else begin[i], None if emask[i] else end[i], stride[i]))
    return x[tuple(idx)]


@_op("slice_by_size")
def _slice_by_size(a):
    x = a("x")
    begin = a.ints("begin", [])
    size = a.ints("size", [])
    return x[tuple(slice(b, None if s == -1 else b + s) for b, s in zip(begin, size))]


@_op("gather")
def _gather(a):
    return np.take(a("x"), np.asarray(a("indices")).astype(np.int64), axis=a.scalar("axis", 0))


@_op("depth_to_space")
def _d2s(a):
    x = a("x")
    b = int(a.scalar("block_size"))
    n, c, h, w = x.shape
    y = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    return y.reshape(n, c // (b * b), h * b, w * b)


@_op("pixel_shuffle")
def _pixel_shuffle(a):
    x = a("x")
    f = int(a.scalar("upscale_factor"))
    n, c, h, w = x.shape
    y = x.reshape(n, c // (f * f), f, f, h, w).transpose(0, 1, 4, 2, 5, 3)
    return y.reshape(n, c // (f * f), h * f, w * f)


@_op("space_to_depth")
def _s2d(a):
    x = a("x")
    b = int(a.scalar("block_size"))
    n, c, h, w = x.shape
    y = x.reshape(n, c, h // b, b, w // b, b).transpose(0, 3, 5, 1, 2, 4)
    return y.reshape(n, c * b * b, h // b, w // b)


def _reduce(fn):
    def run(a):
        x = a("x")
        axes = a.ints("axes", None)
        return fn(x, axis=None if axes is None else tuple(axes), keepdims=bool(a.scalar("keep_dims", False)))

    return run


for _name, _fn in {
    "reduce_mean": np.mean, "reduce_sum": np.sum, "reduce_max": np.max, "reduce_min": np.min,
    "reduce_prod": np.prod,
}.items():
    OPS[_name] = _reduce(_fn)
OPS["reduce_sum_square"] = _reduce(lambda x, axis, keepdims: np.sum(x * x, axis=axis, keepdims=keepdims))
OPS["reduce_l2_norm"] = _reduce(lambda x, axis, keepdims: np.sqrt(np.sum(x * x, axis=axis, keepdims=keepdims)))


@_op("shape")
def _shape(a):
    return np.array(np.shape(a("x")), np.int32)


# Ops whose output is exactly representable in fp16 when their inputs are (they only
# move, select or compare values): the executor skips re-rounding their outputs.
FP16_EXACT_OPS = frozenset({
    "transpose", "reshape", "expand_dims", "squeeze", "tile", "pad", "slice_by_index",
    "slice_by_size", "concat", "split", "gather", "relu", "relu6", "maximum", "minimum",
    "clip", "identity", "depth_to_space", "space_to_depth", "pixel_shuffle",
    "upsample_nearest_neighbor", "resize_nearest_neighbor", "max_pool", "select",
})

# ---------------------------------------------------------------------- the runner


@dataclass
class ImageIO:
    """How one image feature maps to pixels (from the model description)."""

    name: str
    height: int
    width: int
    color: str  # RGB | BGR | GRAYSCALE | GRAYSCALE_FLOAT16


def image_features(features) -> dict[str, ImageIO]:
    """Image-typed features of spec.description.input/output, keyed by name."""
    from coremltools.proto import FeatureTypes_pb2

    out = {}
    for f in features:
        if f.type.WhichOneof("Type") != "imageType":
            continue
        it = f.type.imageType
        color = FeatureTypes_pb2.ImageFeatureType.ColorSpace.Name(it.colorSpace)
        out[f.name] = ImageIO(f.name, int(it.height), int(it.width), color)
    return out


def rgb_to_layout(image_hwc: np.ndarray, color: str) -> np.ndarray:
    """HWC RGB frame -> (1, C, H, W) float32 in the feature's channel order."""
    img = np.asarray(image_hwc, np.float32)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an HWC RGB image, got shape {img.shape}")
    if color == "BGR":
        img = img[:, :, ::-1]
    elif color.startswith("GRAYSCALE"):
        # ITU-R BT.601 luma, what image libraries use for RGB -> gray
        img = (img @ np.array([0.299, 0.587, 0.114], np.float32))[:, :, None]
    elif color != "RGB":
        raise ValueError(f"unsupported colour layout {color}")
    return np.ascontiguousarray(img.transpose(2, 0, 1)[None])


def layout_to_rgb(nchw: np.ndarray, color: str) -> np.ndarray:
    """(1, C, H, W) in the feature's channel order -> HWC RGB float32."""
    img = np.asarray(nchw, np.float32)[0].transpose(1, 2, 0)
    if color == "BGR":
        img = img[:, :, ::-1]
    elif color.startswith("GRAYSCALE"):
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img)


def _check_image_size(path, io: ImageIO, image) -> None:
    h, w = np.shape(image)[:2]
    if (h, w) != (io.height, io.width):
        raise LivestyleError(path, f"input {io.name!r} is {io.height}x{io.width} (HxW), got a {h}x{w} frame")


def finish_image(rgb: np.ndarray, output: str) -> np.ndarray:
    """An 8-bit pixel buffer clips; uint8 also rounds (what a device app receives)."""
    rgb = np.clip(rgb, 0, 255)
    if output == "uint8":
        return np.rint(rgb).astype(np.uint8)
    if output == "float":
        return rgb.astype(np.float32)
    raise ValueError(f"output must be 'float' or 'uint8', not {output!r}")


class MilProgram:
    """An mlprogram's main function, runnable with NumPy.

    `run(feeds)` takes named input arrays (as the program sees them: an image input is
    (1, C, H, W) float32 in its colour layout) and returns named output arrays.
    """

    def __init__(self, spec, prog, path: str | os.PathLike = "<mlprogram>", function: str = "main"):
        self.spec = spec
        self.prog = prog
        self.path = Path(path)
        if function not in prog.functions:
            raise LivestyleError(path, f"no function {function!r} in the program (have {', '.join(prog.functions)})")
        self.function = prog.functions[function]
        self.input_images = image_features(spec.description.input)
        self.output_images = image_features(spec.description.output)
        self.op_types = sorted({op.op_type for op in self.function.operations})

    @classmethod
    def load(cls, path: str | os.PathLike) -> "MilProgram":
        from coremltools.converters.mil.frontend.milproto.load import load as milproto_load

        path = Path(path)
        spec = load_spec(path)
        kind = spec.WhichOneof("Type")
        if kind != "mlProgram":
            raise LivestyleError(path, f"is a {kind} model, not an mlprogram (use livestyle.convert.nn_exec)")
        weights = path / WEIGHTS_SUBDIR
        prog = milproto_load(spec, spec.specificationVersion, str(weights) if weights.is_dir() else None)
        return cls(spec, prog, path)

    def unsupported_ops(self) -> list[str]:
        """Op types in the program this executor cannot evaluate."""
        return [t for t in self.op_types if t not in OPS and t != "const"]

    def run(self, feeds: Mapping[str, np.ndarray], emulate_fp16: bool = True) -> dict[str, np.ndarray]:
        env: dict[str, np.ndarray] = {}
        for name, var in self.function.inputs.items():
            if name not in feeds:
                raise LivestyleError(self.path, f"missing input {name!r}")
            value = np.asarray(feeds[name])
            want = tuple(int(s) for s in var.shape)
            if value.shape != want:
                raise LivestyleError(self.path, f"input {name!r} must have shape {want}, got {value.shape}")
            env[name] = self._store(value.astype(_np_dtype(var.dtype)), var.dtype, emulate_fp16)
        for op in self.function.operations:
            if op.op_type == "const":
                continue  # values read straight from the program (Var.val)
            fn = OPS.get(op.op_type)
            if fn is None:
                raise UnsupportedOpError(self.path, f"op type {op.op_type!r} (op {op.name!r}) is not supported by the NumPy executor")
            try:
                result = fn(_Args(op, env))
            except UnsupportedOpError:
                raise
            except Exception as exc:
                raise RuntimeError(f"{op.op_type} {op.name!r} failed: {exc}") from exc
            results = result if isinstance(result, (list, tuple)) else [result]
            # data movement of fp16 values stays fp16-exact: skip the (costly) rounding
            exact = op.op_type in FP16_EXACT_OPS
            for var, value in zip(op.outputs, results):
                env[var.name] = self._store(np.asarray(value), var.dtype, emulate_fp16 and not exact)
        return {var.name: env[var.name] for var in self.function.outputs}

    @staticmethod
    def _store(value: np.ndarray, dtype, round_fp16: bool) -> np.ndarray:
        """Values are kept as float32; an fp16-typed one is rounded to fp16 precision
        (overflow becomes inf, as on the device) when `round_fp16`."""
        want = _np_dtype(dtype)
        if want == np.float16:
            if round_fp16:
                with np.errstate(over="ignore"):
                    return value.astype(np.float16).astype(np.float32)
            return value.astype(np.float32, copy=False)
        return value.astype(want, copy=False)

    def run_image(self, image_hwc: np.ndarray, emulate_fp16: bool = True, output: str = "float") -> np.ndarray:
        """One RGB HWC frame (uint8 or float 0..255) -> the first image output, HWC RGB."""
        in_io = _single(self.path, self.input_images, "image input")
        out_io = _single(self.path, self.output_images, "image output")
        _check_image_size(self.path, in_io, image_hwc)
        outs = self.run({in_io.name: rgb_to_layout(image_hwc, in_io.color)}, emulate_fp16)
        return finish_image(layout_to_rgb(outs[out_io.name], out_io.color), output)


def _single(path, features: dict[str, ImageIO], what: str) -> ImageIO:
    if len(features) != 1:
        raise LivestyleError(path, f"expected exactly one {what}, found {len(features)}")
    return next(iter(features.values()))


def run_program(path: str | os.PathLike, feeds: Mapping[str, np.ndarray], emulate_fp16: bool = True) -> dict[str, np.ndarray]:
    """Lower-level: named input arrays (as the program sees them) -> named outputs."""
    return MilProgram.load(path).run(feeds, emulate_fp16)


def run_mlpackage(path: str | os.PathLike, image, emulate_fp16: bool = True, output: str = "float") -> np.ndarray:
    """Run an .mlpackage on one RGB HWC frame (uint8, or float 0..255).

    Returns HWC RGB at the output image's size: float32 0..255 (`output="float"`,
    clipped) or uint8 (`output="uint8"`, clipped and rounded as a pixel buffer is).
    """
    return MilProgram.load(path).run_image(image, emulate_fp16, output)
