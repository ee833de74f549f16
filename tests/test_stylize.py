"""`livestyle stylize` with a tiny network: every kind of photo, a folder, a video with
audio, the live loop on a clip (headless and with a fake display), strength, and the
one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image, ImageOps

from livestyle import cli
from livestyle.config import NetworkConfig
from livestyle.convert.runtime import Runner, apply, open_model, open_style
from livestyle.media.live import LiveState, Styles, on_key, open_source, open_window, run_live
from livestyle.media.stylize import has_audio, load_photo
from livestyle.media.video import ffmpeg_exe, probe, probe_codec, read_frames

NET = NetworkConfig(res_blocks=1, width=4)
SIZE = (37, 20)  # the export size, [height, width]: odd like 853
PALETTE = (np.array([[1.5, 0.1, 0.0], [0.1, 1.3, -0.1], [0.0, -0.1, 1.4]]), np.array([-40.0, -20.0, -30.0]))


def photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth gradient with some noise: a stand-in photo with structure at every scale."""
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([255 * x / max(w - 1, 1), 255 * y / max(h - 1, 1), 128 + 100 * np.sin((x + y) / 5)], -1)
    rgb += np.random.default_rng(seed).normal(0, 12, rgb.shape)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A project root: params.yaml with a tiny network, two trained styles (random
    weights), one style not trained yet, and the first style exported to ONNX/TFLite."""
    import keras

    from livestyle.convert.export import export_onnx, export_tflite, load_transformer
    from livestyle.model.network import build_transformer

    root = tmp_path_factory.mktemp("project")
    params = {
        "styles": {s: {"image": f"data/styles/{s}.png"} for s in ("tiny", "other", "untrained")},
        "network": {"res_blocks": NET.res_blocks, "width": NET.width},
        "export": {"sizes": [list(SIZE)], "display": [74, 40]},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    for seed, style in enumerate(("tiny", "other")):
        keras.utils.set_random_seed(seed)
        weights = root / "data/train" / style / "transformer.weights.h5"
        weights.parent.mkdir(parents=True)
        build_transformer(NET, 32, 32).save_weights(weights)
    # tiny has a palette map beside its weights, as the train stage writes it; params leave
    # network.palette_strength at 0, so it is used only with --palette
    from livestyle.model.palette import PALETTE_FILE, save_palette

    save_palette(root / "data/train/tiny" / PALETTE_FILE, {"matrix": PALETTE[0].tolist(), "offset": PALETTE[1].tolist()})
    model = load_transformer(root / "data/train/tiny/transformer.weights.h5", NET, *SIZE)
    export_onnx(model, root / "tiny.onnx")
    export_tflite(model, root / "tiny.tflite")
    return root


@pytest.fixture(scope="module")
def tiny(project) -> Runner:
    return open_style("tiny", project / "params.yaml")


def stylize(project: Path, *args) -> int:
    return cli.main(["stylize", *map(str, args), "--params", str(project / "params.yaml")])


def png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


# ---------------------------------------------------------------- photos


def _odd(p):
    Image.fromarray(photo(45, 31)).save(p)
    return photo(45, 31)


def _landscape(p):
    Image.fromarray(photo(23, 50)).save(p)
    return photo(23, 50)


def _gray(p):
    Image.fromarray(photo(30, 22)[..., 0]).save(p)
    return np.repeat(photo(30, 22)[..., :1], 3, axis=2)


def _rgba(p):
    rgb = photo(26, 19)
    alpha = np.tile(np.linspace(0, 255, 19).astype(np.uint8), (26, 1))
    Image.fromarray(np.dstack([rgb, alpha])).save(p)
    return rgb


def _grey16(p):
    v = (np.linspace(0, 65535, 24 * 17).reshape(24, 17)).astype(np.uint16)
    Image.fromarray(v).save(p)  # mode I;16: Pillow's convert("RGB") clips it to white
    return np.repeat(np.rint(v / 257).astype(np.uint8)[..., None], 3, axis=2)


def _rgb16(p):
    import cv2

    v = photo(21, 18).astype(np.uint16) * 257 + 100
    cv2.imwrite(str(p), v[..., ::-1])
    return np.rint(v / 257).astype(np.uint8)


def _cmyk(p):
    rgb = photo(32, 24)
    Image.fromarray(rgb).convert("CMYK").save(p, quality=98)
    return rgb


def _palette(p):
    im = Image.fromarray(photo(27, 21)).quantize(16)
    im.save(p)
    return np.asarray(im.convert("RGB"))


def _palette_transparent(p):
    im = Image.fromarray(photo(27, 21)).quantize(16)
    im.save(p, transparency=0)
    return np.asarray(im.convert("RGB"))


def _exif_rotated(p):
    # a phone photo: landscape pixels, EXIF orientation 6 ("turn 90 degrees clockwise")
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(photo(20, 36)).save(p, exif=exif, quality=98)
    return np.rot90(photo(20, 36), -1)


def _srgb_profile(p):
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(photo(19, 25)).save(p, icc_profile=icc)  # converted through it: stays itself
    return photo(19, 25)


KINDS = {  # name: (file name, maker, expected (height, width), alpha kept, decode tolerance)
    "odd": ("odd.png", _odd, (45, 31), False, 0),
    "landscape": ("landscape.png", _landscape, (23, 50), False, 0),
    "gray": ("gray.png", _gray, (30, 22), False, 0),
    "rgba": ("rgba.png", _rgba, (26, 19), True, 0),
    "grey16": ("grey16.png", _grey16, (24, 17), False, 0),
    "rgb16": ("rgb16.png", _rgb16, (21, 18), False, 1),
    "cmyk": ("cmyk.jpg", _cmyk, (32, 24), False, 6),
    "palette": ("palette.png", _palette, (27, 21), False, 0),
    "palette_transparent": ("palette_t.png", _palette_transparent, (27, 21), True, 0),
    "exif_rotated": ("phone.jpg", _exif_rotated, (36, 20), False, 8),
    "icc_profile": ("srgb.png", _srgb_profile, (19, 25), False, 1),
}


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_of_photo(project, tiny, tmp_path, capsys, kind):
    name, make, hw, alpha_kept, tol = KINDS[kind]
    src = tmp_path / name
    expected_rgb = make(src)
    decoded = load_photo(src)
    # decoded as 8-bit sRGB at its displayed orientation: 16-bit scaled, CMYK converted
    assert decoded.rgb.shape == (*hw, 3) and decoded.rgb.dtype == np.uint8
    assert np.abs(decoded.rgb.astype(int) - expected_rgb).mean() <= tol
    assert np.abs(decoded.rgb.astype(int) - expected_rgb).max() <= max(tol * 8, tol)

    out = tmp_path / "out" / "styled.png"
    assert stylize(project, src, "-o", out, "--style", "tiny") == 0
    assert f"wrote {out} ({hw[1]}x{hw[0]}" in capsys.readouterr().out
    got = png(out)
    assert got.shape == (*hw, 4 if alpha_kept else 3)
    # what the CLI wrote is the style applied to the decoded photo, and it is not the photo
    assert np.array_equal(got[..., :3], tiny(decoded.rgb))
    assert np.abs(got[..., :3].astype(int) - decoded.rgb).mean() > 2
    if alpha_kept:
        assert np.array_equal(got[..., 3], decoded.alpha)
        if kind == "rgba":
            assert np.array_equal(got[..., 3], np.tile(np.linspace(0, 255, 19).astype(np.uint8), (26, 1)))
    assert [p.name for p in out.parent.iterdir()] == ["styled.png"]  # no temp file left behind


def test_any_size_matches_the_network_away_from_the_borders(tiny, project):
    """Frames are reflect-padded (to a multiple of 32, so few networks get built) and
    cropped back: the interior is what the network computes at the frame's own size."""
    from livestyle.convert.export import load_transformer

    rgb = photo(133, 101)
    ours = tiny(rgb).astype(int)
    direct = np.asarray(load_transformer(project / "data/train/tiny/transformer.weights.h5", NET, 133, 101)(rgb[None].astype(np.float32)))[0]
    direct = np.clip(np.rint(direct), 0, 255).astype(int)
    assert ours.shape == direct.shape
    assert np.abs(ours - direct)[40:-40, 40:-40].max() <= 1


