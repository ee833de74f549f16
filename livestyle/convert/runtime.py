"""A trained or exported style as one callable: (H, W, 3) uint8 RGB frame in, the
stylized frame of the same size out. What `livestyle stylize` and the live camera
loop run; it wraps the per-format runners of livestyle.convert.runners.

- Keras weights (a trained style, or --model X.weights.h5 with params.yaml's network)
  run at any size: the network reflect-pads to a multiple of 4 and crops back.
- Exported models (.onnx, .tflite; Core ML on macOS) have a fixed input (853x480 by
  default): a frame is scaled to fit inside it, reflect-padded to fill it, stylized,
  cropped and scaled back; a landscape frame is turned a quarter for a portrait model
  so it keeps its resolution. An ONNX model with free height/width runs at the frame's
  own size, padded to a multiple of 4.
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from livestyle.config import WEIGHTS
from livestyle.errors import LivestyleError

# Keras builds one model per frame size: padding to a multiple of 32 lets a folder of
# mixed photo sizes share a few models instead of building (and keeping) one each
KERAS_MULTIPLE = 32


def say(message: str) -> None:
    """A note on stderr that does not break a running progress bar."""
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


@dataclass
class Runner:
    """A style as frame -> stylized frame (uint8 RGB, same size as the frame)."""

    name: str
    run: Callable[[np.ndarray], np.ndarray]  # (h, w, 3) float32 0..255 -> (h', w', 3) 0..255
    input_size: tuple[int, int] | None = None  # fixed (height, width); None: any size
    multiple: int = 4  # any-size models: frames are padded to a multiple of this
    _told: bool = field(default=False, repr=False)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"{self.name}: expected an (H, W, 3) uint8 frame, got {rgb.shape} {rgb.dtype}")
        out = self._fixed(rgb) if self.input_size else self._any(rgb)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)

    def _infer(self, x: np.ndarray) -> np.ndarray:
        y = np.asarray(self.run(np.asarray(x, np.float32)), np.float32)
        if y.ndim != 3 or y.shape[2] != 3:
            raise LivestyleError(self.name, f"output of shape {y.shape} is not an (H, W, 3) image")
        return y

    def _any(self, rgb: np.ndarray) -> np.ndarray:
        from livestyle.model.network import padding_for

        h, w = rgb.shape[:2]
        (t, b), (l, r) = padding_for(h, self.multiple), padding_for(w, self.multiple)
        # symmetric, not reflect: a 1-pixel-wide photo has nothing to reflect
        y = self._infer(np.pad(rgb, ((t, b), (l, r), (0, 0)), mode="symmetric"))
        return y[t : t + h, l : l + w]

    def _fixed(self, rgb: np.ndarray) -> np.ndarray:
        mh, mw = self.input_size
        h, w = rgb.shape[:2]
        turn = h != w and mh != mw and (h > w) != (mh > mw)
        if (h, w) != (mh, mw) and not self._told:
            self._told = True
            say(f"{self.name}: fixed input {mw}x{mh} (WxH): frames of other sizes are scaled to fit it and back"
                + (", landscape ones turned a quarter" if mh > mw else ", portrait ones turned a quarter"))
        x = np.rot90(rgb) if turn else rgb
        xh, xw = x.shape[:2]
        s = min(mh / xh, mw / xw)
        sh, sw = min(mh, max(1, round(xh * s))), min(mw, max(1, round(xw * s)))
        t, l = (mh - sh) // 2, (mw - sw) // 2
        padded = np.pad(resize(x, sh, sw), ((t, mh - sh - t), (l, mw - sw - l), (0, 0)), mode="symmetric")
        y = self._infer(padded)
        if y.shape[:2] != (mh, mw):  # Core ML models return the display size
            y = resize(y, mh, mw)
        y = resize(y[t : t + sh, l : l + sw], xh, xw)
        return np.rot90(y, -1) if turn else y


def resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area averaging when shrinking (no aliasing), bilinear when growing."""
    h, w = img.shape[:2]
    if (h, w) == (height, width):
        return img
    img = np.ascontiguousarray(img)  # a quarter-turned frame is a view OpenCV cannot take
    shrink = height * width < h * w
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def apply(runner: Runner, rgb: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """strength * stylized + (1 - strength) * photo: the user's style strength control."""
    if strength <= 0:
        return np.array(rgb, np.uint8)  # the photo itself: no inference needed
    styled = runner(rgb)
    if strength >= 1:
        return styled
    mixed = strength * styled.astype(np.float32) + (1 - strength) * np.asarray(rgb, np.float32)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def check_strength(strength: float, flag: str = "--strength") -> float:
    if not 0 <= strength <= 1:
        raise LivestyleError(flag, f"must be between 0 and 1, got {strength:g}")
    return float(strength)


# ---------------------------------------------------------------- styles and models


def trained_styles(params: dict, root: Path) -> list[str]:
    """The styles of params.yaml whose weights the train stage has written."""
    return sorted(s for s in (params.get("styles") or {}) if (root / "data/train" / s / WEIGHTS).exists())


def resolve_styles(requested: list[str], params_path: str | os.PathLike = "params.yaml") -> list[str]:
    """The styles asked for ("all": every trained one), each checked now: a typo in the
    third style of a live session fails at start, not when n reaches it."""
    from livestyle.config import load_params

    params = load_params(params_path)
    names = trained_styles(params, Path(params_path).parent) if "all" in requested else list(dict.fromkeys(requested))
    if not names:
        raise LivestyleError(params_path, "no trained style yet: dvc repro trains those under styles:")
    for name in names:
        _style_weights(name, params, params_path)
    return names


def _style_weights(name: str, params: dict, params_path) -> Path:
    root = Path(params_path).parent
    trained = trained_styles(params, root)
    have = f"trained styles: {', '.join(trained) or 'none yet (dvc repro)'}"
    if name not in (params.get("styles") or {}):
        raise LivestyleError(name, f"no such style in {params_path} ({have})")
    weights = root / "data/train" / name / WEIGHTS
    if name not in trained:
        raise LivestyleError(weights, f"style {name!r} is not trained yet: dvc repro train@{name} ({have})")
    return weights


def open_style(name: str, params_path: str | os.PathLike = "params.yaml", palette: float | None = None) -> Runner:
    """A style trained by the pipeline: params.yaml's network for it, data/train/NAME weights
    (paths relative to the params file, i.e. the project root). `palette`: the strength of
    its palette map (None: params' network.palette_strength)."""
    from livestyle.config import load_params, style_config

    params = load_params(params_path)
    weights = _style_weights(name, params, params_path)
    return keras_runner(weights, style_config(params, name).network, name, params_path, palette)


def keras_runner(weights: Path, net, name: str, params_path, palette: float | None = None) -> Runner:
    from dataclasses import replace

    from livestyle.convert.export import stylizer
    from livestyle.model.palette import PALETTE_FILE, load_palette

    if palette is not None:
        if palette > 0 and load_palette(weights) is None:
            raise LivestyleError(Path(weights).with_name(PALETTE_FILE), "no palette map beside these weights: "
                                 "the train stage fits one (dvc repro train@STYLE), or leave out --palette")
        net = replace(net, palette_strength=palette)
    stylize = stylizer(weights, net)
    try:  # load now: a mismatch is the user's first line, not a traceback mid-folder
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Keras warns once per layer it cannot fill
            stylize(np.zeros((1, 8, 8, 3), np.float32))
    except Exception as exc:
        why = str(exc).strip().split(". ")[0].splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise LivestyleError(weights, f"weights do not fit the network in {params_path} "
                                      f"(res_blocks={net.res_blocks}, width={net.width}): {why}") from None
    return Runner(name, lambda x: stylize(x[None])[0], None, KERAS_MULTIPLE)


def open_model(path: str | os.PathLike, params_path: str | os.PathLike = "params.yaml", palette: float | None = None) -> Runner:
    """An exported model (.onnx, .tflite, .mlpackage/.mlmodel) or Keras .weights.h5;
    `palette` (Keras weights only): the strength of the palette map beside them."""
    path = Path(path)
    if not path.exists():
        raise LivestyleError(path, "no such model file")
    name = path.name
    if name.endswith(".h5"):
        return keras_runner(path, _network_for(path, params_path), name, params_path, palette)
    if palette is not None:
        raise LivestyleError("--palette", "an exported model carries the palette it was exported with "
                             "(network.palette_strength): give --style NAME or a .weights.h5")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return _onnx(path)
    if suffix == ".tflite":
        return _tflite(path)
    if suffix in (".mlpackage", ".mlmodel"):
        return _coreml(path)
    raise LivestyleError(path, "unknown model format (expected .weights.h5, .onnx, .tflite, .mlpackage or .mlmodel)")


def _network_for(weights: Path, params_path):
    """The style's own network when the weights are data/train/STYLE's, else params' network."""
    from livestyle.config import NetworkConfig, load_params, style_config

    params = load_params(params_path)
    style = weights.resolve().parent.name
    if weights.resolve() == (Path(params_path).parent / "data/train" / style / WEIGHTS).resolve() and style in (params.get("styles") or {}):
        return style_config(params, style).network
    return NetworkConfig.from_params(params.get("network"))


def _image_input(path: Path, shape, what: str) -> tuple[int, int] | None:
    """(height, width) of an NHWC RGB input, None where both are free; else an error."""
    dims = [d if isinstance(d, int) and d > 0 else None for d in shape]
    if len(dims) != 4 or dims[3] != 3 or dims[0] not in (None, 1):
        raise LivestyleError(path, f"{what} input {tuple(shape)} cannot be fed frames: livestyle runs (1, height, width, 3) RGB models")
    if dims[1] is None and dims[2] is None:
        return None
    if None in dims[1:3]:
        raise LivestyleError(path, f"{what} input {tuple(shape)} fixes only one side: cannot fit frames to it")
    return dims[1], dims[2]


def _onnx(path: Path) -> Runner:
    import onnx

    from livestyle.convert.runners import onnx_runner

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
        onnx.checker.check_model(str(path))
    except Exception as exc:
        raise LivestyleError(path, f"not a readable ONNX model ({exc.__class__.__name__})") from None
    inits = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise LivestyleError(path, f"has {len(inputs)} inputs: livestyle runs one-image models")
    tensor = inputs[0].type.tensor_type
    if tensor.elem_type != onnx.TensorProto.FLOAT:
        raise LivestyleError(path, f"input type is {onnx.TensorProto.DataType.Name(tensor.elem_type)}: expected FLOAT pixels 0..255")
    size = _image_input(path, [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim], "ONNX")
    return Runner(path.name, onnx_runner(path, threads=os.cpu_count() or 2), size)


def _tflite(path: Path) -> Runner:
    from ai_edge_litert.interpreter import Interpreter

    from livestyle.convert.runners import tflite_runner

    try:
        shape = Interpreter(model_path=str(path)).get_input_details()[0]["shape"]
    except Exception as exc:
        raise LivestyleError(path, f"not a readable TFLite model ({exc.__class__.__name__})") from None
    size = _image_input(path, [int(d) for d in shape], "TFLite")
    if size is None:
        raise LivestyleError(path, f"TFLite input {tuple(shape)} has no fixed size: export it at a fixed size")
    return Runner(path.name, tflite_runner(path, os.cpu_count() or 2), size)


def _coreml(path: Path) -> Runner:
    if sys.platform != "darwin":
        # the NumPy executors that verify uses take ~10 s a frame: a check, not a filter
        raise LivestyleError(path, "Core ML models run only on macOS: here use the style's .onnx or .tflite export, or --style NAME")
    from PIL import Image

    from livestyle.convert.coreml_io import load_mlmodel

    model = load_mlmodel(path, for_prediction=True)
    spec = model.get_spec()
    inp, out = spec.description.input[0], spec.description.output[0]
    if inp.type.WhichOneof("Type") != "imageType":
        raise LivestyleError(path, f"input {inp.name!r} is not an image: livestyle runs image-to-image models")
    size = (inp.type.imageType.height, inp.type.imageType.width)

    def run(x: np.ndarray) -> np.ndarray:
        y = model.predict({inp.name: Image.fromarray(np.clip(x, 0, 255).astype(np.uint8))})[out.name]
        return np.asarray(y.convert("RGB") if hasattr(y, "convert") else np.moveaxis(np.asarray(y)[0], 0, -1), np.float32)

    return Runner(path.name, run, size)
