"""Reading and writing clips, one frame at a time.

Reading goes through OpenCV (in-process, fast) and falls back to imageio-ffmpeg's
ffmpeg for containers OpenCV's wheel cannot open. Writing always goes through
imageio-ffmpeg's ffmpeg binary: OpenCV's pip wheels cannot encode H.264, and H.264
in yuv420p is what every browser plays.

Frames are RGB uint8 HxWx3 everywhere in livestyle; nothing here ever holds a
whole clip in memory (a generator in, a bounded queue out).
"""

from __future__ import annotations

import math
import os
import queue
import re
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from livestyle.errors import LivestyleError


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def as_fraction(fps: float | Fraction) -> Fraction:
    """29.97002997 -> 30000/1001, so frame slots and the encoder's rate stay exact."""
    return Fraction(fps).limit_denominator(1001)


@dataclass(frozen=True)
class VideoInfo:
    path: str
    width: int
    height: int
    fps: Fraction
    frames: int  # container's count: an estimate for variable-rate clips
    backend: str = "opencv"  # opencv | ffmpeg: the reader that decoded the first frame

    @property
    def landscape(self) -> bool:
        return self.width > self.height

    @property
    def seconds(self) -> float:
        return self.frames / float(self.fps) if self.fps else 0.0


@dataclass(frozen=True)
class Frame:
    index: int  # index in the decimated stream
    time: float  # seconds from the start of the clip
    rgb: np.ndarray  # HxWx3 uint8 at the clip's own size


# ---------------------------------------------------------------- reading


def _check_file(path: Path) -> None:
    if not path.exists():
        raise LivestyleError(path, "no such video file")
    if path.is_dir():
        raise LivestyleError(path, "is a directory, expected a video file")
    if path.stat().st_size == 0:
        raise LivestyleError(path, "empty file (0 bytes), not a video")


def _open_cv(path: Path):
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        return None
    return cap


def _ffmpeg_meta(path: Path) -> dict | None:
    """Size, rate and duration from ffmpeg's description of the first video stream.

    Parsed from `ffmpeg -i` ourselves (imageio-ffmpeg's parser is private), which also
    lets us account for a phone clip's rotation.
    """
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)], capture_output=True, text=True, errors="replace"
    )
    lines = proc.stderr.splitlines()
    video = next((ln for ln in lines if re.search(r"Stream #.*Video:", ln)), None)
    if video is None:
        return None
    size = re.search(r"[ ,](\d{1,5})x(\d{1,5})[ ,\[]", video)
    if size is None:
        return None
    w, h = int(size.group(1)), int(size.group(2))
    rate = re.search(r"([\d.]+) (?:fps|tbr)", video)
    rotation = re.search(r"rotation of (-?[\d.]+)", proc.stderr)
    # ffmpeg auto-rotates phone clips on decode: a quarter turn swaps the sides
    if rotation and round(abs(float(rotation.group(1)))) % 180 == 90:
        w, h = h, w
    duration = re.search(r"Duration: (\d+):(\d+):([\d.]+)", proc.stderr)
    seconds = int(duration.group(1)) * 3600 + int(duration.group(2)) * 60 + float(duration.group(3)) if duration else 0.0
    return {"size": (w, h), "fps": float(rate.group(1)) if rate else 0.0, "duration": seconds}


def probe(path: str | os.PathLike) -> VideoInfo:
    """Size, rate and frame count of a clip; LivestyleError naming the file if it is unusable.

    A clip counts as usable only when its first frame decodes: a header alone (or garbage
    with a plausible header) must fail here, before any output is started.
    """
    path = Path(path)
    _check_file(path)
    cap = _open_cv(path)
    if cap is not None:
        try:
            fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            ok, frame = cap.read()
        finally:
            cap.release()
        if ok and frame is not None:
            h, w = frame.shape[:2]
            fps = as_fraction(fps) if fps > 0 else Fraction(30)
            return VideoInfo(str(path), w, h, fps, max(count, 1))
    meta = _ffmpeg_meta(path)
    if meta is None:
        raise LivestyleError(path, "cannot be decoded as a video (unknown container/codec or corrupt bytes)")
    w, h = meta["size"]
    if next(_read_ffmpeg(path, w, h), None) is None:
        raise LivestyleError(path, "has no decodable video frames")
    fps = as_fraction(meta.get("fps") or 30)
    count = int(round((meta.get("duration") or 0) * float(fps)))
    return VideoInfo(str(path), int(w), int(h), fps, max(count, 1), backend="ffmpeg")


