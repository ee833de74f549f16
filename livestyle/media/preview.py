"""Preview videos of a style, rendered the way the live filter would render them.

Per clip: frames decimated to the filter's rate, centre-cropped and scaled to the model
size, stylized there, upscaled bilinearly to the display size (what the exported Core
ML model does inside itself), and encoded as H.264 mp4 (yuv420p: plays in browsers).
Beside it: original | stylized side by side, a small GIF, a poster PNG, and the
temporal flicker of the style against the clip's own (livestyle.measure.flicker).

Everything is streamed: decoder -> batch of `batch_size` frames -> writers' bounded
queues, so memory does not grow with the clip's length.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from livestyle.atomic import atomic_path, write_text
from livestyle.config import check_section
from livestyle.errors import LivestyleError
from livestyle.measure.flicker import FlickerMeter
from livestyle.media.synth_clip import SynthConfig, ensure_synth_clip
from livestyle.media.video import FfmpegWriter, VideoInfo, expected_frames, fit, output_fps, probe, read_frames

Stylizer = Callable[[np.ndarray], np.ndarray]

BUILTIN_NAME = "builtin"


@dataclass(frozen=True)
class PreviewConfig:
    """params.yaml `preview:` section. Sizes are [height, width] in the portrait
    orientation of the model; a landscape clip uses them transposed."""

    fps: float = 15.0  # the live filter's frame rate (the article's target on an A12)
    model_size: tuple = (853, 480)
    display_size: tuple = (1920, 1080)
    clips: tuple = ()  # user clips; empty -> the built-in synthesized clip
    clips_dir: str = "data/clips"  # user clips must lie here (preview depends on it)
    max_seconds: float = 10.0  # per clip
    batch_size: int = 1  # frames per stylize() call; 1 is what a camera filter does
    crf: int = 20  # x264 quality (lower = better, 18-23 is visually clean)
    preset: str = "medium"  # x264 speed/size trade-off
    gif_width: int = 320
    gif_seconds: float = 3.0
    gif_fps: float = 10.0
    poster_second: float = 1.0  # the poster is the frame at this time (or the last one)
    flicker: bool = True
    flow_preset: str = "medium"  # DIS optical flow: ultrafast | fast | medium
    flow_scale: float = 1.0  # < 1: optical flow on shrunken frames (faster, coarser); error at full size
    builtin: SynthConfig = field(default_factory=SynthConfig)
    builtin_cache: str = "data/videos/builtin"  # where the synthesized clip is cached

    @classmethod
    def from_params(cls, d: Mapping | None) -> "PreviewConfig":
        d = dict(d or {})
        check_section(cls, d, "preview")
        for key in ("model_size", "display_size"):
            if key in d:
                d[key] = _size(d[key], key)
        if "clips" in d:
            d["clips"] = tuple(str(c) for c in (d["clips"] or ()))
        if "builtin" in d:
            d["builtin"] = SynthConfig.from_params(d["builtin"])
        cfg = cls(**d)
        if cfg.fps <= 0 or cfg.gif_fps <= 0 or cfg.max_seconds <= 0 or cfg.batch_size < 1:
            raise LivestyleError("params.yaml", "preview: fps, gif_fps, max_seconds must be > 0 and batch_size >= 1")
        return cfg


def _size(value, key: str) -> tuple[int, int]:
    if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(int(v) > 0 for v in value)):
        raise LivestyleError("params.yaml", f"preview.{key} must be [height, width], got {value!r}")
    return (int(value[0]), int(value[1]))


@dataclass(frozen=True)
class Plan:
    """Sizes for one clip, all (height, width), oriented like the clip."""

    model: tuple[int, int]
    display: tuple[int, int]
    side_half: tuple[int, int]
    gif: tuple[int, int]
    transposed: bool


def plan_sizes(info: VideoInfo, cfg: PreviewConfig) -> Plan:
    """Orient the configured sizes like the clip: a landscape clip gets the model size
    transposed (853 wide x 480 high by default), as a phone turned sideways would."""
    mh, mw = cfg.model_size
    dh, dw = cfg.display_size
    # a square clip keeps the configured orientation
    transposed = info.width != info.height and (info.width > info.height) != (mw > mh)
    if transposed:
        mh, mw = mw, mh
    if (dw > dh) != (mw > mh) and dw != dh:
        dh, dw = dw, dh
    gw = min(cfg.gif_width, mw)
    gh = max(1, round(gw * mh / mw))
    # half the display per side keeps the pair at the display's pixel count
    return Plan((mh, mw), (dh, dw), (max(2, dh // 2), max(2, dw // 2)), (gh, gw), transposed)


def _to_uint8(out, n: int, shape: tuple[int, int], style: str) -> np.ndarray:
    out = np.asarray(out)
    if out.shape != (n, *shape, 3):
        raise LivestyleError(style, f"stylizer returned shape {out.shape}, expected {(n, *shape, 3)}")
    if out.dtype == np.uint8:
        return out
    out = out.astype(np.float32)
    if not np.isfinite(out).all():
        raise LivestyleError(style, "stylizer returned NaN or infinite values")
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _batched(items: Iterable, n: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def _save_png(path: Path, rgb: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {path}")


def clip_name(path: str | os.PathLike) -> str:
    """A file-name-safe clip name from the file's stem."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(path).stem) or "clip"


