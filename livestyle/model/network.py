"""The image transformer network: Johnson et al. 2016, pruned for phones.

Defaults follow the reference article: 3 residual blocks (not 5) so a 480x853 frame
fits the A12's 66 ms budget, and batch norm instead of instance norm, because batch
norm folds into the convolutions at export while Keras instance norm does not fuse
into one Core ML op (an fp16 risk).

Choices:
- resize-conv (nearest upsample, then conv) by default instead of transposed conv:
  transposed convs leave checkerboard artifacts (Odena et al., Distill 2016).
- reflection padding by default: zero padding darkens the borders.
- optional anti-aliasing (NetworkConfig.antialias): a fixed blur before each stride-2
  conv and after each upsample, so strokes are not tied to the stride-4 grid.
- any input size: the input is reflect-padded up to a multiple of 4 (two stride-2
  stages) and the output cropped back, so 853 comes out as 853, not 852 or 856.
- an edge margin at inference (NetworkConfig.edge_margin): the stride grid's cells sit at
  0, 4, ... W-4, so the last columns and rows are the ones the grid serves worst, and
  trained filters learn to paint them apart (a red column at the right edge of GPU-trained
  Scream filters). Reflecting a few px past them and cropping moves that out of the frame.
- input and output are RGB in 0..255; the scaling happens inside the model so every
  runtime and the Core ML image I/O see plain pixels.
"""

from __future__ import annotations

import math
import zlib

import keras
import numpy as np
from keras import layers, ops

from livestyle.config import NetworkConfig


@keras.saving.register_keras_serializable(package="livestyle")
class ReflectPad(layers.Layer):
    """Pad height and width by reflection: (top, bottom), (left, right)."""

    def __init__(self, pad, **kwargs):
        super().__init__(**kwargs)
        self.pad = tuple(tuple(int(v) for v in p) for p in pad)

    def call(self, x):
        (t, b), (l, r) = self.pad
        return ops.pad(x, [[0, 0], [t, b], [l, r], [0, 0]], mode="reflect")

    def compute_output_shape(self, shape):
        (t, b), (l, r) = self.pad
        h = None if shape[1] is None else shape[1] + t + b
        w = None if shape[2] is None else shape[2] + l + r
        return (shape[0], h, w, shape[3])

    def get_config(self):
        return {**super().get_config(), "pad": self.pad}


@keras.saving.register_keras_serializable(package="livestyle")
class Blur(layers.Layer):
    """A fixed binomial low-pass (taps 3: [1, 2, 1], 5: [1, 4, 6, 4, 1]), per channel, on
    an input already padded by taps // 2 (see _blur). No weights: trained weights load
    with or without it."""

    def __init__(self, taps, **kwargs):
        super().__init__(**kwargs)
        self.taps = int(taps)

    def call(self, x):
        row = np.array([math.comb(self.taps - 1, i) for i in range(self.taps)], dtype=np.float32)
        k2 = np.outer(row, row) / row.sum() ** 2
        kernel = np.tile(k2[:, :, None, None], (1, 1, x.shape[-1], 1))
        return ops.depthwise_conv(x, ops.convert_to_tensor(kernel, dtype=x.dtype), strides=1, padding="valid")

    def compute_output_shape(self, shape):
        p = self.taps - 1
        return (shape[0], None if shape[1] is None else shape[1] - p, None if shape[2] is None else shape[2] - p, shape[3])

    def get_config(self):
        return {**super().get_config(), "taps": self.taps}