def test_alpha_to_jpeg_is_dropped_with_a_note(project, tmp_path, capsys):
    src = tmp_path / "rgba.png"
    _rgba(src)
    assert stylize(project, src, "-o", tmp_path / "out.jpg", "--style", "tiny") == 0
    out, err = capsys.readouterr()
    assert "transparency dropped" in err and "alpha kept" not in out
    assert png(tmp_path / "out.jpg").shape == (26, 19, 3)


def test_huge_photo_is_capped_at_max_side(project, tmp_path, capsys):
    src = tmp_path / "huge.jpg"
    Image.fromarray(photo(1200, 1800)).save(src, quality=90)
    assert stylize(project, src, "-o", tmp_path / "out.png", "--style", "tiny", "--max-side", 60) == 0
    assert "1800x1200 scaled to 60x40 (--max-side 60)" in capsys.readouterr().err
    assert png(tmp_path / "out.png").shape == (40, 60, 3)


def test_strength_blends_stylized_and_photo(project, tiny, tmp_path):
    src = tmp_path / "odd.png"
    rgb = _odd(src)
    for s in ("0", "0.5", "1"):
        assert stylize(project, src, "-o", tmp_path / f"s{s}.png", "--style", "tiny", "--strength", s) == 0
    assert np.array_equal(png(tmp_path / "s0.png"), rgb)  # strength 0: the photo itself
    full = png(tmp_path / "s1.png").astype(float)
    assert np.array_equal(full, tiny(rgb))
    assert np.abs(png(tmp_path / "s0.5.png") - (0.5 * full + 0.5 * rgb)).max() <= 0.5 + 1e-9


