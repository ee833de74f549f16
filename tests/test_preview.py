"""Preview rendering end to end at tiny sizes (model 64x36, display 128x72)."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from livestyle.errors import LivestyleError
from livestyle.media.preview import (
    PreviewConfig,
    contact_sheet,
    output_paths,
    plan_sizes,
    render_style_previews,
)
from livestyle.media.synth_clip import SynthConfig, write_synth_clip
from livestyle.media.video import VideoInfo, probe, probe_codec

from test_video import count_reads

FOX = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "fox.mp4"


def invert(batch: np.ndarray) -> np.ndarray:
    return 255 - batch


@pytest.fixture(scope="module")
def cfg(tmp_path_factory) -> PreviewConfig:
    return PreviewConfig(
        fps=15,
        model_size=(64, 36),
        display_size=(128, 72),
        max_seconds=1.0,
        gif_width=24,
        gif_seconds=0.5,
        gif_fps=10,
        poster_second=0.5,
        builtin=SynthConfig(width=36, height=64, fps=30, seconds=1.5, seed=2),
        builtin_cache=str(tmp_path_factory.mktemp("cache")),
    )


@pytest.fixture(scope="module")
def rendered(cfg, tmp_path_factory):
    out = tmp_path_factory.mktemp("previews")
    metrics = render_style_previews(invert, "invert", None, out, cfg)
    return out, metrics


def _read_all(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            return frames
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(int))


def _png(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB).astype(int)


def test_config_from_params():
    cfg = PreviewConfig.from_params(
        {"fps": 10, "model_size": [64, 36], "clips": ["a.mp4"], "builtin": {"seed": 2}, "crf": 23}
    )
    assert cfg.model_size == (64, 36) and cfg.clips == ("a.mp4",) and cfg.builtin.seed == 2 and cfg.crf == 23
    assert PreviewConfig.from_params(None) == PreviewConfig()
    for bad in ({"fsp": 10}, {"model_size": [64]}, {"fps": 0}, {"builtin": {"sed": 1}}):
        with pytest.raises(LivestyleError):
            PreviewConfig.from_params(bad)


def test_sizes_follow_the_clips_orientation():
    cfg = PreviewConfig()
    info = lambda w, h: VideoInfo("x.mp4", w, h, Fraction(30), 30)  # noqa: E731
    portrait = plan_sizes(info(720, 1280), cfg)
    assert portrait.model == (853, 480) and portrait.display == (1920, 1080) and not portrait.transposed
    landscape = plan_sizes(info(1280, 720), cfg)
    assert landscape.model == (480, 853) and landscape.display == (1080, 1920) and landscape.transposed
    assert plan_sizes(info(640, 640), cfg).model == (853, 480)  # square keeps the configured one
    assert landscape.gif == (round(320 * 480 / 853), 320)


def test_outputs_are_named_and_playable(rendered, cfg):
    out, metrics = rendered
    paths = output_paths(out, "builtin")
    for p in paths.values():
        assert p.is_file() and p.stat().st_size > 0, p
    assert sorted(x.name for x in out.iterdir()) == sorted(p.name for p in paths.values())  # no temp leftovers
    m = metrics["clips"]["builtin"]
    # 1.5 s at 30 fps, capped at 1 s, decimated to 15 fps
    assert m["frames"] == metrics["frames"] == 15 and m["fps"] == 15.0
    assert m["render_fps"] > 0 and metrics["render_fps"] > 0

    desc = probe_codec(paths["video"])
    assert desc.startswith("h264") and "yuv420p" in desc
    video = _read_all(paths["video"])
    assert len(video) == 15 and video[0].shape == (128, 72, 3)
    info = probe(paths["video"])
    assert info.fps == 15

    side = _read_all(paths["side"])
    assert len(side) == 15 and side[0].shape == (64, 72, 3)
    left, right = side[5][:, :36], side[5][:, 36:]
    assert np.abs(left + right - 255).mean() < 25  # original | inverted

    gif = Image.open(paths["gif"])
    assert gif.size[0] == 24 and gif.n_frames == 5  # 0.5 s at 10 fps

    poster, frame = _png(paths["poster"]), _png(paths["frame"])
    assert poster.shape == frame.shape == (128, 72, 3)
    # the poster is the stylized picture of the same moment as the original frame
    assert np.abs(poster + frame - 255).mean() < 25


def test_flicker_reported_beside_the_originals(rendered):
    m = rendered[1]["clips"]["builtin"]
    assert m["pairs"] == 14
    assert m["warp_error_original"] > 0
    # inverting colours moves with the content: no added flicker
    assert m["warp_error_ratio"] == pytest.approx(1.0, rel=0.02)
    csv_lines = (rendered[0] / "builtin_flicker.csv").read_text().splitlines()
    assert csv_lines[0] == "frame,stylized,original" and len(csv_lines) == 15


def test_rendering_is_deterministic(rendered, cfg, tmp_path):
    render_style_previews(invert, "invert", None, tmp_path, cfg)
    for key, p in output_paths(tmp_path, "builtin").items():
        assert p.read_bytes() == output_paths(rendered[0], "builtin")[key].read_bytes(), key


def test_noisy_stylizer_flickers_more(cfg, tmp_path):
    rng = np.random.default_rng(0)

    def noisy(batch):  # float output is accepted and clipped
        return batch.astype(np.float32) + rng.normal(0, 25, batch.shape)

    clip = write_synth_clip(tmp_path / "big.mp4", SynthConfig(width=144, height=256, fps=30, seconds=4.0))  # default speed of motion
    small = replace(cfg, model_size=(256, 144), display_size=(256, 144), flow_scale=1.0)
    m = render_style_previews(noisy, "noisy", [clip], tmp_path / "out", small)["clips"]["big"]
    assert m["warp_error_ratio"] > 2


def test_bad_clip_fails_naming_it_and_keeps_previous_outputs(cfg, tmp_path):
    good = write_synth_clip(tmp_path / "good.mp4", cfg.builtin)
    out = tmp_path / "out"
    render_style_previews(invert, "invert", [good], out, cfg)
    before = {p: p.read_bytes() for p in out.iterdir()}
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(500))
    with pytest.raises(LivestyleError, match="broken.mp4"):
        render_style_previews(lambda b: np.zeros_like(b), "zero", [good, bad], out, cfg)
    with pytest.raises(LivestyleError, match="missing.mp4"):
        render_style_previews(invert, "invert", [tmp_path / "missing.mp4"], out, cfg)
    assert {p: p.read_bytes() for p in out.iterdir()} == before


def test_a_stylizer_of_the_wrong_shape_writes_nothing(cfg, tmp_path):
    with pytest.raises(LivestyleError, match="shape"):
        render_style_previews(lambda b: b[:, :10], "cropper", None, tmp_path, cfg)
    with pytest.raises(LivestyleError, match="NaN"):
        render_style_previews(lambda b: np.full(b.shape, np.nan), "nan", None, tmp_path, cfg)
    assert list(tmp_path.iterdir()) == []


def test_landscape_clip_uses_the_transposed_model_size(cfg, tmp_path):
    clip = write_synth_clip(tmp_path / "wide.mp4", SynthConfig(width=64, height=36, fps=30, seconds=0.5))
    seen = []

    def stylize(batch):
        seen.append(batch.shape)
        return batch

    m = render_style_previews(stylize, "id", [clip], tmp_path / "out", cfg)["clips"]["wide"]
    assert m["transposed"] and (m["model_height"], m["model_width"]) == (36, 64)
    assert set(seen) == {(1, 36, 64, 3)}
    assert _read_all(tmp_path / "out" / "wide.mp4")[0].shape == (72, 128, 3)


def test_frames_are_streamed_in_small_batches(cfg, tmp_path, monkeypatch):
    clip = write_synth_clip(tmp_path / "long.mp4", SynthConfig(width=36, height=64, fps=30, seconds=2.0))
    reads = count_reads(monkeypatch)
    calls = []

    def stylize(batch):
        calls.append((len(batch), len(reads)))
        return batch

    render_style_previews(stylize, "id", [clip], tmp_path / "out", replace(cfg, batch_size=2, max_seconds=2.0))
    assert sum(n for n, _ in calls) == 30 and max(n for n, _ in calls) == 2
    # the first batch is stylized after a handful of decoded frames, not after the whole clip
    assert calls[0][1] <= 8 < len(reads)


def test_duplicate_clip_names_are_refused(cfg, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = write_synth_clip(tmp_path / "a" / "clip.mp4", cfg.builtin)
    b = write_synth_clip(tmp_path / "b" / "clip.mp4", cfg.builtin)
    with pytest.raises(LivestyleError, match="clip"):
        render_style_previews(invert, "invert", [a, b], tmp_path / "out", cfg)


def test_contact_sheet_labels_every_style(rendered, tmp_path):
    out, _ = rendered
    poster = out / "builtin_poster.png"
    posters = {"invert": poster, "gray": np.repeat(_png(poster).mean(-1, keepdims=True), 3, -1).astype(np.uint8)}
    sheet = contact_sheet(posters, out / "builtin_frame.png", tmp_path / "sheet.png", thumb_height=128)
    img = _png(sheet)
    # three panels side by side, each about as wide as a 128-high portrait thumbnail
    assert img.shape[1] >= 3 * 72 and img.shape[0] >= 128
    again = contact_sheet(posters, _png(out / "builtin_frame.png").astype(np.uint8), tmp_path / "again.png", thumb_height=128)
    assert again.read_bytes() == sheet.read_bytes()
    with pytest.raises(LivestyleError, match="nope.png"):
        contact_sheet({"x": tmp_path / "nope.png"}, poster, tmp_path / "bad.png")


@pytest.mark.skipif(not FOX.exists(), reason="shared fox clip not present")
def test_real_clip_fox(cfg, tmp_path):
    m = render_style_previews(invert, "invert", [FOX], tmp_path, replace(cfg, max_seconds=0.5))["clips"]["fox"]
    assert m["frames"] == 8 and not m["transposed"]  # square clip: portrait model size
    assert probe_codec(tmp_path / "fox.mp4").startswith("h264")


def test_flicker_can_be_switched_off_without_leaving_a_stale_figure(rendered, cfg, tmp_path):
    out = tmp_path / "out"
    render_style_previews(invert, "invert", None, out, cfg)
    assert (out / "builtin_flicker.csv").exists()
    m = render_style_previews(invert, "invert", None, out, replace(cfg, flicker=False))
    assert "warp_error_ratio" not in m and "warp_error_ratio" not in m["clips"]["builtin"]
    assert not (out / "builtin_flicker.csv").exists() and (out / "builtin.mp4").exists()
