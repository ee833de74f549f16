"""Check that every exported model computes what the trained Keras model does.

Each format runs on held-out frames through its runner (livestyle.convert.runners: on
Linux, Core ML through the NumPy executors).

Where the comparison happens: the Core ML models return the *display* size (the
bilinear upscale is inside the model), TFLite/ONNX the model size. The Keras
reference (model size) is upscaled to the Core ML output size with the same
half-pixel bilinear resize the model contains (Keras `Resizing(..., "bilinear")` ->
Core ML `upsample_bilinear(align_corners=False)`), then both are compared there.
This checks what the app receives, upscale included; a linear upscale cannot
amplify an error, so the figure is comparable with the model-size formats'.
Both sides are clipped to 0..255 (an 8-bit pixel buffer clips).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from livestyle.config import check_section
from livestyle.convert.coreml_io import load_spec
from livestyle.convert.runners import FORMATS, Frame, Runner, fit_frame, make_runner
from livestyle.errors import LivestyleError

# fp16 Core ML (and the fp16 rounding the executors emulate) costs ~25-35 dB of
# headroom over fp32 formats; the defaults leave a margin over what tests measured
DEFAULT_MIN_PSNR = {"mlprogram": 40.0, "neuralnetwork": 40.0, "tflite": 50.0, "onnx": 50.0}
REQUIRED_METADATA = ("author", "license", "shortDescription")
REQUIRED_USER_METADATA = ("style", "version")


@dataclass(frozen=True)
class VerifyConfig:
    """params.yaml `verify:` section."""

    frames: int = 4  # held-out frames per format (the NumPy Core ML run is ~seconds/frame)
    min_psnr: dict = field(default_factory=lambda: dict(DEFAULT_MIN_PSNR))
    emulate_fp16: bool = True  # round fp16-typed Core ML values as the device stores them
    input_name: str = "image"
    output_name: str = "stylized"

    def __post_init__(self):
        unknown = sorted(set(self.min_psnr) - set(FORMATS))
        if unknown:
            raise LivestyleError("params.yaml", f"verify.min_psnr has unknown format(s): {', '.join(unknown)}")
        if self.frames < 1:
            raise LivestyleError("params.yaml", f"verify.frames must be >= 1, got {self.frames}")

    @classmethod
    def from_params(cls, d: dict | None) -> "VerifyConfig":
        d = dict(d or {})
        check_section(cls, d, "verify")
        for fmt, bound in (d.get("min_psnr") or {}).items():
            if isinstance(bound, bool) or not isinstance(bound, (int, float)):
                raise LivestyleError("params.yaml", f"verify.min_psnr.{fmt}: expected a number of dB, got {bound!r}")
        # a partial min_psnr overrides only the formats it names
        d["min_psnr"] = {**DEFAULT_MIN_PSNR, **{k: float(v) for k, v in (d.get("min_psnr") or {}).items()}}
        return cls(**d)


# ------------------------------------------------------------------------ metrics


def psnr(a, b, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB; inf for identical images."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"psnr: shapes differ {a.shape} vs {b.shape}")
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(peak**2 / mse))


def upscale(image_hwc: np.ndarray, height: int, width: int) -> np.ndarray:
    """Half-pixel bilinear resize (TF `Resizing`/Core ML `upsample_bilinear` semantics)."""
    from livestyle.convert.mil_exec import resize_bilinear

    img = np.asarray(image_hwc, np.float32)
    if img.shape[:2] == (height, width):
        return img
    return resize_bilinear(img.transpose(2, 0, 1), height, width, "half_pixel").transpose(1, 2, 0)


# --------------------------------------------------------------------- comparison


def compare(
    runner: Runner,
    reference: Runner,
    frames: Sequence[Frame],
    min_psnr: float,
    name: str = "model",
    progress: bool = False,
) -> dict:
    """Run both on every frame; PSNR/max error at the runner's output size (see module doc).

    Returns {"psnr_db": {"mean", "min"}, "max_abs_err", "frames", "min_psnr", "passed",
    "output_size": [H, W]}; `passed` is min PSNR >= min_psnr with all outputs finite.
    """
    if not frames:
        raise ValueError("compare: no frames")
    values, max_err, size, finite = [], 0.0, None, True
    items: Iterable = frames
    if progress:
        from tqdm import tqdm

        items = tqdm(frames, desc=f"verify {name}", unit="frame")
    for frame in items:
        got = np.asarray(runner(frame), np.float32)
        ref = np.asarray(reference(frame), np.float32)
        if got.ndim != 3 or got.shape[2] != 3:
            raise LivestyleError(name, f"output is not an HWC RGB image: shape {got.shape}")
        ref = upscale(ref, *got.shape[:2])
        finite &= bool(np.isfinite(got).all())
        got, ref = np.clip(np.nan_to_num(got, nan=0.0), 0, 255), np.clip(ref, 0, 255)
        values.append(psnr(got, ref))
        max_err = max(max_err, float(np.max(np.abs(got - ref))))
        size = list(got.shape[:2])
    lo = min(values)
    return {
        "psnr_db": {"mean": _finite(float(np.mean(values))), "min": _finite(lo)},
        "max_abs_err": round(max_err, 4),
        "frames": len(values),
        "min_psnr": float(min_psnr),
        "output_size": size,
        "passed": bool(finite and lo >= min_psnr),
    }


def _finite(v: float) -> float:
    """JSON has no inf: identical outputs are reported as 999 dB."""
    return 999.0 if not np.isfinite(v) else round(v, 3)


# ---------------------------------------------------------------------- spec check


def check_spec(
    model,
    input_hw: tuple[int, int] | None = None,
    output_hw: tuple[int, int] | None = None,
    input_name: str = "image",
    output_name: str = "stylized",
    style: str | None = None,
) -> list[str]:
    """Static checks of a Core ML model (path, MLModel or spec); returns the problems.

    One image input and one image output, RGB, with the expected names and sizes
    (H, W), and the metadata a release needs: author, license, short description,
    user-defined 'style' (equal to `style` if given) and 'version'.
    """
    spec = _spec_of(model)
    from coremltools.proto import FeatureTypes_pb2

    problems: list[str] = []
    color_name = FeatureTypes_pb2.ImageFeatureType.ColorSpace.Name
    for role, feats, name, hw in (
        ("input", spec.description.input, input_name, input_hw),
        ("output", spec.description.output, output_name, output_hw),
    ):
        names = [f.name for f in feats]
        if len(feats) != 1:
            problems.append(f"expected one {role}, found {len(feats)}: {names}")
        if name not in names:
            problems.append(f"no {role} named {name!r} (have {names})")
            continue
        f = next(f for f in feats if f.name == name)
        kind = f.type.WhichOneof("Type")
        if kind != "imageType":
            problems.append(f"{role} {name!r} is a {kind}, not an image")
            continue
        it = f.type.imageType
        if color_name(it.colorSpace) != "RGB":
            problems.append(f"{role} {name!r} colour layout is {color_name(it.colorSpace)}, not RGB")
        if hw is not None and (it.height, it.width) != tuple(hw):
            problems.append(f"{role} {name!r} is {it.height}x{it.width} (HxW), expected {hw[0]}x{hw[1]}")
    meta = spec.description.metadata
    for key in REQUIRED_METADATA:
        if not getattr(meta, key):
            problems.append(f"metadata {key} is empty")
    for key in REQUIRED_USER_METADATA:
        if not meta.userDefined.get(key):
            problems.append(f"user-defined metadata {key!r} is missing")
    if style is not None and meta.userDefined.get("style") not in (None, "", style):
        problems.append(f"user-defined metadata 'style' is {meta.userDefined['style']!r}, expected {style!r}")
    return problems


def _spec_of(model):
    if hasattr(model, "description"):
        return model
    if hasattr(model, "get_spec"):
        return model.get_spec()
    return load_spec(model)


# -------------------------------------------------------------------------- driver


def verify_models(
    models: dict[str, str | os.PathLike],
    reference: Runner,
    frames: Sequence[Frame],
    cfg: VerifyConfig,
    input_hw: tuple[int, int] | None = None,
    display_hw: tuple[int, int] | None = None,
    style: str | None = None,
    progress: bool = True,
) -> dict:
    """Verify each model ({format: path}) on the first `cfg.frames` frames.

    Returns a DVC-metrics-ready dict: per format the `compare` figures (+ the Core ML
    spec problems), and top-level "passed". Frames are fitted to `input_hw`.
    """
    frames = list(frames)[: cfg.frames]
    if not frames:
        raise LivestyleError("verify", "no held-out frames to verify on")
    if input_hw is not None:
        frames = [fit_frame(f, *input_hw) for f in frames]
    results: dict = {}
    for fmt, path in sorted(models.items()):
        if fmt not in FORMATS:
            raise LivestyleError(path, f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
        runner = make_runner(path, fmt, cfg.emulate_fp16)
        res = compare(runner, reference, frames, cfg.min_psnr[fmt], name=fmt, progress=progress)
        if fmt in ("mlprogram", "neuralnetwork"):
            problems = check_spec(path, input_hw, display_hw, cfg.input_name, cfg.output_name, style)
            res["spec_problems"] = problems
            res["passed"] = res["passed"] and not problems
        results[fmt] = res
    results["passed"] = all(r["passed"] for k, r in results.items() if k in FORMATS)
    return results


def failures(results: dict) -> list[str]:
    """One line per failed format, for the stage's error message."""
    out = []
    for fmt, r in sorted(results.items()):
        if fmt not in FORMATS or r["passed"]:
            continue
        why = [f"min PSNR {r['psnr_db']['min']} dB < {r['min_psnr']} dB"] if r["psnr_db"]["min"] < r["min_psnr"] else []
        why += r.get("spec_problems", [])
        out.append(f"{fmt}: " + ("; ".join(why) or "non-finite output"))
    return out


def save_comparison(path: str | os.PathLike, frame: Frame, reference: np.ndarray, output: np.ndarray, title: str = "") -> None:
    """Input | reference | exported model | |difference|, one PNG (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from livestyle.images import save_figure

    output = np.clip(np.asarray(output, np.float32), 0, 255)
    reference = np.clip(upscale(reference, *output.shape[:2]), 0, 255)
    diff = np.abs(output - reference).max(axis=2)
    # scaled to its own maximum: an fp16 error of 0.1 levels is invisible on 0..255
    peak = float(diff.max())
    fig, axes = plt.subplots(1, 4, figsize=(12, 4.5))
    panels = [(frame, "input"), (reference, "Keras (upscaled)"), (output, "exported"),
              (diff / max(peak, 1e-6) * 255, f"|diff|, white = {peak:.3g} levels")]
    for ax, (img, label) in zip(axes, panels):
        ax.imshow(np.asarray(img).astype(np.uint8), cmap="magma" if np.ndim(img) == 2 else None, vmin=0, vmax=255)
        ax.set_title(label)
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