def test_palette_applies_the_styles_colour_map(project, tiny, tmp_path):
    from livestyle.model.palette import apply_map, blended

    src = tmp_path / "odd.png"
    rgb = _odd(src)
    for p in ("0", "0.5", "1"):
        assert stylize(project, src, "-o", tmp_path / f"p{p}.png", "--style", "tiny", "--palette", p) == 0
    plain = png(tmp_path / "p0.png").astype(np.float32)
    assert np.array_equal(plain, tiny(rgb))  # 0: as params leave it (palette_strength 0)
    for p, strength in (("1", 1.0), ("0.5", 0.5)):
        want = apply_map(plain, *blended(*PALETTE, strength))
        got = png(tmp_path / f"p{p}.png").astype(np.float32)
        assert np.abs(got - want).max() <= 2.5, p  # the map on the unrounded output, rounded once
    assert np.abs(png(tmp_path / "p1.png").astype(float) - plain).mean() > 10


def test_folder_in_folder_out_same_names(project, tiny, tmp_path, capsys):
    src = tmp_path / "photos"
    (src / "sub").mkdir(parents=True)
    _odd(src / "a.png")
    _cmyk(src / "sub" / "b.jpg")
    _rgba(src / "c.png")
    (src / "notes.txt").write_text("not a photo")
    _odd(src / ".hidden.png")
    out = tmp_path / "styled"
    assert stylize(project, src, "-o", out, "--style", "tiny") == 0
    assert "wrote 3 image(s)" in capsys.readouterr().out
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == ["a.png", "c.png", "sub/b.jpg"]
    assert np.array_equal(png(out / "a.png"), tiny(photo(45, 31)))
    assert png(out / "c.png").shape == (26, 19, 4) and png(out / "sub/b.jpg").shape == (32, 24, 3)


