"""Smaller and cheaper copies of an exported style: int8 and fp16, each calibrated on
held-out photos and checked against the Keras model like livestyle.convert.verify checks exports.

- ONNX int8: static QDQ quantization (onnxruntime.quantization), activations uint8,
  weights int8 per output channel. Static, because dynamic quantization re-measures
  every activation's range per frame, which costs what int8 saves on a conv net.
- TFLite int8 (full integer kernels, float input and output) and fp16 weights, from
  the Keras model through the TFLite converter.
- Core ML 8-bit weights: coremltools' linear weight quantization rewrites the MIL
  program offline (no prediction needed, so it works off macOS).

Calibration frames are crops of the held-out photos (never the training crops), each
fitted to the model's input size: activation ranges from the photos the filter meets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from livestyle.atomic import atomic_path
from livestyle.config import _build, bounded
from livestyle.convert.coreml_io import load_mlmodel
from livestyle.errors import LivestyleError

VARIANTS = ("onnx_int8", "tflite_int8", "tflite_fp16", "mlprogram_int8")


@dataclass(frozen=True)
class QuantizeConfig:
    """params.yaml `bench.quantize`."""

    calibration_frames: int = bounded(8, 1)  # crops of the held-out photos, at the model size
    min_crop: float = bounded(0.5, 0.05, 1.0)  # smallest crop side, as a fraction of the photo's
    seed: int = 0
    # quantized outputs are not the fp32 output: their own bound, in dB against Keras
    min_psnr: float = bounded(30.0, 0)
    # ONNX int8: keep the first and last conv (3 colour channels at full resolution) in
    # float; measured on mosaic, 28.6 -> 40.8 dB against Keras (docs/CPU_INFERENCE.md)
    float_ends: bool = True

    @classmethod
    def from_params(cls, d):
        return _build(cls, d, "bench.quantize")


def calibration_frames(photos: list[np.ndarray], n: int, height: int, width: int, min_crop: float = 0.5,
                       seed: int = 0) -> list[np.ndarray]:
    """`n` random crops of the photos (cycled), each fitted to height x width, float32 RGB."""
    from livestyle.convert.runners import fit_frame

    if not photos:
        raise LivestyleError("calibration", "no held-out photos to calibrate on")
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        s = rng.uniform(min_crop, 1.0)
        ch, cw = max(8, int(h * s)), max(8, int(w * s))
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        out.append(fit_frame(np.ascontiguousarray(photo[y : y + ch, x : x + cw]), height, width).astype(np.float32))
    return out


def read_photos(folder: Path) -> list[np.ndarray]:
    from livestyle.images import load_rgb

    paths = sorted(p for p in Path(folder).glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not paths:
        raise LivestyleError(folder, "no held-out photos (.png/.jpg) to calibrate on: dvc repro prepare")
    return [np.asarray(load_rgb(p)) for p in paths]


def onnx_int8(src: Path, dst: Path, frames: list[np.ndarray], float_ends: bool = True) -> Path:
    """Static QDQ int8 copy of an fp32 ONNX model, calibrated on `frames` (HWC 0..255);
    `float_ends`: the first and last conv stay float."""
    import tempfile

    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    name = onnx.load(str(src), load_external_data=False).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter([{name: np.asarray(f, np.float32)[None]} for f in frames])

        def get_next(self):
            return next(self._it, None)

    with tempfile.TemporaryDirectory() as tmp, atomic_path(dst) as out:
        # shape inference and constant folding first, as onnxruntime recommends
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre))
        convs = [n.name for n in onnx.load(str(pre)).graph.node if n.op_type == "Conv"]
        keep = [convs[0], convs[-1]] if float_ends and convs else []
        quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=keep)
    return dst


def tflite_variant(transformer, dst: Path, mode: str, frames: list[np.ndarray] | None = None) -> Path:
    """TFLite copy of the Keras transformer: mode "int8" (calibrated on frames) or "fp16"."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    from livestyle.convert.export import _concrete_function, for_xnnpack

    _, concrete = _concrete_function(for_xnnpack(transformer))
    conv = tf.lite.TFLiteConverter.from_concrete_functions([convert_variables_to_constants_v2(concrete)])
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "fp16":
        conv.target_spec.supported_types = [tf.float16]
    elif mode == "int8":
        if not frames:
            raise LivestyleError(dst, "int8 TFLite needs calibration frames")
        conv.representative_dataset = lambda: ([np.asarray(f, np.float32)[None]] for f in frames)
    else:
        raise ValueError(f"unknown TFLite mode {mode!r} (int8 | fp16)")
    with atomic_path(dst) as out:
        out.write_bytes(conv.convert())
    return dst


def mlprogram_int8(src: Path, dst: Path) -> Path:
    """Core ML program with 8-bit linear (per-channel) weights; activations stay fp16."""
    import coremltools.optimize.coreml as cto

    model = load_mlmodel(src)
    cfg = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(mode="linear_symmetric", weight_threshold=0))
    small = cto.linear_quantize_weights(model, config=cfg)
    with atomic_path(dst) as out:
        small.save(str(out))
    return dst


def size_bytes(path: Path) -> int:
    path = Path(path)
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