def _read_cv(path: Path) -> Iterator[tuple[float | None, np.ndarray]]:
    cap = _open_cv(path)
    if cap is None:
        return
    try:
        while True:
            ok, bgr = cap.read()
            if not ok or bgr is None:
                return
            msec = cap.get(cv2.CAP_PROP_POS_MSEC)
            yield (msec / 1000.0 if msec >= 0 else None), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()


def _read_ffmpeg(path: Path, width: int, height: int) -> Iterator[tuple[float | None, np.ndarray]]:
    cmd = [
        ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(path), "-map", "0:v:0",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    size = width * height * 3
    try:
        while True:
            buf = proc.stdout.read(size)
            if len(buf) < size:
                return
            yield None, np.frombuffer(buf, np.uint8).reshape(height, width, 3)
    finally:
        proc.kill()
        proc.stdout.close()
        proc.wait()


def read_frames(
    path: str | os.PathLike,
    fps: float | None = None,
    max_seconds: float | None = None,
) -> Iterator[Frame]:
    """Stream a clip's frames (RGB uint8), decimated to `fps` as a live filter would see them.

    A live filter running at `fps` takes the first camera frame of each 1/fps slot and
    drops the rest; frames are never duplicated, so a clip slower than `fps` keeps its
    own rate. Slots come from the decoder's timestamps, which also handles the variable
    frame rates phones record. Lazy: nothing is opened until the first frame is asked for.
    """
    path = Path(path)
    info = probe(path)
    out_fps = output_fps(info, fps)
    source = _read_cv(path) if info.backend == "opencv" else _read_ffmpeg(path, info.width, info.height)
    last_slot = -1
    index = 0
    start = None
    for i, (t, rgb) in enumerate(source):
        if t is None or (i > 0 and t <= 0):
            t = i / float(info.fps)
        # some containers start at a non-zero timestamp: count from the first frame
        start = t if start is None else start
        t -= start
        if max_seconds is not None and t >= max_seconds - 1e-9:
            break
        # tolerance: container timestamps are rounded (e.g. to 1/90000 s)
        slot = math.floor(t * out_fps + 1e-3)
        if slot <= last_slot:
            continue
        last_slot = slot
        yield Frame(index, t, rgb)
        index += 1
    if index == 0:
        raise LivestyleError(path, "has no video frames")


def output_fps(info: VideoInfo, fps: float | None) -> Fraction:
    """The rate the rendered stream plays at: the target rate, or the clip's if slower."""
    if fps is None:
        return info.fps
    return min(as_fraction(fps), info.fps)


def expected_frames(info: VideoInfo, fps: float | None, max_seconds: float | None = None) -> int:
    """How many frames read_frames yields for a constant-rate clip (progress-bar total)."""
    out = output_fps(info, fps)
    n = info.frames
    if max_seconds is not None:
        n = min(n, math.ceil(max_seconds * info.fps - 1e-9))
    if n <= 0:
        return 0
    return math.floor((n - 1) / info.fps * out + 1e-3) + 1


# ---------------------------------------------------------------- geometry


def fit(rgb: np.ndarray, height: int, width: int, interpolation: int | None = None) -> np.ndarray:
    """Centre-crop to the target aspect, then resize: a camera preview fills the screen
    ("aspect fill") rather than stretching or letterboxing the picture."""
    h, w = rgb.shape[:2]
    target = width / height
    if w / h > target:  # too wide: crop the sides
        cw = max(1, round(h * target))
        x0 = (w - cw) // 2
        rgb = rgb[:, x0 : x0 + cw]
    elif w / h < target:  # too tall: crop top and bottom
        ch = max(1, round(w / target))
        y0 = (h - ch) // 2
        rgb = rgb[y0 : y0 + ch]
    h, w = rgb.shape[:2]
    if (h, w) == (height, width):
        return np.ascontiguousarray(rgb)
    if interpolation is None:
        # area averaging when shrinking avoids aliasing; bilinear when growing
        interpolation = cv2.INTER_AREA if h * w > height * width else cv2.INTER_LINEAR
    return cv2.resize(rgb, (width, height), interpolation=interpolation)


# ---------------------------------------------------------------- writing


class FfmpegWriter:
    """Pipe RGB frames into imageio-ffmpeg's ffmpeg: H.264 mp4 (yuv420p) or a palette GIF.

    A background thread feeds ffmpeg's stdin from a small bounded queue, so Python keeps
    decoding and stylizing while ffmpeg encodes (the pipe write releases the GIL), and at
    most `queue_size` frames wait in memory. Output flags are bit-exact (no encoder
    version or timestamps) so the same frames give the same bytes.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        width: int,
        height: int,
        fps: float | Fraction,
        *,
        kind: str = "h264",
        crf: int = 20,
        preset: str = "medium",
        gif_fps: float | None = None,
        queue_size: int = 4,
    ):
        if kind not in ("h264", "gif"):
            raise ValueError(f"unknown writer kind {kind!r}")
        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        # yuv420p needs even sides: pad by one edge pixel rather than fail
        even = kind == "h264"
        self._pw = self.width + (self.width % 2 if even else 0)
        self._ph = self.height + (self.height % 2 if even else 0)
        fps = as_fraction(fps)
        cmd = [
            ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{self._pw}x{self._ph}",
            "-r", f"{fps.numerator}/{fps.denominator}", "-i", "-", "-an",
            "-map_metadata", "-1", "-fflags", "+bitexact",
        ]  # fmt: skip
        if kind == "h264":
            cmd += [
                "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p",
                "-flags:v", "+bitexact", "-movflags", "+faststart", "-f", "mp4",
            ]  # fmt: skip
        else:
            # one palette for the whole GIF, computed from its frames: far fewer bands than
            # ffmpeg's default web palette; 128 colours and ordered dither cut ~20% of the
            # bytes against 256 and scale 4 (error diffusion was the largest)
            rate = f"fps={as_fraction(gif_fps).numerator}/{as_fraction(gif_fps).denominator}," if gif_fps else ""
            cmd += [
                "-vf", f"{rate}split[a][b];[a]palettegen=stats_mode=full:max_colors=128[p];[b][p]paletteuse=dither=bayer:bayer_scale=5",
                "-loop", "0", "-f", "gif",
            ]  # fmt: skip
        cmd.append(str(self.path))
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=self._stderr)
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()
        self.frames = 0

    def _pump(self) -> None:
        while True:
            frame = self._queue.get()
            if frame is None:
                return
            if self._error is not None:
                continue  # drain so the producer never blocks on a dead writer
            try:
                self._proc.stdin.write(frame.tobytes())
            except BaseException as exc:  # broken pipe: ffmpeg died; reported in close()
                self._error = exc

    def write(self, rgb: np.ndarray) -> None:
        if rgb.shape != (self.height, self.width, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"{self.path.name}: frame {rgb.shape} {rgb.dtype}, expected ({self.height}, {self.width}, 3) uint8")
        if (self._ph, self._pw) != (self.height, self.width):
            rgb = np.pad(rgb, ((0, self._ph - self.height), (0, self._pw - self.width), (0, 0)), mode="edge")
        self._queue.put(np.ascontiguousarray(rgb))
        self.frames += 1

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        try:
            self._proc.stdin.close()
        except BrokenPipeError:
            pass
        rc = self._proc.wait()
        self._stderr.seek(0)
        err = self._stderr.read().decode("utf-8", "replace").strip()
        self._stderr.close()
        if rc != 0 or self._error is not None:
            tail = err.splitlines()[-3:] if err else [repr(self._error)]
            raise RuntimeError(f"ffmpeg failed writing {self.path} (exit {rc}): {' | '.join(tail)}")
        if self.frames == 0:
            raise RuntimeError(f"{self.path}: no frames were written")

    def abort(self) -> None:
        self._proc.kill()
        self._queue.put(None)
        self._thread.join()
        self._proc.wait()
        self._stderr.close()

    def __enter__(self) -> "FfmpegWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def probe_codec(path: str | os.PathLike) -> str:
    """ffmpeg's one-line description of the first video stream, e.g. 'h264 (High) ... yuv420p'."""
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    for line in proc.stderr.splitlines():
        if "Video:" in line:
            return line.split("Video:", 1)[1].strip()
    raise LivestyleError(path, "no video stream")
