"""Image I/O: RGB uint8 arrays in, PNG out; every failure names the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from livestyle.atomic import atomic_path
from livestyle.errors import LivestyleError


def load_rgb(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB; grayscale and palette images are converted."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise LivestyleError(path, "no such image file") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise LivestyleError(path, f"not a readable image ({exc.__class__.__name__})") from None


def save_png(path: str | Path, rgb: np.ndarray) -> None:
    rgb = np.clip(np.asarray(rgb), 0, 255).astype(np.uint8)
    with atomic_path(path) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG", optimize=False)


def resize(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.BICUBIC))


def resize_short_side(rgb: np.ndarray, size: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = size / min(h, w)
    return resize(rgb, max(size, round(h * scale)), max(size, round(w * scale)))


def center_crop(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    top, left = (h - height) // 2, (w - width) // 2
    return rgb[top : top + height, left : left + width]


def grid(images: list[np.ndarray], cols: int, pad: int = 4) -> np.ndarray:
    """Tile same-size images into one picture with white gutters."""
    h, w = images[0].shape[:2]
    rows = -(-len(images) // cols)
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        out[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = im
    return out
