"""Run a Core ML neuralnetwork model (.mlmodel, the pre-mlprogram format) with NumPy.

The same reason as livestyle.convert.mil_exec (no `MLModel.predict` off macOS), for the older
format that `convert_to="neuralnetwork"` produces (iOS14 target, so the half-pixel
bilinear upscale is available). Layers are evaluated in spec order; blobs are
(1, C, H, W) for images, rank-N arrays otherwise (the converter emits the rank-N
layers: transpose, reshapeStatic, sliceStatic, *Broadcastable).

- The image preprocessing (`neuralNetwork.preprocessing` scaler: channelScale and
  per-channel biases) is applied to the input in its declared colour layout, as the
  Core ML runtime does before the first layer.
- `emulate_fp16=True` rounds every layer output to fp16: the weights in this format
  are fp32 but the phone's GPU/ANE run it in fp16.
- Unknown layers raise naming the layer type and layer name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np

from livestyle.convert.coreml_io import load_spec
from livestyle.errors import LivestyleError
from livestyle.convert.mil_exec import (
    ImageIO,
    UnsupportedOpError,
    _single,
    _check_image_size,
    conv2d,
    conv_transpose2d,
    finish_image,
    image_features,
    layout_to_rgb,
    pad_nd,
    resize_bilinear,
    resize_nearest,
    rgb_to_layout,
    same_pads,
)

# layer outputs that only move fp16 values: no re-rounding needed (see mil_exec)
_FP16_EXACT = frozenset({"transpose", "expandDims", "squeeze", "tile", "reshapeStatic", "reshape",
                         "padding", "sliceStatic", "concat", "concatND", "permute", "flatten"})


def weights(w, shape=None) -> np.ndarray:
    """A WeightParams message as float32 (floatValue, float16Value or raw fp32 bytes)."""
    if len(w.floatValue):
        arr = np.asarray(w.floatValue, np.float32)
    elif len(w.float16Value):
        arr = np.frombuffer(w.float16Value, np.float16).astype(np.float32)
    elif len(w.rawValue):
        arr = np.frombuffer(w.rawValue, np.float32).copy()
    elif len(w.int8RawValue) or w.HasField("quantization"):
        raise ValueError("quantized weights are not supported")
    else:
        arr = np.zeros(0, np.float32)
    return arr if shape is None else arr.reshape(shape)


def _activation(p, x):
    kind = p.WhichOneof("NonlinearityType")
    if kind == "ReLU":
        return np.maximum(x, 0)
    if kind == "tanh":
        return np.tanh(x)
    if kind == "sigmoid":
        return 1 / (1 + np.exp(-x))
    if kind == "linear":
        return p.linear.alpha * x + p.linear.beta
    if kind == "leakyReLU":
        return np.where(x >= 0, x, p.leakyReLU.alpha * x)
    if kind == "thresholdedReLU":
        return np.where(x > p.thresholdedReLU.alpha, x, 0)
    if kind == "scaledTanh":
        return p.scaledTanh.alpha * np.tanh(p.scaledTanh.beta * x)
    if kind == "sigmoidHard":
        return np.clip(p.sigmoidHard.alpha * x + p.sigmoidHard.beta, 0, 1)
    if kind == "ELU":
        return np.where(x > 0, x, p.ELU.alpha * (np.exp(np.minimum(x, 0)) - 1))
    if kind == "softsign":
        return x / (1 + np.abs(x))
    if kind == "softplus":
        return np.logaddexp(0, x)
    if kind == "PReLU":
        alpha = weights(p.PReLU.alpha).reshape(-1, 1, 1)
        return np.where(x >= 0, x, alpha * x)
    raise KeyError(f"activation {kind}")


def _conv(p, x):
    kh, kw = (list(p.kernelSize) or [3, 3])
    sh, sw = (list(p.stride) or [1, 1])
    dh, dw = (list(p.dilationFactor) or [1, 1])
    groups = p.nGroups or 1
    bias = weights(p.bias) if p.hasBias else None
    h, w = x.shape[-2:]
    pad_kind = p.WhichOneof("ConvolutionPaddingType")
    if p.isDeconvolution:
        wt = weights(p.weights, (p.kernelChannels, p.outputChannels // groups, kh, kw))
        out_hw = list(p.outputShape) or None
        if pad_kind == "same":
            out_hw = out_hw or [h * sh, w * sw]
            lower = p.same.asymmetryMode == p.same.TOP_LEFT_HEAVY
            crop = tuple(same_pads(o, k, s, d, lower)[0] for o, k, s, d in zip(out_hw, (kh, kw), (sh, sw), (dh, dw)))
        else:
            b = p.valid.paddingAmounts.borderAmounts
            crop = (b[0].startEdgeSize, b[1].startEdgeSize) if len(b) else (0, 0)
            if out_hw is None and len(b):
                fh = (h - 1) * sh + (kh - 1) * dh + 1 - b[0].startEdgeSize - b[0].endEdgeSize
                fw = (w - 1) * sw + (kw - 1) * dw + 1 - b[1].startEdgeSize - b[1].endEdgeSize
                out_hw = [fh, fw]
        return conv_transpose2d(x, wt, bias, (sh, sw), (dh, dw), groups, crop, out_hw)
    wt = weights(p.weights, (p.outputChannels, p.kernelChannels, kh, kw))
    if pad_kind == "same":
        lower = p.same.asymmetryMode == p.same.TOP_LEFT_HEAVY
        pads = [*same_pads(h, kh, sh, dh, lower), *same_pads(w, kw, sw, dw, lower)]
    else:
        b = p.valid.paddingAmounts.borderAmounts
        pads = [b[0].startEdgeSize, b[0].endEdgeSize, b[1].startEdgeSize, b[1].endEdgeSize] if len(b) else [0] * 4
    return conv2d(x, wt, bias, (sh, sw), (dh, dw), pads, groups)


def _batchnorm(p, x):
    c = p.channels
    gamma, beta = weights(p.gamma, (c,)), weights(p.beta, (c,))
    shape = (1, c, 1, 1)
    if p.computeMeanVar or p.instanceNormalization:
        axes = (2, 3) if p.instanceNormalization else (0, 2, 3)
        mean = x.mean(axis=axes, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    else:
        mean, var = weights(p.mean).reshape(shape), weights(p.variance).reshape(shape)
    return (x - mean) / np.sqrt(var + p.epsilon) * gamma.reshape(shape) + beta.reshape(shape)


def _unary(p, x):
    x = p.scale * x + p.shift
    kind = p.Operation.Name(p.type)
    eps = p.epsilon
    return {
        "SQRT": lambda: np.sqrt(x), "RSQRT": lambda: 1 / np.sqrt(x + eps),
        "INVERSE": lambda: 1 / (x + eps), "POWER": lambda: np.power(x, p.alpha),
        "EXP": lambda: np.exp(x), "LOG": lambda: np.log(x + eps), "ABS": lambda: np.abs(x),
        "THRESHOLD": lambda: np.maximum(x, p.alpha),
    }[kind]()


def _upsample(p, x):
    h, w = x.shape[-2:]
    mode = p.InterpolationMode.Name(p.mode)
    if len(p.fractionalScalingFactor):
        fh, fw = p.fractionalScalingFactor
    else:
        fh, fw = (list(p.scalingFactor) or [1, 1])
    oh, ow = int(np.floor(h * fh)), int(np.floor(w * fw))
    if mode == "NN":
        return resize_nearest(x, oh, ow)
    linear = p.LinearUpsampleMode.Name(p.linearUpsampleMode)
    grid = {"DEFAULT": "default", "ALIGN_CORNERS_TRUE": "align_corners", "ALIGN_CORNERS_FALSE": "half_pixel"}[linear]
    return resize_bilinear(x, oh, ow, grid)


_SAMPLING = {"STRICT_ALIGN_ENDPOINTS_MODE": "align_corners", "ALIGN_ENDPOINTS_MODE": "align_corners_1",
             "UPSAMPLE_MODE": "default", "ROI_ALIGN_MODE": "offset_corners"}


def _resize_bilinear(p, x):
    oh, ow = (list(p.targetSize) or [1, 1])
    mode = p.mode.SamplingMethod.Name(p.mode.samplingMethod) if p.HasField("mode") else "STRICT_ALIGN_ENDPOINTS_MODE"
    return resize_bilinear(x, oh, ow, _SAMPLING[mode])


def _padding(p, x):
    b = p.paddingAmounts.borderAmounts
    pads = [(a.startEdgeSize, a.endEdgeSize) for a in b] if len(b) else [(0, 0), (0, 0)]
    kind = p.WhichOneof("PaddingType")
    if kind == "constant":
        return pad_nd(x, pads, "constant", p.constant.value)
    return pad_nd(x, pads, "reflect" if kind == "reflection" else "replicate")


def _slice_static(p, x):
    idx = []
    for i in range(x.ndim):
        b, e, s = p.beginIds[i], p.endIds[i], p.strides[i]
        if len(p.squeezeMasks) and p.squeezeMasks[i]:
            idx.append(b)
            continue
        idx.append(slice(None if p.beginMasks[i] else b, None if p.endMasks[i] else e, s))
    return x[tuple(idx)]


def _slice(p, x):
    """The rank-5 era `slice` layer: one of channel/height/width of a (..., C, H, W) blob
    (Keras Cropping2D converts to it)."""
    axis = {0: -3, 1: -2, 2: -1}[p.axis]  # SliceLayerParams.SliceAxis: CHANNEL_AXIS, HEIGHT_AXIS, WIDTH_AXIS
    end = p.endIndex if p.endIndex != 0 else None
    if end is not None and end < 0:
        end = x.shape[axis] + end
    index = [slice(None)] * x.ndim
    index[axis] = slice(p.startIndex, end, p.stride or 1)
    return x[tuple(index)]


def _reduce(fn):
    def run(p, x):
        axes = None if p.reduceAll or not len(p.axes) else tuple(p.axes)
        return fn(x, axis=axes, keepdims=p.keepDims)

    return run


def _scale(p, x):
    y = x * weights(p.scale).reshape(_chw(p.shapeScale))
    return y + weights(p.bias).reshape(_chw(p.shapeBias)) if p.hasBias else y


def _chw(shape):
    """[1] | [C] | [C,H,W] -> a shape that broadcasts against (N, C, H, W)."""
    shape = list(shape) or [1]
    return [1] + shape + [1] * (3 - len(shape)) if len(shape) < 3 else [1] + shape


def _tile(p, x):
    reps = list(p.reps)
    if len(reps) == x.ndim and all(r == 1 or n == 1 for r, n in zip(reps, x.shape)):
        return np.ascontiguousarray(np.broadcast_to(x, [n * r for n, r in zip(x.shape, reps)]))
    return np.tile(x, reps)


def _expand_dims(p, x):
    rank = x.ndim + len(p.axes)
    for ax in sorted(a % rank for a in p.axes):
        x = np.expand_dims(x, ax)
    return x


def _reshape_static(p, x):
    return x.reshape([x.shape[i] if s == 0 else s for i, s in enumerate(p.targetShape)])


def _permute(p, x):
    # legacy permute is over (Seq, C, H, W); a rank-4 blob's batch axis plays Seq
    return np.transpose(x, list(p.axis))


def _elementwise(fn):
    def run(p, *xs):
        if len(xs) == 1:
            return fn(xs[0], p.alpha)
        out = xs[0]
        for y in xs[1:]:
            out = fn(out, y)
        return out

    return run


# layer type -> fn(params, *inputs)
LAYERS = {
    "convolution": _conv,
    "activation": _activation,
    "batchnorm": _batchnorm,
    "unary": _unary,
    "upsample": _upsample,
    "resizeBilinear": _resize_bilinear,
    "padding": _padding,
    "sliceStatic": _slice_static,
    "slice": _slice,
    "transpose": lambda p, x: np.transpose(x, list(p.axes)),
    "permute": _permute,
    "expandDims": _expand_dims,
    "squeeze": lambda p, x: np.squeeze(x) if p.squeezeAll else np.squeeze(x, axis=tuple(p.axes)),
    "tile": _tile,
    "reshapeStatic": _reshape_static,
    "flatten": lambda p, x: x.reshape(x.shape[0], -1, 1, 1),
    "reduceMean": _reduce(np.mean),
    "reduceSum": _reduce(np.sum),
    "reduceMax": _reduce(np.max),
    "reduceMin": _reduce(np.min),
    "add": _elementwise(np.add),
    "multiply": _elementwise(np.multiply),
    "max": lambda p, *xs: np.maximum.reduce(np.broadcast_arrays(*xs)),
    "min": lambda p, *xs: np.minimum.reduce(np.broadcast_arrays(*xs)),
    "addBroadcastable": lambda p, a, b: a + b,
    "subtractBroadcastable": lambda p, a, b: a - b,
    "multiplyBroadcastable": lambda p, a, b: a * b,
    "divideBroadcastable": lambda p, a, b: a / b,
    "maxBroadcastable": lambda p, a, b: np.maximum(a, b),
    "minBroadcastable": lambda p, a, b: np.minimum(a, b),
    "powBroadcastable": lambda p, a, b: np.power(a, b),
    "scale": _scale,
    "bias": lambda p, x: x + weights(p.bias).reshape(_chw(p.shape)),
    "loadConstant": lambda p: weights(p.data).reshape([1] + list(p.shape)),
    "loadConstantND": lambda p: weights(p.data).reshape(list(p.shape)),
    "concat": lambda p, *xs: np.concatenate(xs, axis=-3),
    "concatND": lambda p, *xs: np.concatenate(xs, axis=p.axis),
    "clip": lambda p, x: np.clip(x, p.minVal, p.maxVal),
    "softmax": lambda p, x: _softmax(x, -3),
    "softmaxND": lambda p, x: _softmax(x, p.axis),
}


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


class NNModel:
    """A neuralnetwork spec runnable with NumPy; `run(feeds)` takes (1, C, H, W) images
    (pixels, before preprocessing) keyed by input name and returns all outputs."""

    def __init__(self, spec, path: str | os.PathLike = "<neuralnetwork>"):
        self.spec = spec
        self.path = Path(path)
        kind = spec.WhichOneof("Type")
        if kind != "neuralNetwork":
            raise LivestyleError(path, f"is a {kind} model, not a neuralnetwork (use livestyle.convert.mil_exec)")
        self.nn = spec.neuralNetwork
        self.input_images = image_features(spec.description.input)
        self.output_images = image_features(spec.description.output)
        self.preprocessing = {p.featureName: p for p in self.nn.preprocessing}

    @classmethod
    def load(cls, path: str | os.PathLike) -> "NNModel":
        path = Path(path)
        return cls(load_spec(path), path)

    def layer_types(self) -> list[str]:
        return sorted({layer.WhichOneof("layer") for layer in self.nn.layers})

    def unsupported_layers(self) -> list[str]:
        return [t for t in self.layer_types() if t not in LAYERS]

    def _preprocess(self, name: str, x: np.ndarray) -> np.ndarray:
        pre = self.preprocessing.get(name) or (self.preprocessing.get("") if len(self.input_images) == 1 else None)
        if pre is None:
            return x
        if pre.WhichOneof("preprocessor") != "scaler":
            raise UnsupportedOpError(self.path, f"preprocessing {pre.WhichOneof('preprocessor')!r} of {name!r} is not supported")
        s = pre.scaler
        scale = s.channelScale if s.channelScale else 1.0  # proto3 default 0 means "unset" (Core ML uses 1)
        color = self.input_images[name].color if name in self.input_images else "RGB"
        if color == "BGR":
            bias = [s.blueBias, s.greenBias, s.redBias]
        elif color == "RGB":
            bias = [s.redBias, s.greenBias, s.blueBias]
        else:
            bias = [s.grayBias]
        return x * scale + np.asarray(bias, np.float32).reshape(1, -1, 1, 1)

    def run(self, feeds: Mapping[str, np.ndarray], emulate_fp16: bool = True) -> dict[str, np.ndarray]:
        env: dict[str, np.ndarray] = {}
        for f in self.spec.description.input:
            if f.name not in feeds:
                raise LivestyleError(self.path, f"missing input {f.name!r}")
            x = np.asarray(feeds[f.name], np.float32)
            env[f.name] = self._round(self._preprocess(f.name, x), emulate_fp16)
        for layer in self.nn.layers:
            kind = layer.WhichOneof("layer")
            fn = LAYERS.get(kind)
            if fn is None:
                raise UnsupportedOpError(self.path, f"layer type {kind!r} (layer {layer.name!r}) is not supported by the NumPy executor")
            try:
                args = [env[name] for name in layer.input]
            except KeyError as exc:
                raise LivestyleError(self.path, f"layer {layer.name!r} reads blob {exc.args[0]!r} that no earlier layer writes") from None
            try:
                result = fn(getattr(layer, kind), *args)
            except (UnsupportedOpError, LivestyleError):
                raise
            except Exception as exc:
                raise RuntimeError(f"{kind} layer {layer.name!r} failed: {exc}") from exc
            results = result if isinstance(result, (list, tuple)) else [result]
            for name, value in zip(layer.output, results):
                value = np.asarray(value, np.float32)
                env[name] = value if kind in _FP16_EXACT else self._round(value, emulate_fp16)
        return {f.name: env[f.name] for f in self.spec.description.output}

    @staticmethod
    def _round(x: np.ndarray, emulate_fp16: bool) -> np.ndarray:
        if not emulate_fp16:
            return x
        with np.errstate(over="ignore"):
            return x.astype(np.float16).astype(np.float32)

    def run_image(self, image_hwc: np.ndarray, emulate_fp16: bool = True, output: str = "float") -> np.ndarray:
        in_io: ImageIO = _single(self.path, self.input_images, "image input")
        out_io: ImageIO = _single(self.path, self.output_images, "image output")
        _check_image_size(self.path, in_io, image_hwc)
        outs = self.run({in_io.name: rgb_to_layout(image_hwc, in_io.color)}, emulate_fp16)
        return finish_image(layout_to_rgb(outs[out_io.name], out_io.color), output)