def test_folder_with_a_broken_image_does_the_rest_and_fails(project, tmp_path, capsys):
    src = tmp_path / "photos"
    src.mkdir()
    _odd(src / "a.png")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "styled"
    assert stylize(project, src, "-o", out, "--style", "tiny") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert any("broken.png: not a readable image" in line and "(skipped)" in line for line in err)
    assert err[-1] == f"livestyle: {src}: 1 of 2 images could not be stylized (named above); the other 1 are in {out}"
    assert (out / "a.png").exists() and not (out / "broken.png").exists()


# ---------------------------------------------------------------- exported models


@pytest.mark.parametrize("fmt", ["onnx", "tflite", "weights.h5"])
def test_exported_models_agree_with_the_trained_style(project, tiny, tmp_path, capsys, fmt):
    model = project / ("data/train/tiny/transformer.weights.h5" if fmt == "weights.h5" else f"tiny.{fmt}")
    from livestyle.convert.export import load_transformer

    runner = open_model(model, project / "params.yaml")
    rgb = photo(*SIZE)
    if fmt == "weights.h5":
        assert np.array_equal(runner(rgb), tiny(rgb))
    else:  # at the export size the exported model computes the network (fp32: within a level)
        keras_out = load_transformer(project / "data/train/tiny/transformer.weights.h5", NET, *SIZE)(rgb[None].astype(np.float32))
        assert np.abs(runner(rgb).astype(int) - np.clip(np.rint(np.asarray(keras_out)[0]), 0, 255)).max() <= 1
    src = tmp_path / "landscape.png"
    _landscape(src)
    assert stylize(project, src, "-o", tmp_path / "out.png", "--model", model) == 0
    out = png(tmp_path / "out.png")
    assert out.shape == (23, 50, 3) and np.abs(out.astype(int) - photo(23, 50)).mean() > 2
    err = capsys.readouterr().err
    if fmt != "weights.h5":  # a fixed-size model says how frames are fitted to it
        assert "fixed input 20x37 (WxH)" in err and "landscape ones turned a quarter" in err


