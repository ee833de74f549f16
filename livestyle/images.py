"""Image I/O: RGB uint8 arrays in, PNG out; every failure names the file."""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from livestyle.atomic import atomic_path
from livestyle.errors import LivestyleError


def load_rgb(path: str | Path, min_side: int = 1) -> np.ndarray:
    """(H, W, 3) uint8 RGB from any image file Pillow reads: the one image loader.

    Every failure is a LivestyleError naming the file: missing, unreadable, too large,
    or under `min_side` px on its short side.
    """
    path = Path(path)
    return _read_rgb(path, path, min_side)


def decode_rgb(data: bytes, name: str, min_side: int = 1) -> np.ndarray:
    """load_rgb of an image held in memory (e.g. a zip member); errors name `name`."""
    return _read_rgb(io.BytesIO(data), name, min_side)


def _read_rgb(source, name, min_side: int) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            # Pillow warns from 89 Mpx and refuses from 179 Mpx: up to the refusal an image
            # is accepted on purpose (museum scans are that large); beyond it, it is reported
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as im:
                im.load()
                rgb = to_rgb(im)
    except FileNotFoundError:
        raise LivestyleError(name, "no such image file") from None
    except Image.DecompressionBombError as exc:
        raise LivestyleError(name, f"image too large ({_megapixels(exc)}, Pillow's limit is "
                             f"{2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} Mpx); shrink it, 4000 px on the long side is plenty") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        reason = (str(exc).splitlines() or [""])[0]  # one line, whatever the decoder says
        raise LivestyleError(name, f"not a readable image ({exc.__class__.__name__}: {reason})") from None
    if min(rgb.shape[:2]) < min_side:
        raise LivestyleError(name, f"image is {rgb.shape[1]}x{rgb.shape[0]} px, under the {min_side} px minimum on its "
                             "short side; use a larger image")
    return rgb


def to_rgb(im: Image.Image) -> np.ndarray:
    """An opened image as 8-bit RGB, each mode converted by what its values mean."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit grey: scale 0..65535 to 0..255 (Pillow's own convert clips it to white)
        grey = np.round(np.clip(np.asarray(im, np.float64), 0, 65535) / 257.0).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if im.mode == "F":
        raise ValueError("32-bit float pixels have no agreed range; save it as an 8- or 16-bit image")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (im.mode == "P" and "transparency" in im.info):
        # transparent pixels hold arbitrary colours: show them on white, as a viewer does
        rgba = im.convert("RGBA")
        return np.asarray(Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB"))
    # CMYK, palette, 1-bit, L, YCbCr, and 16-bit RGB (which Pillow reads as 8-bit RGB)
    return np.asarray(im.convert("RGB"))


def _megapixels(exc: Exception) -> str:
    found = re.search(r"\((\d+) pixels\)", str(exc))
    return f"{int(found.group(1)) / 1e6:.0f} Mpx" if found else "over the limit"


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


def labelled_sheet(rows, out_png: str | Path, thumb_height: int = 240, font_size: int = 12) -> Path:
    """One PNG of captioned thumbnails: `rows` is a list of rows of (caption, RGB image)
    cells (a None cell is left blank). Thumbnails keep their aspect ratio at
    `thumb_height`; each column is as wide as its widest thumbnail. Captions may have
    several lines. Deterministic bytes (no timestamp in the PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def thumb(rgb):
        h, w = rgb.shape[:2]
        return resize(np.clip(np.asarray(rgb), 0, 255).astype(np.uint8)[..., :3], thumb_height, max(1, round(w * thumb_height / h)))

    cells = [[None if cell is None else (cell[0], thumb(cell[1])) for cell in row] for row in rows]
    cols = max(len(row) for row in cells)
    col_w = [max([row[c][1].shape[1] for row in cells if c < len(row) and row[c] is not None] or [thumb_height]) for c in range(cols)]
    lines = max(str(cell[0]).count("\n") + 1 for row in cells for cell in row if cell is not None)
    pad, dpi, caption_px = 12, 100, lines * round(font_size * 1.6) + 8
    width = pad + sum(w + pad for w in col_w)
    height = pad + len(cells) * (caption_px + thumb_height + pad)
    fig = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi, facecolor="white")
    for r, row in enumerate(cells):
        top = pad + r * (caption_px + thumb_height + pad)
        for c, cell in enumerate(row):
            if cell is None:
                continue
            caption, image = cell
            left = pad + sum(w + pad for w in col_w[:c])
            # figimage places pixels 1:1 (imshow in axes would resample the thumbnails)
            fig.figimage(image, xo=left + (col_w[c] - image.shape[1]) // 2, yo=height - top - caption_px - thumb_height, origin="upper")
            fig.text((left + col_w[c] / 2) / width, 1 - (top + caption_px / 2) / height, caption, ha="center", va="center",
                     fontsize=font_size, linespacing=1.3)
    return save_figure(fig, out_png, dpi)


def save_figure(fig, path: str | Path, dpi: int = 100) -> Path:
    """Write a matplotlib figure atomically, then close it: the one figure saver.

    The name's suffix picks the format (a .jpg name holding PNG bytes misleads viewers):
    .jpg/.jpeg is JPEG at quality 90, anything else PNG without the Software tag, whose
    matplotlib version would make a rerun's bytes differ.
    """
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix.lower() in (".jpg", ".jpeg"):
            fig.savefig(tmp, format="jpeg", dpi=dpi, pil_kwargs={"quality": 90})
        else:
            fig.savefig(tmp, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return path