def output_paths(out_dir: str | os.PathLike, name: str) -> dict[str, Path]:
    out_dir = Path(out_dir)
    return {
        "video": out_dir / f"{name}.mp4",
        "side": out_dir / f"{name}_side.mp4",
        "gif": out_dir / f"{name}.gif",
        "poster": out_dir / f"{name}_poster.png",
        "frame": out_dir / f"{name}_frame.png",  # the original at the poster's time
        "flicker": out_dir / f"{name}_flicker.csv",
    }


def render_clip(
    stylize: Stylizer,
    style_name: str,
    clip: str | os.PathLike,
    out_dir: str | os.PathLike,
    cfg: PreviewConfig,
    name: str | None = None,
) -> dict:
    """Render one clip's outputs (see output_paths); returns its metrics."""
    info = probe(clip)  # fails on a bad clip before any output is started
    name = name or clip_name(clip)
    plan = plan_sizes(info, cfg)
    paths = output_paths(out_dir, name)
    fps = output_fps(info, cfg.fps)
    total = expected_frames(info, cfg.fps, cfg.max_seconds)
    mh, mw = plan.model
    dh, dw = plan.display
    sh, sw = plan.side_half
    gh, gw = plan.gif
    if plan.transposed:
        tqdm.write(f"{name}: landscape clip, model size transposed to {mw}x{mh} (WxH), display {dw}x{dh}", file=sys.stderr)

    meter = FlickerMeter(cfg.flow_preset, cfg.flow_scale) if cfg.flicker else None
    poster = None  # (original frame at clip size, stylized at model size)
    frames = 0
    t_stylize = t_flicker = 0.0
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        tmp = {k: stack.enter_context(atomic_path(p)) for k, p in paths.items() if k in ("video", "side", "gif")}
        video = stack.enter_context(FfmpegWriter(tmp["video"], dw, dh, fps, crf=cfg.crf, preset=cfg.preset))
        side = stack.enter_context(FfmpegWriter(tmp["side"], 2 * sw, sh, fps, crf=cfg.crf, preset=cfg.preset))
        gif = stack.enter_context(FfmpegWriter(tmp["gif"], gw, gh, fps, kind="gif", gif_fps=min(cfg.gif_fps, float(fps))))
        bar = stack.enter_context(tqdm(total=total, desc=f"{style_name} {name}", unit="frame", file=sys.stderr))
        stream = read_frames(clip, cfg.fps, cfg.max_seconds)
        for batch in _batched(stream, cfg.batch_size):
            model_in = np.stack([fit(f.rgb, mh, mw) for f in batch])
            ts = time.perf_counter()
            styled = _to_uint8(stylize(model_in), len(batch), plan.model, style_name)
            t_stylize += time.perf_counter() - ts
            for f, orig, sty in zip(batch, model_in, styled):
                # bilinear with half-pixel centres, as the exported model's upsample
                disp = cv2.resize(sty, (dw, dh), interpolation=cv2.INTER_LINEAR)
                video.write(disp)
                left = fit(f.rgb, sh, sw)
                right = cv2.resize(disp, (sw, sh), interpolation=cv2.INTER_AREA)
                side.write(np.concatenate([left, right], axis=1))
                if f.time < cfg.gif_seconds:
                    gif.write(cv2.resize(sty, (gw, gh), interpolation=cv2.INTER_AREA))
                if poster is None or f.time <= cfg.poster_second + 1e-9:
                    poster = (f.rgb, sty)
                if meter is not None:
                    tf = time.perf_counter()
                    meter.update(orig, sty)
                    t_flicker += time.perf_counter() - tf
                frames += 1
            bar.update(len(batch))
    elapsed = time.perf_counter() - t0
    orig_rgb, sty = poster
    _save_png(paths["poster"], cv2.resize(sty, (dw, dh), interpolation=cv2.INTER_LINEAR))
    _save_png(paths["frame"], fit(orig_rgb, dh, dw))
    metrics = {
        "frames": frames,
        "fps": float(fps),
        "seconds": frames / float(fps),
        "model_height": mh,
        "model_width": mw,
        "display_height": dh,
        "display_width": dw,
        "transposed": plan.transposed,
        "render_fps": frames / elapsed,
        "stylize_ms_per_frame": 1000 * t_stylize / frames,
        "flicker_ms_per_frame": 1000 * t_flicker / frames,
    }
    if meter is not None:
        metrics.update(meter.summary())
        _write_flicker_csv(paths["flicker"], meter)
    else:  # a figure from an earlier render would no longer match these videos
        paths["flicker"].unlink(missing_ok=True)
    return metrics


