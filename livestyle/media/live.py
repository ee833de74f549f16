"""The live filter on a desktop: a camera (or a clip standing in for one) -> style -> window.

Keys in the window: n / p next / previous style, + / - strength by 0.1, t turns the
temporal blend against flicker (media.stabilise) on and off, s saves the frame as a
PNG, q or Esc quits (so does closing the window). The frame rate, style, strength and
blend are drawn on the picture, not on the recording.

Without a display (no DISPLAY, or opencv-python-headless, whose OpenCV has no GUI) the
loop runs headless: no window, the stylized frames go to the recording if one was
asked for, tqdm prints the frame rate, Ctrl-C (or the end of a clip) stops it and the
recording is still finished. The display is an argument, so tests drive the loop with
a clip and a fake display or none.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Protocol

import cv2
import numpy as np
from tqdm import tqdm

from livestyle.atomic import atomic_path
from livestyle.convert.runtime import Runner, say
from livestyle.errors import LivestyleError
from livestyle.media.stabilise import DEFAULT_STRENGTH, TemporalBlend, stylize_frame
from livestyle.media.video import FfmpegWriter, fit, probe, read_frames

STRENGTH_STEP = 0.1


class Display(Protocol):
    def show(self, rgb: np.ndarray) -> int:
        """Show a frame; the key pressed meanwhile (OpenCV code), or -1."""

    def close(self) -> None: ...


@dataclass
class Source:
    name: str
    frames: Iterator[np.ndarray]  # RGB uint8
    fps: float  # the rate a recording plays at


@dataclass
class LiveState:
    style: int = 0
    strength: float = 1.0
    stabilise: bool = False  # the temporal blend on (its strength is fixed at the start)
    quit: bool = False


class Styles:
    """Named styles, each opened on first use (a Keras style builds its network then)."""

    def __init__(self, names: list[str], open_style: Callable[[str], Runner]):
        self.names = list(names)
        self._open = open_style
        self._runners: dict[str, Runner] = {}

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> Runner:
        name = self.names[i % len(self.names)]
        if name not in self._runners:
            self._runners[name] = self._open(name)
        return self._runners[name]


# ---------------------------------------------------------------- sources and window


def open_source(spec: str) -> Source:
    """A camera index ("0") or a video file standing in for a camera."""
    if spec.isdigit():
        return _camera(int(spec))
    info = probe(spec)  # a one-line error for a missing or unreadable clip
    return Source(str(spec), (f.rgb for f in read_frames(spec)), float(info.fps))


def _camera(index: int) -> Source:
    level = cv2.utils.logging.getLogLevel()
    # OpenCV prints a backend warning per failed open: our one line says it better
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        cap = cv2.VideoCapture(index)
    finally:
        cv2.utils.logging.setLogLevel(level)
    if not cap.isOpened():
        cap.release()
        raise LivestyleError(f"camera {index}", "no camera at this index (not connected, or in use by another app)")
    cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # a slow filter shows the latest frame, not a backlog
    fps = cap.get(cv2.CAP_PROP_FPS)

    def frames() -> Iterator[np.ndarray]:
        try:
            while True:
                ok, bgr = cap.read()
                if not ok or bgr is None:
                    return
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            cap.release()

    return Source(f"camera {index}", frames(), fps if 1 <= fps <= 240 else 30.0)


class Window:
    """An OpenCV window (needs OpenCV with a GUI and a display)."""

    def __init__(self, title: str = "livestyle"):
        self.title = title
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)

    def show(self, rgb: np.ndarray) -> int:
        cv2.imshow(self.title, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        key = cv2.waitKey(1)
        if cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            return ord("q")  # closed with the mouse
        return key & 0xFF if key >= 0 else -1

    def close(self) -> None:
        cv2.destroyWindow(self.title)


def open_window(title: str = "livestyle") -> tuple[Window | None, str]:
    """A window, or None and why not (then the loop runs headless)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return None, "no DISPLAY"
    try:
        return Window(title), ""
    except cv2.error:
        return None, "this OpenCV has no GUI (opencv-python-headless)"


# ---------------------------------------------------------------- the loop


def on_key(key: int, state: LiveState, n_styles: int) -> str | None:
    """Apply a key to the state; returns "save" when the frame should be saved."""
    ch = chr(key).lower() if 0 <= key < 256 else ""
    if key == 27 or ch == "q":
        state.quit = True
    elif ch == "n":
        state.style = (state.style + 1) % n_styles
    elif ch == "p":
        state.style = (state.style - 1) % n_styles
    elif ch in ("+", "="):  # "=" is "+" without shift
        state.strength = round(min(1.0, state.strength + STRENGTH_STEP), 2)
    elif ch in ("-", "_"):
        state.strength = round(max(0.0, state.strength - STRENGTH_STEP), 2)
    elif ch == "t":
        state.stabilise = not state.stabilise
    elif ch == "s":
        return "save"
    return None


