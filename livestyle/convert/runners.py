"""Each model format as one frame -> stylized frame callable: the one home of the
runners that verify, bench, quantize and runtime run.

On Linux: Core ML through the NumPy executors (livestyle.convert.mil_exec for
mlprogram, livestyle.convert.nn_exec for neuralnetwork, because `MLModel.predict` needs
macOS), TFLite through LiteRT, ONNX through ONNX Runtime; the trained Keras model is the
reference. A runner takes an (H, W, 3) RGB frame, 0..255, at the model's input size
(fit_frame makes one from a photo of any size) and returns the stylized frame: at the
model size for Keras, TFLite and ONNX, at the display size for Core ML (the upscale is
inside the model).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from livestyle.convert.export import MODEL_SUFFIX
from livestyle.errors import LivestyleError

FORMATS = ("mlprogram", "neuralnetwork", "tflite", "onnx")
_SUFFIX = {suffix: fmt for fmt, suffix in MODEL_SUFFIX.items()}

Frame = np.ndarray  # HWC RGB, uint8 or float 0..255
Runner = Callable[[Frame], np.ndarray]


def fit_frame(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """Centre-crop to the model's aspect ratio, then area-resize: a held-out photo of any
    size becomes a model input without distortion."""
    import cv2

    h, w = frame.shape[:2]
    if (h, w) == (height, width):
        return np.asarray(frame)
    scale = max(height / h, width / w)
    ch, cw = min(h, round(height / scale)), min(w, round(width / scale))
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    crop = np.ascontiguousarray(frame[y0 : y0 + ch, x0 : x0 + cw])
    return cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA)


def format_of(path: str | os.PathLike) -> str:
    fmt = _SUFFIX.get(Path(path).suffix)
    if fmt is None:
        raise LivestyleError(path, f"unknown model format (expected one of {', '.join(_SUFFIX)})")
    return fmt


def keras_reference(model) -> Runner:
    """The trained Keras model (NHWC RGB 0..255 -> same) as a frame -> frame callable."""

    def run(frame: Frame) -> np.ndarray:
        x = np.asarray(frame, np.float32)[None]
        return np.asarray(model(x, training=False), np.float32)[0]

    return run


def tflite_runner(path: str | os.PathLike, threads: int | None = None) -> Runner:
    from ai_edge_litert.interpreter import Interpreter

    # XNNPACK is LiteRT's default CPU delegate for float models
    interp = Interpreter(model_path=str(path), num_threads=threads)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]

    def run(frame: Frame) -> np.ndarray:
        x = np.asarray(frame, np.float32)[None]
        if tuple(inp["shape"]) != x.shape:
            raise LivestyleError(path, f"input is {tuple(inp['shape'])}, got a frame of {x.shape}")
        scale, zero = inp.get("quantization", (0.0, 0))
        if np.issubdtype(inp["dtype"], np.integer) and scale:
            x = np.round(x / scale + zero)
        interp.set_tensor(inp["index"], x.astype(inp["dtype"]))
        interp.invoke()
        y = interp.get_tensor(out["index"]).astype(np.float32)
        scale, zero = out.get("quantization", (0.0, 0))
        if np.issubdtype(out["dtype"], np.integer) and scale:
            y = (y - zero) * scale
        return y[0]

    return run


def onnx_runner(path: str | os.PathLike, threads: int = 2, settings=None) -> Runner:
    """`settings`: a livestyle.convert.ort_session.OrtConfig (params.yaml bench.onnx); None: its defaults."""
    from livestyle.convert.ort_session import session

    sess = session(path, threads, settings)
    name = sess.get_inputs()[0].name

    def run(frame: Frame) -> np.ndarray:
        return np.asarray(sess.run(None, {name: np.asarray(frame, np.float32)[None]})[0], np.float32)[0]

    return run


def coreml_runner(path: str | os.PathLike, emulate_fp16: bool = True) -> Runner:
    """mlprogram or neuralnetwork via the NumPy executors (loaded once, run per frame)."""
    if format_of(path) == "mlprogram":
        from livestyle.convert.mil_exec import MilProgram

        model = MilProgram.load(path)
    else:
        from livestyle.convert.nn_exec import NNModel

        model = NNModel.load(path)
    return lambda frame: model.run_image(frame, emulate_fp16=emulate_fp16)


def make_runner(path: str | os.PathLike, fmt: str | None = None, emulate_fp16: bool = True) -> Runner:
    fmt = fmt or format_of(path)
    if not Path(path).exists():
        raise LivestyleError(path, f"no such {fmt} model")
    if fmt in ("mlprogram", "neuralnetwork"):
        return coreml_runner(path, emulate_fp16)
    if fmt == "tflite":
        return tflite_runner(path)
    if fmt == "onnx":
        return onnx_runner(path)
    raise LivestyleError(path, f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
