"""Training data: COCO (folder or zip) or the built-in set, into crops and a held-out split.

Held-out images are chosen per source image, not per crop, so no crop of a held-out
photo leaks into training. Grayscale, tiny and unreadable images are skipped and
counted: a COCO dump always has a few, and one bad file must not stop a night's run.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image
from tqdm import tqdm

from livestyle.atomic import atomic_path, write_json
from livestyle.config import _build, bounded
from livestyle.errors import LivestyleError
from livestyle.images import center_crop, decode_rgb, load_rgb, resize, resize_short_side

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


@dataclass(frozen=True)
class DataConfig:
    coco: str | None = ""  # a COCO train folder or zip; empty: the built-in set
    raw_dir: str = "data/raw"  # data.coco must lie here (prepare depends on it), a symlink will do
    builtin: tuple = ("astronaut", "chelsea", "coffee", "rocket")
    max_images: int = bounded(0, 0)  # 0: all
    image_size: int = bounded(256, 16)  # training crop side
    crops_per_image: int = bounded(4, 1)
    heldout_fraction: float = bounded(0.1, 0, 1)
    heldout_min: int = bounded(1, 0)
    heldout_size: int = bounded(512, 16)  # held-out images: short side
    min_side: int = bounded(64, 1)  # smaller photos are skipped as tiny; a smaller painting is refused
    seed: int = bounded(0, 0)

    @classmethod
    def from_params(cls, d):
        return _build(cls, d, "data")


def _builtin_image(name: str) -> np.ndarray:
    """Images shipped inside installed packages: usable on a machine with no download."""
    if name.startswith("sklearn:"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(name.split(":", 1)[1])
    import skimage.data

    loader = getattr(skimage.data, name, None)
    if loader is None:
        raise LivestyleError(f"skimage.data.{name}", "no such built-in image")
    image = loader()
    return image[0] if isinstance(image, tuple) else image  # stereo pairs: left view


def iter_sources(cfg: DataConfig) -> Iterator[tuple[str, object]]:
    """(name, loader) pairs; loading is deferred so a bad file is one skip, not a crash."""
    if not cfg.coco:
        for name in cfg.builtin:
            yield name, lambda name=name: _builtin_image(name)
        return
    root = Path(cfg.coco)
    if root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        for p in files:
            yield str(p.relative_to(root)), lambda p=p: load_rgb(p)
    elif root.is_file() and zipfile.is_zipfile(root):
        # stays open while the deferred loaders run; closed when they are collected
        zf = zipfile.ZipFile(root)
        names = sorted(n for n in zf.namelist() if Path(n).suffix.lower() in IMAGE_SUFFIXES)
        for n in names:
            yield n, lambda n=n: decode_rgb(zf.read(n), f"{root}:{n}")
    else:
        raise LivestyleError(root, "data.coco is neither a folder nor a zip file")


def classify(image: np.ndarray, min_side: int) -> str | None:
    """Why an image is skipped, or None to use it."""
    if image.ndim == 2 or image.shape[2] == 1:
        return "grayscale"
    rgb = image[..., :3].astype(np.int16)
    if np.abs(rgb[..., 0] - rgb[..., 1]).max() <= 2 and np.abs(rgb[..., 1] - rgb[..., 2]).max() <= 2:
        return "grayscale"  # stored as RGB, but colourless
    if min(image.shape[:2]) < min_side:
        return "tiny"
    return None


def _is_heldout(name: str, seed: int, fraction: float) -> bool:
    """Stable per file name: the same photo is held out from a folder or its zip."""
    digest = hashlib.sha256(f"{seed}:{Path(name).name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def random_crops(image: np.ndarray, size: int, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Crops at random scales (short side 1x..2x the crop) and positions, random flips."""
    crops = []
    for _ in range(count):
        scaled = resize_short_side(image, int(size * rng.uniform(1.0, 2.0)))
        top = rng.integers(0, scaled.shape[0] - size + 1)
        left = rng.integers(0, scaled.shape[1] - size + 1)
        crop = scaled[top : top + size, left : left + size]
        crops.append(crop[:, ::-1] if rng.random() < 0.5 else crop)
    return crops


def prepare(cfg: DataConfig, out_dir: str | Path) -> dict:
    """Write out_dir/train/*.png crops, out_dir/heldout/*.png and return the counts."""
    out_dir = Path(out_dir)
    rng = np.random.default_rng(cfg.seed)
    skipped: Counter = Counter()
    used, heldout = [], []
    sources = list(iter_sources(cfg))
    if cfg.max_images:
        sources = sources[: cfg.max_images]
    for name, load in tqdm(sources, desc="prepare", unit="img"):
        try:
            image = load()
        except Exception:  # truncated JPEG, not an image, bad zip member
            skipped["unreadable"] += 1
            continue
        reason = classify(image, cfg.min_side)
        if reason:
            skipped[reason] += 1
            continue
        (heldout if _is_heldout(name, cfg.seed, cfg.heldout_fraction) else used).append((name, image[..., :3]))
    # a split must never leave either side empty
    while len(heldout) < cfg.heldout_min and len(used) > 1:
        heldout.append(used.pop())
    if not used:
        raise LivestyleError(cfg.coco or "data.builtin", f"no usable training image (skipped: {dict(skipped)})")
    with atomic_path(out_dir, suffix="") as tmp:
        (tmp / "train").mkdir(parents=True)
        (tmp / "heldout").mkdir()
        n = 0
        for name, image in tqdm(used, desc="crops", unit="img"):
            for crop in random_crops(image, cfg.image_size, cfg.crops_per_image, rng):
                Image.fromarray(np.ascontiguousarray(crop)).save(tmp / "train" / f"{n:06d}.png")
                n += 1
        for i, (name, image) in enumerate(heldout):
            small = resize_short_side(image, cfg.heldout_size)
            Image.fromarray(small).save(tmp / "heldout" / f"{i:04d}.png")
        stats = {
            "sources": len(sources),
            "train_images": len(used),
            "train_crops": n,
            "heldout_images": len(heldout),
            "skipped": {k: skipped.get(k, 0) for k in ("grayscale", "tiny", "unreadable")},
        }
        write_json(tmp / "prepare.json", stats)
    return stats


def load_images(folder: str | Path) -> list[Path]:
    files = sorted(p for p in Path(folder).glob("*.png"))
    if not files:
        raise LivestyleError(folder, "no PNG images (run the prepare stage)")
    return files


def heldout_frames(folder: str | Path, height: int, width: int, count: int) -> list[np.ndarray]:
    """Held-out images as frames of the model size (cover-resized and centre-cropped)."""
    frames = []
    for p in load_images(folder)[:count]:
        image = load_rgb(p)
        scale = max(height / image.shape[0], width / image.shape[1])
        scaled = resize(image, max(height, round(image.shape[0] * scale)), max(width, round(image.shape[1] * scale)))
        frames.append(center_crop(scaled, height, width))
    return frames
