"""livestyle.convert.verify and its runners (livestyle.convert.runners): every exported format against the Keras model, spec checks, config."""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

from coreml_fixtures import convert, display_model, frames, tiny_core
from livestyle.convert import runners, verify
from livestyle.errors import LivestyleError

H, W, OH, OW = 18, 14, 40, 30
META = {"author": "livestyle", "license": "MIT", "shortDescription": "tiny test style",
        "style": "tiny", "version": "0.1.0"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One tiny Keras model exported to all four formats (+ a BGR planted bug), once."""
    import tensorflow as tf
    import tf2onnx

    root = tmp_path_factory.mktemp("verify")
    core = tiny_core(H, W, seed=3)
    disp = display_model(core, OH, OW)
    paths = {
        "mlprogram": root / "tiny.mlpackage",
        "neuralnetwork": root / "tiny.mlmodel",
        "tflite": root / "tiny.tflite",
        "onnx": root / "tiny.onnx",
        "bgr": root / "tiny_bgr.mlpackage",
    }
    convert(disp, H, W, precision="fp16", metadata=META).save(str(paths["mlprogram"]))
    convert(disp, H, W, fmt="neuralnetwork", metadata=META).save(str(paths["neuralnetwork"]))
    convert(disp, H, W, precision="fp16", color="BGR", metadata=META).save(str(paths["bgr"]))
    # from_keras_model, not a concrete function: the latter keeps READ_VARIABLE ops
    # that LiteRT cannot run uninitialised (it returned NaN here)
    paths["tflite"].write_bytes(tf.lite.TFLiteConverter.from_keras_model(core).convert())
    fn = tf.function(lambda x: core(x), input_signature=[tf.TensorSpec((1, H, W, 3), tf.float32, name="image")])
    tf2onnx.convert.from_function(fn, input_signature=fn.input_signature, opset=17, output_path=str(paths["onnx"]))
    return core, paths


def test_psnr_values():
    a = np.zeros((4, 4, 3), np.float32)
    assert verify.psnr(a, a) == float("inf")
    assert verify.psnr(a, a + 1) == pytest.approx(20 * np.log10(255), abs=1e-9)
    assert verify.psnr(a, a + 1, peak=1.0) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError):
        verify.psnr(a, a[:2])


def test_upscale_matches_tensorflow_resize():
    import tensorflow as tf

    img = np.random.default_rng(0).uniform(0, 255, (9, 7, 3)).astype(np.float32)
    want = tf.image.resize(img[None], (20, 15), method="bilinear").numpy()[0]
    np.testing.assert_allclose(verify.upscale(img, 20, 15), want, atol=1e-3)


def test_all_formats_pass_and_metrics_are_json(exported, tmp_path):
    core, paths = exported
    models = {k: v for k, v in paths.items() if k in runners.FORMATS}
    cfg = verify.VerifyConfig(frames=2)
    res = verify.verify_models(models, runners.keras_reference(core), frames(3, H, W, seed=5), cfg,
                               input_hw=(H, W), display_hw=(OH, OW), style="tiny", progress=False)
    assert res["passed"], verify.failures(res)
    for fmt in runners.FORMATS:
        r = res[fmt]
        assert r["frames"] == 2 and r["psnr_db"]["min"] >= cfg.min_psnr[fmt]
        assert r["output_size"] == ([OH, OW] if fmt in ("mlprogram", "neuralnetwork") else [H, W])
    # the fp16 Core ML program is measurably less exact than the fp32 formats
    assert res["mlprogram"]["psnr_db"]["mean"] < res["onnx"]["psnr_db"]["mean"]
    out = tmp_path / "verify.json"
    from livestyle.atomic import write_json

    write_json(out, res)
    assert json.loads(out.read_text())["mlprogram"]["passed"] is True


def test_planted_bgr_layout_bug_fails(exported):
    core, paths = exported
    cfg = verify.VerifyConfig(frames=1)
    res = verify.verify_models({"mlprogram": paths["bgr"]}, runners.keras_reference(core), frames(1, H, W, seed=6),
                               cfg, input_hw=(H, W), display_hw=(OH, OW), progress=False)
    assert not res["passed"]
    assert res["mlprogram"]["psnr_db"]["min"] < cfg.min_psnr["mlprogram"]
    msg = "\n".join(verify.failures(res))
    assert "PSNR" in msg and "BGR" in msg


def test_non_finite_output_fails():
    frame = np.zeros((H, W, 3), np.uint8)
    ref = lambda f: np.full((H, W, 3), 100.0, np.float32)  # noqa: E731
    nan = lambda f: np.full((H, W, 3), np.nan, np.float32)  # noqa: E731
    res = verify.compare(nan, ref, [frame], min_psnr=0.0)
    assert res["passed"] is False


def test_spec_check_reports_each_problem(exported, tmp_path):
    core, paths = exported
    assert verify.check_spec(paths["mlprogram"], (H, W), (OH, OW), style="tiny") == []
    problems = verify.check_spec(paths["bgr"], (H, W), (OH + 1, OW), style="other")
    text = "\n".join(problems)
    assert "colour layout is BGR" in text
    assert f"{OH}x{OW}" in text and "expected 41x30" in text
    assert "'style'" in text
    bare = tmp_path / "bare.mlpackage"
    convert(display_model(core, OH, OW), H, W, out_name="Identity").save(str(bare))
    text = "\n".join(verify.check_spec(bare))
    for needle in ("no output named 'stylized'", "author", "license", "shortDescription", "'style'", "'version'"):
        assert needle in text


def test_config_from_params():
    cfg = verify.VerifyConfig.from_params({"frames": 3, "min_psnr": {"mlprogram": 35}})
    assert cfg.frames == 3 and cfg.min_psnr["mlprogram"] == 35.0
    assert cfg.min_psnr["onnx"] == verify.DEFAULT_MIN_PSNR["onnx"]
    assert verify.VerifyConfig.from_params(None) == verify.VerifyConfig()
    with pytest.raises(LivestyleError, match="unknown key"):
        verify.VerifyConfig.from_params({"frame": 3})
    with pytest.raises(LivestyleError, match="unknown format"):
        verify.VerifyConfig.from_params({"min_psnr": {"coreml": 30}})


def test_fit_frame_crops_to_aspect_and_resizes():
    frame = np.zeros((100, 40, 3), np.uint8)
    frame[:, :20] = 255  # left half white: must stay the left half after the centre crop
    out = runners.fit_frame(frame, H, W)
    assert out.shape == (H, W, 3)
    assert out[:, : W // 2 - 1].min() == 255 and out[:, W // 2 + 1 :].max() == 0


def test_unknown_format_and_missing_model(tmp_path):
    with pytest.raises(LivestyleError, match="unknown model format"):
        runners.format_of(tmp_path / "model.pt")
    with pytest.raises(LivestyleError, match="no such"):
        runners.make_runner(tmp_path / "absent.onnx")


def test_save_comparison_png(exported, tmp_path):
    core, paths = exported
    frame = frames(1, H, W, seed=7)[0]
    out = runners.make_runner(paths["mlprogram"])(frame)
    png = tmp_path / "cmp.png"
    verify.save_comparison(png, frame, runners.keras_reference(core)(frame), out, title="tiny mlprogram")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
