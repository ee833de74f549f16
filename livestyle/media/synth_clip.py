"""A built-in clip for previews on a fresh machine: no download, no user clip needed.

The pictures are scikit-image's sample images (shipped inside the installed package).
A virtual camera pans along a strip of them and zooms in, while a textured disc (the
cat's face from `chelsea`) moves and turns on its own path: pan, zoom and an
independently moving object are the three motions that show flicker and smearing in
a style filter. Everything is a function of the seed, so the clip is the same on
every machine and can be cached by its parameters.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from livestyle.atomic import atomic_path
from livestyle.config import check_section
from livestyle.media.video import FfmpegWriter


@dataclass(frozen=True)
class SynthConfig:
    width: int = 360
    height: int = 640  # portrait, like the default model size
    fps: int = 30
    seconds: float = 4.0
    seed: int = 0
    crf: int = 16  # a near-lossless source: flicker in previews should come from the style, not from us

    @classmethod
    def from_params(cls, d: dict | None) -> "SynthConfig":
        d = dict(d or {})
        check_section(cls, d, "preview.builtin")
        return cls(**d)

    @property
    def frames(self) -> int:
        return int(round(self.seconds * self.fps))

    def key(self) -> str:
        """Short hash of every parameter: the cache file name changes when any does."""
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:10]


def _strip(height: int = 512) -> np.ndarray:
    """astronaut | coffee | chelsea side by side at one height: varied texture to pan over."""
    from skimage import data

    tiles = []
    for img in (data.astronaut(), data.coffee(), data.chelsea()):
        h, w = img.shape[:2]
        tiles.append(cv2.resize(img[..., :3], (round(w * height / h), height), interpolation=cv2.INTER_AREA))
    return np.ascontiguousarray(np.concatenate(tiles, axis=1))


def _sprite(radius: int) -> tuple[np.ndarray, np.ndarray]:
    """The cat's face cut as a disc, with a soft alpha edge (no aliasing shimmer)."""
    from skimage import data

    cat = data.chelsea()
    face = cat[0:300, 90:390]  # 300x300 around the face
    d = 2 * radius
    face = cv2.resize(face, (d, d), interpolation=cv2.INTER_AREA).astype(np.float32)
    yy, xx = np.mgrid[:d, :d] + 0.5
    dist = np.hypot(yy - radius, xx - radius)
    alpha = np.clip(radius - dist, 0.0, 1.0)[..., None].astype(np.float32)
    return face, alpha


def synth_frames(cfg: SynthConfig = SynthConfig()) -> Iterator[np.ndarray]:
    """Yield the clip's frames (RGB uint8, cfg.height x cfg.width), lazily, one at a time."""
    rng = np.random.default_rng(cfg.seed)
    strip = _strip()
    sh, sw = strip.shape[:2]
    out_w, out_h = cfg.width, cfg.height
    aspect = out_w / out_h
    # the camera window at zoom 1 is as tall as the strip
    win_h0 = sh
    win_w0 = min(sw, sh * aspect)
    zoom_end = 1.0 + rng.uniform(0.3, 0.6)
    y_jitter = rng.uniform(0.3, 0.7)  # where the zoom centres vertically
    # the moving object: a disc on a Lissajous path that also spins
    radius = max(2, round(0.16 * min(out_w, out_h)))
    face, alpha = _sprite(radius)
    fx, fy = rng.uniform(0.8, 1.4, size=2)
    phase = rng.uniform(0, 2 * math.pi)
    spin = rng.uniform(60, 120) * rng.choice([-1, 1])  # degrees per second
    n = cfg.frames
    for i in range(n):
        s = i / max(n - 1, 1)  # 0..1 over the clip
        ease = 0.5 - 0.5 * math.cos(math.pi * s)  # smooth start and stop, like a hand-held move
        zoom = 1.0 + (zoom_end - 1.0) * ease
        win_w, win_h = win_w0 / zoom, win_h0 / zoom
        # pan across most of the strip, left to right
        cx = win_w0 / 2 + ease * (sw - win_w0) * 0.6
        cy = win_h0 / 2 + (y_jitter - 0.5) * (win_h0 - win_h)
        scale = out_w / win_w
        # affine: strip -> output frame, centred on (cx, cy)
        m = np.array([[scale, 0, out_w / 2 - scale * cx], [0, scale, out_h / 2 - scale * cy]], np.float32)
        frame = cv2.warpAffine(strip, m, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        # the object moves in frame coordinates, independently of the camera
        t = i / cfg.fps
        ox = out_w / 2 + 0.3 * out_w * math.sin(2 * math.pi * fx * t / cfg.seconds * 1.5 + phase)
        oy = out_h / 2 + 0.3 * out_h * math.sin(2 * math.pi * fy * t / cfg.seconds)
        rot = cv2.getRotationMatrix2D((radius, radius), spin * t, 1.0)
        rot[:, 2] += (ox - radius, oy - radius)
        sprite = cv2.warpAffine(face, rot, (out_w, out_h), flags=cv2.INTER_LINEAR)
        a = cv2.warpAffine(alpha, rot, (out_w, out_h), flags=cv2.INTER_LINEAR)[..., None]
        out = frame.astype(np.float32) * (1 - a) + sprite * a
        yield np.clip(out + 0.5, 0, 255).astype(np.uint8)


def builtin_clip_name(cfg: SynthConfig) -> str:
    return f"builtin-{cfg.key()}.mp4"


def write_synth_clip(path: str | os.PathLike, cfg: SynthConfig = SynthConfig()) -> Path:
    """Encode the clip as H.264 mp4 at `path` (atomically)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with FfmpegWriter(tmp, cfg.width, cfg.height, cfg.fps, crf=cfg.crf, preset="medium") as w:
            for frame in synth_frames(cfg):
                w.write(frame)
    return path


def ensure_synth_clip(cache_dir: str | os.PathLike, cfg: SynthConfig = SynthConfig()) -> Path:
    """The cached clip for these parameters, written first if missing."""
    path = Path(cache_dir) / builtin_clip_name(cfg)
    if not path.exists():
        write_synth_clip(path, cfg)
    return path
