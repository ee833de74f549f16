"""Clip reading/writing and the built-in synthesized clip (tiny sizes, fast)."""

from __future__ import annotations

import inspect
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from livestyle.errors import LivestyleError
from livestyle.media import video
from livestyle.media.synth_clip import SynthConfig, ensure_synth_clip, synth_frames, write_synth_clip
from livestyle.media.video import FfmpegWriter, expected_frames, ffmpeg_exe, fit, probe, probe_codec, read_frames

FOX = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "fox.mp4"
TINY = SynthConfig(width=36, height=64, fps=30, seconds=1.0, seed=3)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    return write_synth_clip(tmp_path_factory.mktemp("clip") / "tiny.mp4", TINY)


def test_synth_frames_are_deterministic_and_move():
    a = list(synth_frames(TINY))
    b = list(synth_frames(TINY))
    assert len(a) == TINY.frames == 30
    assert a[0].shape == (64, 36, 3) and a[0].dtype == np.uint8
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    # every step moves (pan, zoom, object), and the ends of the clip show different views
    steps = [np.abs(x.astype(int) - y.astype(int)).mean() for x, y in zip(a, a[1:])]
    assert min(steps) > 0.5
    assert np.abs(a[0].astype(int) - a[-1].astype(int)).mean() > 20
    other_seed = next(synth_frames(SynthConfig(width=36, height=64, fps=30, seconds=1.0, seed=4)))
    assert not np.array_equal(other_seed, a[0])


def test_synth_clip_file_is_byte_identical_and_cached(tmp_path, tiny_clip):
    again = write_synth_clip(tmp_path / "again.mp4", TINY)
    assert again.read_bytes() == tiny_clip.read_bytes()
    cached = ensure_synth_clip(tmp_path / "cache", TINY)
    mtime = cached.stat().st_mtime_ns
    assert ensure_synth_clip(tmp_path / "cache", TINY) == cached and cached.stat().st_mtime_ns == mtime
    # other parameters, other cache file
    assert ensure_synth_clip(tmp_path / "cache", SynthConfig(width=36, height=64, seconds=0.2)) != cached


def test_written_mp4_is_h264_yuv420p_and_opencv_reads_it(tiny_clip):
    desc = probe_codec(tiny_clip)
    assert desc.startswith("h264") and "yuv420p" in desc
    cap = cv2.VideoCapture(str(tiny_clip))
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        assert frame.shape == (64, 36, 3)
        n += 1
    assert n == 30
    # and the decoded pictures are the synthesized ones (lossy: 4:2:0 chroma at 36 px wide)
    first = next(read_frames(tiny_clip)).rgb.astype(int)
    src = [f.astype(int) for f in synth_frames(TINY)]
    assert np.abs(first - src[0]).mean() < 10 < np.abs(first - src[15]).mean()


def test_odd_frame_sizes_are_padded_for_yuv420p(tmp_path):
    out = tmp_path / "odd.mp4"
    with FfmpegWriter(out, 35, 21, 15) as w:
        for i in range(3):
            w.write(np.full((21, 35, 3), 40 * i, np.uint8))
    info = probe(out)
    assert (info.width, info.height) == (36, 22)
    with pytest.raises(ValueError):
        with FfmpegWriter(tmp_path / "bad.mp4", 36, 22, 15) as w:
            w.write(np.zeros((22, 35, 3), np.uint8))


@pytest.mark.parametrize("fps, max_seconds, expected", [(15, None, 15), (10, None, 10), (60, None, 30), (None, None, 30), (15, 0.5, 8)])
def test_decimation_keeps_one_frame_per_slot(tiny_clip, fps, max_seconds, expected):
    frames = list(read_frames(tiny_clip, fps, max_seconds))
    assert len(frames) == expected == expected_frames(probe(tiny_clip), fps, max_seconds)
    assert [f.index for f in frames] == list(range(expected))
    if fps == 15:  # every other source frame, at its own timestamp
        assert [round(f.time * 30) for f in frames[:4]] == [0, 2, 4, 6]


def count_reads(monkeypatch) -> list:
    """Count decoded frames. A wrapper, not a subclass: subclassing cv2.VideoCapture
    segfaults with OpenCV 5.0's bindings."""
    reads: list = []
    real = cv2.VideoCapture

    class CountingCapture:
        def __init__(self, *args):
            self._cap = real(*args)

        def read(self, *args):
            reads.append(1)
            return self._cap.read(*args)

        def __getattr__(self, name):
            return getattr(self._cap, name)

    monkeypatch.setattr(video.cv2, "VideoCapture", CountingCapture)
    return reads


def test_read_frames_is_lazy(tiny_clip, monkeypatch):
    reads = count_reads(monkeypatch)
    gen = read_frames(tiny_clip, 15)
    assert inspect.isgenerator(gen) and not reads  # nothing opened yet
    next(gen)
    # probe decodes one frame, the stream one more: not the clip's 30
    assert len(reads) <= 3
    gen.close()


def test_ffmpeg_fallback_reads_what_opencv_cannot(tiny_clip, monkeypatch):
    monkeypatch.setattr(video, "_open_cv", lambda path: None)
    info = probe(tiny_clip)
    assert info.backend == "ffmpeg" and (info.width, info.height) == (36, 64)
    frames = list(read_frames(tiny_clip, 15))
    assert len(frames) == 15 and frames[0].rgb.shape == (64, 36, 3)


def _audio_only(path: Path) -> Path:
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "0.3", "-c:a", "aac", str(path)],
        check=True,
    )
    return path


@pytest.mark.parametrize("kind", ["missing", "empty", "garbage", "truncated", "no_video", "directory"])
def test_bad_clips_raise_naming_the_file(tmp_path, tiny_clip, kind):
    path = tmp_path / f"{kind}.mp4"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif kind == "truncated":  # the header (faststart puts it first) without the picture data
        path.write_bytes(tiny_clip.read_bytes()[:1500])
    elif kind == "no_video":
        _audio_only(path)
    elif kind == "directory":
        path.mkdir()
    with pytest.raises(LivestyleError) as err:
        list(read_frames(path, 15))
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_fit_crops_to_the_target_aspect_instead_of_stretching():
    img = np.zeros((100, 100, 3), np.uint8)
    img[:, :20] = 255  # a white band at the left edge is cropped away for a portrait target
    out = fit(img, 64, 36)
    assert out.shape == (64, 36, 3)
    assert out[:, 0].max() < 255
    assert fit(img, 10, 10, cv2.INTER_AREA).shape == (10, 10, 3)


@pytest.mark.skipif(not FOX.exists(), reason="shared fox clip not present")
def test_real_clip_fox():
    info = probe(FOX)
    assert (info.width, info.height) == (640, 640) and abs(float(info.fps) - 29.97) < 0.01
    frames = list(read_frames(FOX, 15, max_seconds=2.0))
    assert len(frames) == expected_frames(info, 15, 2.0) == 30
