"""`livestyle stylize` on files: a user's photo, a folder of photos, or a video.

Photos come as people have them: phone JPEGs with an EXIF rotation, 16-bit PNGs,
CMYK and palette files, grayscale, alpha. Each is read as 8-bit sRGB (16-bit scaled,
not clipped; CMYK and wide-gamut through their ICC profile when they carry one), its
long side capped at `max_side`, stylized, and written atomically; alpha is kept where
the output format has it. A video keeps its rate and its audio (muxed back by
imageio-ffmpeg's ffmpeg), and comes out as H.264.
"""

from __future__ import annotations

import io
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

from livestyle.atomic import atomic_path
from livestyle.convert.runtime import Runner, apply, resize, say
from livestyle.errors import LivestyleError
from livestyle.images import to_rgb
from livestyle.media.stabilise import TemporalBlend, stylize_frame
from livestyle.media.video import FfmpegWriter, expected_frames, ffmpeg_exe, probe, read_frames

VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv")
_ALPHA_FORMATS = ("PNG", "WEBP", "TIFF")
# what Pillow raises on a file that is not an image it can decode
_BAD_IMAGE = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)


@dataclass(frozen=True)
class Photo:
    rgb: np.ndarray  # (H, W, 3) uint8 sRGB, capped
    alpha: np.ndarray | None  # (H, W) uint8, or None
    original: tuple[int, int]  # (height, width) as stored, after EXIF rotation


def image_suffixes(save: bool = False) -> set[str]:
    kinds = Image.SAVE if save else Image.OPEN
    return {ext for ext, fmt in Image.registered_extensions().items() if fmt in kinds}


def capped_size(height: int, width: int, max_side: int | None) -> tuple[int, int]:
    if not max_side or max(height, width) <= max_side:
        return height, width
    s = max_side / max(height, width)
    return max(1, round(height * s)), max(1, round(width * s))


def load_photo(path: str | Path, max_side: int | None = None) -> Photo:
    path = Path(path)
    try:
        with warnings.catch_warnings():
            # over 89 Mpx Pillow warns: such photos are welcome here, drafted and capped
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                stored = im.size
                if max_side:
                    # JPEG decodes at 1/2..1/8 scale directly: a 100 MP photo never fills memory
                    im.draft(None, (max_side, max_side))
                im = ImageOps.exif_transpose(im)  # phone photos store landscape pixels + a rotation tag
                alpha = _alpha(im)
                # with alpha, the colours as stored: the alpha goes back on top, so to_rgb's
                # composite on white would leave a white fringe at soft edges
                rgb = to_rgb(_srgb(im)) if alpha is None else np.asarray(im.convert("RGBA"))[..., :3]
    except FileNotFoundError:
        raise LivestyleError(path, "no such image file") from None
    except Image.DecompressionBombError:
        raise LivestyleError(path, f"over Pillow's limit of {Image.MAX_IMAGE_PIXELS * 2 / 1e6:.0f} Mpx (a decompression bomb?)") from None
    except _BAD_IMAGE as exc:
        raise LivestyleError(path, f"not a readable image ({exc.__class__.__name__})") from None
    sw, sh = stored
    if sw != sh and (rgb.shape[0] > rgb.shape[1]) != (sh > sw):  # turned by its EXIF tag
        sw, sh = sh, sw
    h, w = capped_size(*rgb.shape[:2], max_side)
    return Photo(resize(rgb, h, w), None if alpha is None else resize(alpha, h, w), (sh, sw))


def _alpha(im: Image.Image) -> np.ndarray | None:
    """The alpha channel, palette and colour-key transparency included; None if opaque by format."""
    if im.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in im.info:
        return np.asarray(im.convert("RGBA").getchannel("A"))
    return None


def _srgb(im: Image.Image) -> Image.Image:
    """CMYK and wide-gamut photos (an iPhone's Display P3) through their ICC profile to sRGB
    (images.to_rgb converts the modes, this the colours)."""
    icc = im.info.get("icc_profile")
    if not icc or im.mode not in ("RGB", "CMYK"):
        return im
    from PIL import ImageCms

    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if profile.profile.xcolor_space.strip() != im.mode:  # e.g. a grey profile kept on an RGB copy
            return im
        return ImageCms.profileToProfile(im, profile, ImageCms.createProfile("sRGB"), outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError):
        return im  # a broken profile: Pillow's plain conversion beats failing