@keras.saving.register_keras_serializable(package="livestyle")
class ColourMap(layers.Layer):
    """A fixed per-pixel affine colour map on 0..255 RGB, clipped (livestyle.model.palette):
    constants in the config, no weights, so trained weights load with or without it."""

    def __init__(self, matrix, offset, **kwargs):
        super().__init__(**kwargs)
        self.matrix = [[float(v) for v in row] for row in matrix]
        self.offset = [float(v) for v in offset]

    def call(self, x):
        # a 1x1 conv and two ReLUs: ops every exporter and verifier here knows (a matmul
        # becomes a batched matmul in Core ML's neuralnetwork format, a clip varies)
        k = np.asarray(self.matrix, np.float32).T[None, None]  # (1, 1, in, out)
        b = ops.convert_to_tensor(np.asarray(self.offset, np.float32), dtype=x.dtype)
        y = ops.relu(ops.conv(x, ops.convert_to_tensor(k, dtype=x.dtype), strides=1, padding="valid") + b)
        return 255.0 - ops.relu(255.0 - y)

    def compute_output_shape(self, shape):
        return shape

    def get_config(self):
        return {**super().get_config(), "matrix": self.matrix, "offset": self.offset}


def _blur(x, taps: int, name: str):
    """Blur x keeping its size (reflected borders). Before a stride-2 conv it removes what
    the subsampling would alias (blur and conv commute: Zhang 2019's blur-then-subsample);
    after a nearest upsample it makes it bilinear (3 taps) or smoother, so the output no
    longer steps on the stride grid."""
    p = taps // 2
    return Blur(taps, name=name)(ReflectPad(((p, p), (p, p)), name=f"{name}_pad")(x))


def _norm(cfg: NetworkConfig, name: str):
    if cfg.norm == "batch":
        # momentum 0.9: short schedules must leave usable moving statistics for inference
        return layers.BatchNormalization(momentum=0.9, epsilon=1e-3, name=name)
    # instance norm == group norm with one channel per group
    return layers.GroupNormalization(groups=-1, epsilon=1e-3, name=name)


def _init(seed: int, name: str) -> keras.initializers.Initializer:
    """Glorot-uniform seeded by (seed, layer name). Keras' unseeded default draws from
    Python's global `random`, which any thread in the process may consume, so the
    same config could start from different weights (a resumed run then disagrees)."""
    return keras.initializers.GlorotUniform(seed=zlib.crc32(f"{seed}:{name}".encode()) & 0x7FFFFFFF)


def _conv(x, cfg, filters, kernel, stride, name, separable=False, seed=0):
    if cfg.padding == "reflect" and kernel > 1:
        p = kernel // 2
        x = ReflectPad(((p, p), (p, p)), name=f"{name}_pad")(x)
        padding = "valid"
    else:
        padding = "same"
    # no bias before a norm layer: the norm's beta replaces it
    if separable:
        return layers.SeparableConv2D(filters, kernel, strides=stride, padding=padding, use_bias=False, name=name,
                                      depthwise_initializer=_init(seed, f"{name}_dw"),
                                      pointwise_initializer=_init(seed, f"{name}_pw"))(x)
    return layers.Conv2D(filters, kernel, strides=stride, padding=padding, use_bias=False, name=name,
                         kernel_initializer=_init(seed, name))(x)


def _conv_block(x, cfg, filters, kernel, stride, name, relu=True, separable=False, seed=0):
    if stride > 1 and cfg.antialias:
        x = _blur(x, cfg.antialias, f"{name}_blur")
    x = _conv(x, cfg, filters, kernel, stride, name, separable, seed)
    x = _norm(cfg, f"{name}_norm")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _residual(x, cfg, filters, name, seed):
    y = _conv_block(x, cfg, filters, 3, 1, f"{name}_a", separable=cfg.separable, seed=seed)
    y = _conv_block(y, cfg, filters, 3, 1, f"{name}_b", relu=False, separable=cfg.separable, seed=seed)
    return layers.Add(name=f"{name}_add")([x, y])


def _upsample(x, cfg, filters, name, seed):
    if cfg.upsample == "transpose":
        x = layers.Conv2DTranspose(filters, 3, strides=2, padding="same", use_bias=False, name=name,
                                   kernel_initializer=_init(seed, name))(x)
        x = _norm(cfg, f"{name}_norm")(x)
        return layers.ReLU(name=f"{name}_relu")(x)
    x = layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_up")(x)
    if cfg.antialias:
        x = _blur(x, cfg.antialias, f"{name}_blur")
    return _conv_block(x, cfg, filters, 3, 1, name, seed=seed)