def test_fixed_size_models_keep_the_whole_frame(project):
    """A frame of another shape is scaled to fit inside the model's input (turned a quarter
    for the other orientation), padded, stylized, cropped and scaled back: an identity
    model gives the frame back, up to the resampling."""
    ident = Runner("identity", lambda x: x, input_size=SIZE)
    for hw in [(37, 20), (20, 37), (60, 60), (10, 50), (100, 30)]:
        rgb = np.full((*hw, 3), 90, np.uint8)
        rgb[: hw[0] // 2] = 200  # top half bright: the orientation survives the turn
        out = ident(rgb)
        assert out.shape == rgb.shape
        assert abs(int(out[0, hw[1] // 2, 0]) - 200) <= 2 and abs(int(out[-1, hw[1] // 2, 0]) - 90) <= 2


# ---------------------------------------------------------------- video


def make_clip(path: Path, audio: bool = True, size: str = "48x36", seconds: float = 1.0, rate: int = 10) -> Path:
    cmd = [ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}:duration={seconds}"]
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-c:a", "aac"]
    subprocess.run([*cmd, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-shortest", str(path)], check=True)
    return path


def test_video_keeps_rate_size_and_audio(project, tiny, tmp_path, capsys):
    src = make_clip(tmp_path / "clip.mp4")
    assert has_audio(src)
    out = tmp_path / "styled.mp4"
    assert stylize(project, src, "-o", out, "--style", "tiny") == 0
    line = capsys.readouterr().out
    assert "10 frames 48x36" in line and "audio kept" in line
    info = probe(out)
    assert (info.width, info.height, float(info.fps)) == (48, 36, 10.0)
    assert probe_codec(out).startswith("h264") and has_audio(out)
    frames = [f.rgb for f in read_frames(out)]
    originals = [f.rgb for f in read_frames(src)]
    assert len(frames) == 10
    # stylized, not copied: each frame is near the style of its source frame (H.264 loss)
    assert np.abs(frames[3].astype(int) - tiny(originals[3])).mean() < 8
    assert np.abs(frames[3].astype(int) - originals[3]).mean() > 10


@pytest.mark.parametrize("flag", [["--stabilise"], ["--stabilise", "0.5"]], ids=["default", "0.5"])
def test_video_stabilised_keeps_every_frame(project, tiny, tmp_path, capsys, flag):
    src = make_clip(tmp_path / "clip.mp4", audio=False, seconds=0.6)
    out = tmp_path / "steady.mp4"
    # the flag's value is optional: before the source it must not swallow it
    assert stylize(project, *flag, src, "-o", out, "--style", "tiny") == 0
    assert f"stabilised {flag[1] if len(flag) > 1 else 0.7}" in capsys.readouterr().out
    frames = [f.rgb for f in read_frames(out)]
    assert len(frames) == len(list(read_frames(src))) == 6
    assert (probe(out).width, probe(out).height) == (48, 36)


def test_video_without_audio_and_a_max_side(project, tmp_path, capsys):
    src = make_clip(tmp_path / "silent.mp4", audio=False, size="64x48", seconds=0.5)
    out = tmp_path / "out.mkv"
    assert stylize(project, src, "-o", out, "--style", "tiny", "--max-side", 32) == 0
    assert "no audio" in capsys.readouterr().out
    info = probe(out)
    assert (info.width, info.height) == (32, 24) and not has_audio(out)


# ---------------------------------------------------------------- live


class FakeDisplay:
    """Records what is shown and answers with scripted keys (then -1)."""

    def __init__(self, keys: str):
        self.keys = [ord(k) for k in keys]
        self.shown: list[np.ndarray] = []
        self.closed = False

    def show(self, rgb):
        self.shown.append(rgb.copy())
        return self.keys.pop(0) if self.keys else -1

    def close(self):
        self.closed = True


def test_camera_headless_with_a_clip_records_and_reports_fps(project, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    clip = make_clip(tmp_path / "cam.mp4", audio=False, size="48x36", seconds=1.0)
    rec = tmp_path / "rec.mp4"
    assert stylize(project, "--camera", clip, "-o", rec, "--style", "tiny") == 0
    err = capsys.readouterr().err
    assert "live: no window (no DISPLAY): running headless, recording to" in err
    # the default size is the export size (20x37 WxH) turned like the landscape clip
    line = next(ln for ln in err.splitlines() if ln.startswith("live: 10 frames at 37x20, "))
    assert float(line.split(", ")[1].split(" fps")[0]) > 0
    info = probe(rec)
    assert (info.width, info.height) == (38, 20)  # yuv420p pads the odd width by one pixel
    assert len(list(read_frames(rec))) == 10


def test_camera_size_and_frame_limit(project, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    clip = make_clip(tmp_path / "cam.mp4", audio=False)
    rec = tmp_path / "rec.mp4"
    assert stylize(project, "--camera", clip, "-o", rec, "--style", "all", "--size", "24x32", "--frames", 4) == 0
    assert "live: 4 frames at 24x32" in capsys.readouterr().err
    assert (probe(rec).width, probe(rec).height) == (24, 32) and len(list(read_frames(rec))) == 4


def test_live_keys_switch_style_change_strength_save_and_quit(project, tmp_path):
    params = project / "params.yaml"
    styles = Styles(["tiny", "other"], lambda name: open_style(name, params))
    display = FakeDisplay("x-ns+=tq")
    rec = tmp_path / "rec.mp4"
    source = open_source(str(make_clip(tmp_path / "cam.mp4", audio=False)))
    result = run_live(source, styles, size=(24, 32), strength=0.5, display=display, record=rec, save_dir=tmp_path)
    # x: nothing; -: 0.4; n: other; s: save; +: 0.5; =: 0.6; t: stabilise on; q: quit after the 8th frame
    assert len(display.shown) == 8 and display.closed
    assert result["style"] == "other" and result["strength"] == 0.6 and result["frames"] == 8
    assert result["stabilise"] == 0.7
    saved = tmp_path / "livestyle_other_001.png"
    assert saved.exists() and png(saved).shape == (24, 32, 3)
    # the recording has the frames without the overlay; the window shows the frame rate on them
    recorded = [f.rgb for f in read_frames(rec)]
    assert len(recorded) == 8
    assert np.abs(display.shown[3][:10].astype(int) - png(saved)[:10]).max() > 100  # text drawn top left
    assert np.array_equal(display.shown[3][-4:], png(saved)[-4:])


def test_on_key_bounds():
    state = LiveState(strength=0.95)
    for key in "+++":
        on_key(ord(key), state, 1)
    assert state.strength == 1.0 and state.style == 0
    for key in "-" * 12:
        on_key(ord(key), state, 1)
    assert state.strength == 0.0
    on_key(ord("t"), state, 1)
    assert state.stabilise
    on_key(ord("T"), state, 1)
    assert not state.stabilise
    on_key(27, state, 1)
    assert state.quit and on_key(-1, LiveState(), 2) is None and on_key(ord("s"), LiveState(), 2) == "save"


def test_live_stabilised_steadies_and_style_switch_starts_afresh(project, tmp_path):
    """The blend is on from the start with --stabilise; n resets it (the new style's first
    frame is its own), t turns it off (frames as without it)."""
    params = project / "params.yaml"
    styles = Styles(["tiny", "other"], lambda name: open_style(name, params))
    clip = str(make_clip(tmp_path / "cam.mp4", audio=False))
    plain, steady = FakeDisplay(""), FakeDisplay("xxnxtx")
    run_live(open_source(clip), styles, size=(24, 32), display=plain, max_frames=7)
    n = len(plain.shown)
    styles_b = Styles(["tiny", "other"], lambda name: open_style(name, params))
    result = run_live(open_source(clip), styles_b, size=(24, 32), display=steady, max_frames=n, stabilise=0.5)
    assert result["stabilise"] == 0.0  # t turned it off
    other = FakeDisplay("")
    run_live(open_source(clip), Styles(["other"], lambda name: open_style(name, params)), size=(24, 32), display=other, max_frames=n)
    body = (slice(12, None), slice(None))  # below the overlay text
    unblended = plain.shown[:3] + other.shown[3:]  # x, x, n: frames 0-2 in tiny, then other
    same = [np.array_equal(a[body], b[body]) for a, b in zip(unblended, steady.shown)]
    # 0: the first frame as it is; 1-2: blended; 3: the new style afresh; 4: blended; 5-6: t turned it off
    assert same == [True, False, False, True, False, True, True]


def test_no_window_without_a_display(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if sys.platform.startswith("linux"):
        assert open_window() == (None, "no DISPLAY")
    import cv2

    if "GUI:                           NONE" in cv2.getBuildInformation():  # opencv-python-headless
        monkeypatch.setenv("DISPLAY", ":0")
        assert open_window() == (None, "this OpenCV has no GUI (opencv-python-headless)")


# ---------------------------------------------------------------- errors


def _nchw_onnx(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "nchw",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 64, 64])],
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


ERRORS = {  # name: (arguments after the source, the source, the line's start, a part of it)
    "missing style": (["--style", "nope"], "photo", "nope: ", "no such style in"),
    "lists the trained styles": (["--style", "nope"], "photo", "nope: ", "(trained styles: other, tiny)"),
    "untrained style": (["--style", "untrained"], "photo", "", "style 'untrained' is not trained yet: dvc repro train@untrained"),
    "model input cannot be adapted": (["--model", "nchw.onnx"], "photo", "", "cannot be fed frames"),
    "weights of another network": (["--model", "wide.weights.h5"], "photo", "", "weights do not fit the network in"),
    "unknown model format": (["--model", "model.bin"], "photo", "", "unknown model format"),
    "unreadable image": (["--style", "tiny"], "garbage.png", "garbage.png: ", "not a readable image"),
    "unknown file": (["--style", "tiny"], "garbage.bin", "garbage.bin: ", "neither an image nor a video that livestyle can read"),
    "missing file": (["--style", "tiny"], "missing.jpg", "", "no such file or folder"),
    "no camera": (["--style", "tiny", "--camera", "9"], None, "camera 9: ", "no camera at this index"),
    "strength out of range": (["--style", "tiny", "--strength", "1.5"], "photo", "--strength: ", "must be between 0 and 1, got 1.5"),
    "no output": (["--style", "tiny"], "photo-no-out", "", "give the output path with -o OUT"),
    "unknown output format": (["--style", "tiny"], "photo-to-xyz", "out.xyz: ", "unknown image format for the output"),
    "style and model": (["--style", "tiny", "--model", "tiny.onnx"], "photo", "--style: ", "one of the two"),
    "bad size": (["--style", "tiny", "--camera", "cam.mp4", "--size", "big"], None, "--size: ", "expected WIDTHxHEIGHT"),
    "video to a png": (["--style", "tiny"], "cam.mp4", "", "a video's output must be one of .mp4"),
    "core ml off macOS": (["--model", "x.mlpackage"], "photo", "", "Core ML models run only on macOS"),
    "palette out of range": (["--style", "tiny", "--palette", "2"], "photo", "--palette: ", "must be between 0 and 1, got 2"),
    "stabilise a photo": (["--style", "tiny", "--stabilise"], "photo", "photo.png: ", "a photo has no frames to steady"),
    "stabilise a folder": (["--style", "tiny", "--stabilise", "0.5"], "folder", "photos: ", "a folder of photos has no frames"),
    "stabilise out of range": (["--style", "tiny", "--stabilise", "1"], "cam.mp4", "--stabilise: ", "under 1"),
    "palette of an exported model": (["--model", "tiny.onnx", "--palette", "1"], "photo", "--palette: ",
                                     "carries the palette it was exported with"),
    "no palette beside the weights": (["--style", "other", "--palette", "1"], "photo", "", "no palette map beside these weights"),
}


@pytest.mark.parametrize("case", ERRORS)
def test_errors_are_one_line_and_exit_1(project, tmp_path, capsys, monkeypatch, case):
    from livestyle.model.network import build_transformer

    if case == "core ml off macOS" and sys.platform == "darwin":
        pytest.skip("Core ML runs on macOS")
    args, source, start, part = ERRORS[case]
    monkeypatch.chdir(tmp_path)
    Image.fromarray(photo(20, 16)).save("photo.png")
    (tmp_path / "garbage.png").write_bytes(os.urandom(2048))
    (tmp_path / "garbage.bin").write_bytes(os.urandom(2048))
    (tmp_path / "model.bin").write_bytes(b"\0" * 16)
    (tmp_path / "x.mlpackage").mkdir()
    (tmp_path / "tiny.onnx").symlink_to(project / "tiny.onnx")
    _nchw_onnx(tmp_path / "nchw.onnx")
    make_clip(tmp_path / "cam.mp4", audio=False, seconds=0.3)
    if case == "weights of another network":
        build_transformer(NetworkConfig(res_blocks=1, width=8), 16, 16).save_weights("wide.weights.h5")
    (tmp_path / "photos").mkdir()
    Image.fromarray(photo(20, 16)).save("photos/a.png")
    argv = {"photo": ["photo.png", "-o", "out.png"], "photo-no-out": ["photo.png"], "photo-to-xyz": ["photo.png", "-o", "out.xyz"],
            "folder": ["photos", "-o", "out.png"], None: []}.get(source, [source, "-o", "out.png"])
    assert stylize(project, *argv, *args) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("livestyle: " + start) and part in lines[0]
    assert not (tmp_path / "out.png").exists()