def image_format(path: Path) -> str:
    """Pillow's format for an output path, from its suffix."""
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt not in Image.SAVE:
        raise LivestyleError(path, "unknown image format for the output: use .png, .jpg, .webp or .tif")
    return fmt


def save_image(path: str | Path, rgb: np.ndarray, alpha: np.ndarray | None = None) -> bool:
    """Written atomically in the format of the suffix; True if the alpha channel was kept."""
    path = Path(path)
    fmt = image_format(path)
    if alpha is not None and fmt not in _ALPHA_FORMATS:
        say(f"{path}: {fmt} has no alpha channel, transparency dropped (write .png to keep it)")
        alpha = None
    im = Image.fromarray(np.dstack([rgb, alpha]) if alpha is not None else rgb)
    with atomic_path(path) as tmp:
        im.save(tmp, format=fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))
    return alpha is not None


def source_kind(path: Path) -> str:
    """folder | image | video, from the content (not the suffix); else a one-line error."""
    if not path.exists():
        raise LivestyleError(path, "no such file or folder")
    if path.is_dir():
        return "folder"
    try:
        with Image.open(path) as im:
            if not getattr(im, "is_animated", False):
                return "image"
    except Image.DecompressionBombError:
        return "image"  # load_photo says what is wrong with it
    except _BAD_IMAGE as exc:
        if path.suffix.lower() in image_suffixes():  # a broken photo, not a video in disguise
            raise LivestyleError(path, f"not a readable image ({exc.__class__.__name__})") from None
    try:
        probe(path)
    except LivestyleError:
        raise LivestyleError(path, "neither an image nor a video that livestyle can read") from None
    return "video"


def stylize_image(runner: Runner, src: Path, out: Path, strength: float = 1.0, max_side: int | None = None) -> dict:
    image_format(out)  # before the work, not after it
    photo = load_photo(src, max_side)
    h, w = photo.rgb.shape[:2]
    if (h, w) != photo.original:
        say(f"{src}: {photo.original[1]}x{photo.original[0]} scaled to {w}x{h} (--max-side {max_side})")
    kept = save_image(out, apply(runner, photo.rgb, strength), photo.alpha)
    return {"width": w, "height": h, "alpha": kept}


def image_files(folder: Path, exclude: Path | None = None) -> list[Path]:
    """Images under `folder` (any depth, hidden files left out), not those under `exclude`."""
    suffixes = image_suffixes()
    skip = exclude.resolve() if exclude is not None else None
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in suffixes and not any(s.startswith(".") for s in p.relative_to(folder).parts)
        and not (skip is not None and p.resolve().is_relative_to(skip))
    )  # fmt: skip


def output_name(src: Path) -> str:
    """The same name, unless Pillow can read that format but not write it (then .png)."""
    return src.name if src.suffix.lower() in image_suffixes(save=True) else src.stem + ".png"


def stylize_folder(runner: Runner, src: Path, out: Path, strength: float = 1.0, max_side: int | None = None) -> dict:
    """Every image of `src` into `out` under the same relative name. An unreadable image
    is reported and skipped, the others are done; the run then fails naming the count."""
    files = image_files(src, exclude=out)
    if not files:
        raise LivestyleError(src, f"no images in this folder (looked for {', '.join(sorted(image_suffixes())[:8])}, ...)")
    failed = []
    for f in tqdm(files, desc=f"{runner.name} {src.name}", unit="image", file=sys.stderr):
        try:
            stylize_image(runner, f, out / f.relative_to(src).parent / output_name(f), strength, max_side)
        except LivestyleError as exc:
            say(f"livestyle: {exc} (skipped)")
            failed.append(f)
    if failed:
        raise LivestyleError(src, f"{len(failed)} of {len(files)} images could not be stylized (named above); the other {len(files) - len(failed)} are in {out}")
    return {"images": len(files)}