def oriented(size: tuple[int, int], frame: np.ndarray) -> tuple[int, int]:
    """(height, width) turned to the frame's orientation, as a phone turned sideways."""
    (h, w), (fh, fw) = size, frame.shape[:2]
    return (w, h) if fh != fw and h != w and (fw > fh) != (w > h) else (h, w)


def overlay(rgb: np.ndarray, text: str) -> np.ndarray:
    out = np.ascontiguousarray(rgb).copy()
    scale = max(0.4, out.shape[1] / 900)
    org, thick = (8, round(22 * scale) + 6), max(1, round(scale * 1.5))
    # white on a black outline reads on any painting
    cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return out


def save_frame(rgb: np.ndarray, folder: str | os.PathLike, style: str) -> Path:
    from livestyle.images import save_png

    folder, stem = Path(folder), style.split(".")[0]
    path = next(p for n in itertools.count(1) if not (p := folder / f"livestyle_{stem}_{n:03d}.png").exists())
    save_png(path, rgb)
    return path


def run_live(
    source: Source,
    styles: Styles,
    size: tuple[int, int] | None = None,
    default_size: tuple[int, int] = (853, 480),
    strength: float = 1.0,
    display: Display | None = None,
    record: str | os.PathLike | None = None,
    save_dir: str | os.PathLike = ".",
    max_frames: int = 0,
    stabilise: float = 0.0,
) -> dict:
    """Stylize the source's frames at `size` (height, width; default: `default_size` in
    the source's orientation, each frame centre-cropped to it), show them on `display`
    with the frame rate, record them to `record` (H.264) if given. `stabilise` > 0 starts
    with the temporal blend on at that strength (the t key toggles it; when off at the
    start, t turns it on at the default strength). Returns the figures."""
    frames = iter(source.frames)
    first = next(frames, None)
    if first is None:
        raise LivestyleError(source.name, "gave no frames")
    h, w = size or oriented(default_size, first)
    state = LiveState(strength=strength, stabilise=stabilise > 0)
    blend, blending = TemporalBlend(stabilise or DEFAULT_STRENGTH), None
    times: list[float] = []
    fps = 0.0
    with contextlib.ExitStack() as stack:
        writer = None
        if record is not None:
            writer = stack.enter_context(FfmpegWriter(stack.enter_context(atomic_path(record)), w, h, source.fps))
        bar = stack.enter_context(tqdm(total=max_frames or None, desc=f"live {source.name} {w}x{h}", unit="frame", file=sys.stderr))
        try:
            for rgb in itertools.chain([first], frames):
                runner = styles[state.style]
                if blending != (state.style, state.stabilise):
                    blend.reset()  # another style's strokes, or a blend just turned on: start afresh
                    blending = (state.style, state.stabilise)
                styled = stylize_frame(runner, fit(rgb, h, w), state.strength, blend if state.stabilise else None)
                times.append(time.perf_counter())
                if len(times) > 1:  # smoothed, so the figure can be read while it changes
                    now = 1 / max(times[-1] - times[-2], 1e-9)
                    fps = now if len(times) == 2 else 0.9 * fps + 0.1 * now
                if writer is not None:
                    writer.write(styled)
                bar.update()
                if display is not None:
                    steady = f"{blend.strength:.1f}" if state.stabilise else "off"
                    key = display.show(overlay(styled, f"{runner.name}  {fps:.1f} fps  strength {state.strength:.1f}  stabilise {steady}"))
                    if on_key(key, state, len(styles)) == "save":
                        say(f"saved {save_frame(styled, save_dir, runner.name)}")
                if state.quit or (max_frames and bar.n >= max_frames):
                    break
        except KeyboardInterrupt:
            pass  # how a headless run stops: the recording is still finished
        finally:
            if display is not None:
                display.close()
    # the first frame builds the network: the rate is measured from its end
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    say(f"live: {len(times)} frames at {w}x{h}, {rate:.1f} fps" + (f", recorded to {record}" if record is not None else ""))
    return {"frames": len(times), "fps": rate, "width": w, "height": h, "strength": state.strength,
            "style": styles.names[state.style % len(styles)], "stabilise": blend.strength if state.stabilise else 0.0}


def run_camera(spec: str, styles: Styles, record: str | os.PathLike | None = None, **options) -> dict:
    """`livestyle stylize --camera SPEC`: a window where there is a display, else headless."""
    source = open_source(spec)
    display, why = open_window()
    if display is None:
        kept = f"recording to {record}" if record is not None else "frames not kept (-o OUT.mp4 records them)"
        say(f"live: no window ({why}): running headless, {kept}; Ctrl-C stops")
    return run_live(source, styles, display=display, record=record, **options)