def padding_for(size: int, multiple: int = 4, end_margin: int = 0) -> tuple[int, int]:
    """The (start, end) padding that brings `size` to a multiple, with at least
    `end_margin` px at the end: the least total that does, the rest split evenly.
    end_margin 0: the larger half at the end (853 -> (1, 2), 480 -> (0, 0))."""
    total = (-size) % multiple
    while total < end_margin:
        total += multiple
    start = (total - end_margin) // 2
    return start, total - start


def effective_margin(size: int, end_margin: int, multiple: int = 4) -> int:
    """The end margin a side of `size` px can take: reflection needs pad < size, and the
    pad can reach end_margin + multiple - 1. Tiny images (a few px) go without."""
    return end_margin if size >= end_margin + multiple else 0


def build_transformer(cfg: NetworkConfig, height: int, width: int, name: str = "transformer", seed: int = 0,
                      input_levels: tuple = (0, 255), edge_margin: int = 0, colour_map=None) -> keras.Model:
    """Functional model (1..N, height, width, 3) RGB 0..255 -> same shape RGB 0..255.

    Weights do not depend on height/width: train at 256x256, rebuild at 853x480 and
    load the same weights for export. The initial weights are a function of `seed`.
    `input_levels` (lo, hi): pixels 0..255 are first mapped to lo..hi, a fixed affine
    folded into the input scaling (no weights, no cost): see NetworkConfig.input_levels.
    `edge_margin`: at least this many px reflected past the last row and column before the
    network, cropped after: see NetworkConfig.edge_margin (inference only, like the levels).
    `colour_map` (matrix, offset): the style's palette map on the output (inference only).
    """
    lo, hi = (float(v) for v in input_levels)
    inp = keras.Input((height, width, 3), name="image")
    x = layers.Rescaling((hi - lo) / 255 / 127.5, offset=lo / 127.5 - 1.0, name="to_unit")(inp)
    pad_h = padding_for(height, end_margin=effective_margin(height, edge_margin))
    pad_w = padding_for(width, end_margin=effective_margin(width, edge_margin))
    if any(pad_h + pad_w):
        # reflection in training and export alike; cropped again at the end
        x = ReflectPad((pad_h, pad_w), name="pad_to_4")(x)
    w = cfg.width
    x = _conv_block(x, cfg, w, 9, 1, "enc1", seed=seed)
    x = _conv_block(x, cfg, 2 * w, 3, 2, "enc2", seed=seed)
    x = _conv_block(x, cfg, 4 * w, 3, 2, "enc3", seed=seed)
    for i in range(cfg.res_blocks):
        x = _residual(x, cfg, 4 * w, f"res{i + 1}", seed)
    x = _upsample(x, cfg, 2 * w, "dec1", seed)
    x = _upsample(x, cfg, w, "dec2", seed)
    if cfg.padding == "reflect":
        x = ReflectPad(((4, 4), (4, 4)), name="out_pad")(x)
        x = layers.Conv2D(3, 9, padding="valid", name="out_conv", kernel_initializer=_init(seed, "out_conv"))(x)
    else:
        x = layers.Conv2D(3, 9, padding="same", name="out_conv", kernel_initializer=_init(seed, "out_conv"))(x)
    # tanh keeps the output in range and activations fp16-safe; scaled back to pixels
    x = layers.Activation("tanh", name="out_tanh")(x)
    x = layers.Rescaling(127.5, offset=127.5, name="to_pixels")(x)
    if any(pad_h + pad_w):
        x = layers.Cropping2D((pad_h, pad_w), name="crop")(x)
    if colour_map is not None:
        x = ColourMap(*colour_map, name="palette")(x)
    return keras.Model(inp, x, name=name)