def _write_flicker_csv(path: Path, meter: FlickerMeter) -> None:
    """Per-pair warping error, for `dvc plots` (x: frame, y: stylized and original)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["frame", "stylized", "original"])
    for i, (s, o) in enumerate(zip(meter.stylized, meter.original), start=1):
        w.writerow([i, f"{s:.6g}", f"{o:.6g}"])
    write_text(path, buf.getvalue())


def resolve_clips(clips: Sequence[str | os.PathLike] | None, cfg: PreviewConfig) -> dict[str, Path]:
    """name -> path; the built-in clip when none are given. Names must be unique."""
    clips = list(clips) if clips else list(cfg.clips)
    if not clips:
        return {BUILTIN_NAME: ensure_synth_clip(cfg.builtin_cache, cfg.builtin)}
    out: dict[str, Path] = {}
    for c in clips:
        name = clip_name(c)
        if name in out:
            raise LivestyleError(c, f"another clip is also named {name!r}: rename one (outputs are named after clips)")
        out[name] = Path(c)
    return out


def render_style_previews(
    stylize: Stylizer,
    style_name: str,
    clips: Sequence[str | os.PathLike] | None,
    out_dir: str | os.PathLike,
    cfg: PreviewConfig = PreviewConfig(),
) -> dict:
    """Render every clip for one style into out_dir; return metrics for DVC's metrics JSON.

    `stylize(batch_uint8_NHWC_RGB) -> batch NHWC RGB` (uint8 or float 0..255) at the
    model size. Clips default to cfg.clips, else the built-in synthesized clip. Every
    clip is probed before anything is written, so a bad clip fails fast and leaves the
    previous outputs alone.
    """
    named = resolve_clips(clips, cfg)
    for path in named.values():
        probe(path)
    per_clip = {name: render_clip(stylize, style_name, path, out_dir, cfg, name=name) for name, path in named.items()}
    frames = sum(m["frames"] for m in per_clip.values())
    seconds = sum(m["frames"] / m["render_fps"] for m in per_clip.values())
    summary = {"style": style_name, "clips": per_clip, "frames": frames, "render_fps": frames / seconds}
    for key in ("warp_error_ratio", "contrast_normalised_ratio"):
        ratios = [m[key] for m in per_clip.values() if key in m]
        if ratios:
            summary[key] = float(np.mean(ratios))
    return summary


# ---------------------------------------------------------------- contact sheet


def _load_rgb(item) -> np.ndarray:
    if isinstance(item, np.ndarray):
        return item[..., :3].astype(np.uint8) if item.dtype != np.uint8 else item[..., :3]
    bgr = cv2.imread(str(item), cv2.IMREAD_COLOR)
    if bgr is None:
        raise LivestyleError(item, "cannot read image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def contact_sheet(
    posters: Mapping[str, str | os.PathLike | np.ndarray],
    original_frame: str | os.PathLike | np.ndarray,
    out_png: str | os.PathLike,
    thumb_height: int = 480,
    columns: int = 5,
) -> Path:
    """One PNG: the original frame then every style on it, each labelled (styles sorted,
    so the sheet does not depend on dict order)."""
    from livestyle.images import labelled_sheet

    panels = [("original", _load_rgb(original_frame))] + [(k, _load_rgb(posters[k])) for k in sorted(posters)]
    rows = [panels[i : i + columns] for i in range(0, len(panels), columns)]
    return labelled_sheet(rows, out_png, thumb_height=thumb_height, font_size=14)