def stylize_video(runner: Runner, src: Path, out: Path, strength: float = 1.0, max_side: int | None = None,
                  stabilise: float = 0.0) -> dict:
    """Every frame at the clip's size (capped at max_side) and rate, H.264, source audio kept;
    `stabilise` > 0 blends each frame with the last (media.stabilise) against flicker."""
    if out.suffix.lower() not in VIDEO_SUFFIXES:
        raise LivestyleError(out, f"a video's output must be one of {', '.join(VIDEO_SUFFIXES)} (H.264)")
    info = probe(src)
    h, w = capped_size(info.height, info.width, max_side)
    if (h, w) != (info.height, info.width):
        say(f"{src}: {info.width}x{info.height} frames scaled to {w}x{h} (--max-side {max_side})")
    blend = TemporalBlend(stabilise) if stabilise > 0 else None
    with atomic_path(out) as tmp:
        silent = tmp.parent / "video.mp4"
        # tqdm's rate is the stylizing frame rate: frame/s
        with FfmpegWriter(silent, w, h, info.fps) as writer, tqdm(
            total=expected_frames(info, None), desc=f"{runner.name} {src.name}", unit="frame", file=sys.stderr
        ) as bar:
            for frame in read_frames(src):
                writer.write(stylize_frame(runner, resize(frame.rgb, h, w), strength, blend))
                bar.update()
        rate = bar.format_dict["n"] / max(bar.format_dict["elapsed"], 1e-9)
        mux_audio(silent, src, tmp)
    return {"frames": writer.frames, "width": w, "height": h, "fps": float(info.fps), "render_fps": rate, "audio": has_audio(out),
            "stabilise": stabilise}


def has_audio(path: Path) -> bool:
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)], capture_output=True, text=True, errors="replace")
    return any("Audio:" in line for line in proc.stderr.splitlines() if "Stream #" in line)


def mux_audio(video: Path, source: Path, out: Path) -> None:
    """The stylized video stream with the source's audio (if any) into `out`'s container:
    the audio is copied as it is, or re-encoded to AAC where the container refuses it."""
    mp4 = ["-movflags", "+faststart"] if out.suffix.lower() in (".mp4", ".mov", ".m4v") else []
    err = ""
    for audio in ("copy", "aac"):
        cmd = [
            ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i", str(video), "-i", str(source),
            "-map", "0:v:0", "-map", "1:a?", "-c:v", "copy", "-c:a", audio, "-shortest", *mp4, str(out),
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
        if proc.returncode == 0:
            return
        err = (proc.stderr.strip().splitlines() or ["?"])[-1]
    raise LivestyleError(source, f"could not mux its audio into {out.name}: {err}")


def stylize_path(runner: Runner, src: str | Path, out: str | Path, strength: float = 1.0, max_side: int | None = None,
                 stabilise: float = 0.0) -> str:
    """A photo, a folder of photos or a video into `out` (a file, or a folder for a folder;
    an existing folder for a file takes the file's name); returns a line for the user."""
    src, out = Path(src), Path(out)
    kind = source_kind(src)
    if stabilise > 0 and kind != "video":
        what = "a photo" if kind == "image" else "a folder of photos"
        raise LivestyleError(src, f"--stabilise steadies each video frame against the one before: {what} has no frames to steady")
    if kind != "folder" and out.is_dir():
        out = out / (output_name(src) if kind == "image" else src.stem + ".mp4")
    if out.exists() and out.resolve() == src.resolve():
        raise LivestyleError(out, "is the source itself: choose another output")
    if kind == "folder":
        if out.exists() and not out.is_dir():
            raise LivestyleError(out, "is a file: a folder's output must be a folder")
        n = stylize_folder(runner, src, out, strength, max_side)["images"]
        return f"wrote {n} image(s) to {out}"
    if kind == "image":
        r = stylize_image(runner, src, out, strength, max_side)
        return f"wrote {out} ({r['width']}x{r['height']}{', alpha kept' if r['alpha'] else ''})"
    r = stylize_video(runner, src, out, strength, max_side, stabilise)
    return (f"wrote {out}: {r['frames']} frames {r['width']}x{r['height']} at {r['fps']:.4g} fps, H.264, "
            f"{'audio kept' if r['audio'] else 'no audio'}{f', stabilised {stabilise:g}' if stabilise else ''} "
            f"(stylized at {r['render_fps']:.2f} frames/s)")
