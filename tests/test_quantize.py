"""livestyle.convert.quantize and the bench's quantized runtimes: calibrated on photos, checked
against Keras, smaller than the fp32 exports."""

import json

import numpy as np
import pytest

from livestyle.config import NetworkConfig
from livestyle.convert.ort_session import OrtConfig, session
from livestyle.errors import LivestyleError
from livestyle.measure.bench import BenchConfig, bench_style
from livestyle.convert.quantize import (QuantizeConfig, calibration_frames, mlprogram_int8, onnx_int8, read_photos, size_bytes,
                                tflite_variant)
from livestyle.convert.runners import fit_frame, keras_reference, onnx_runner, tflite_runner
from livestyle.convert.verify import compare, psnr

H, W = 48, 64
NET = NetworkConfig(res_blocks=1, width=8)


def _photos():
    from skimage import data

    return [data.astronaut(), data.chelsea(), data.coffee()]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Trained-style folder as the pipeline leaves it: weights, exports, held-out photos."""
    import keras

    from livestyle.convert.export import ExportConfig, export_style, load_transformer
    from livestyle.images import save_png
    from livestyle.model.network import build_transformer

    d = tmp_path_factory.mktemp("quant")
    keras.utils.set_random_seed(0)
    build_transformer(NET, H, W).save_weights(str(d / "w.weights.h5"))
    export_style(d / "w.weights.h5", NET, ExportConfig(sizes=((H, W),), formats=("tflite", "onnx")), "tiny", {}, d)
    (d / "heldout").mkdir()
    for i, p in enumerate(_photos()):
        save_png(d / "heldout" / f"{i:04d}.png", p[::2, ::2])
    return d, load_transformer(d / "w.weights.h5", NET, H, W)


def test_calibration_frames_are_distinct_crops_of_the_photos_at_the_model_size():
    photos = _photos()
    frames = calibration_frames(photos, 6, H, W, min_crop=0.5, seed=0)
    assert len(frames) == 6 and all(f.shape == (H, W, 3) and f.dtype == np.float32 for f in frames)
    assert all(0 <= f.min() and f.max() <= 255 for f in frames)
    # crops, not the whole photo: the first frame differs from the fitted astronaut
    assert psnr(frames[0], fit_frame(photos[0], H, W)) < 30
    assert len({f.tobytes() for f in frames}) == 6
    again = calibration_frames(photos, 6, H, W, min_crop=0.5, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(frames, again))
    with pytest.raises(LivestyleError, match="no held-out photos"):
        calibration_frames([], 2, H, W)


def test_read_photos_names_an_empty_folder(tmp_path):
    with pytest.raises(LivestyleError, match="dvc repro prepare"):
        read_photos(tmp_path)


def test_onnx_int8_is_smaller_and_close_to_keras(tiny, tmp_path):
    d, model = tiny
    calib = calibration_frames(read_photos(d / "heldout"), 4, H, W)
    dst = onnx_int8(d / "tiny.onnx", tmp_path / "int8.onnx", calib)
    import onnx

    ops = {n.op_type for n in onnx.load(str(dst)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ, not a renamed copy
    assert size_bytes(dst) < size_bytes(d / "tiny.onnx")
    frames = [fit_frame(p, H, W).astype(np.float32) for p in _photos()]
    res = compare(onnx_runner(dst), keras_reference(model), frames, 30.0, "onnx_int8")
    assert res["passed"], res
    # and not identical: the int8 copy really rounds (the check could fail)
    exact = compare(onnx_runner(d / "tiny.onnx"), keras_reference(model), frames, 30.0, "onnx")
    assert res["psnr_db"]["min"] < exact["psnr_db"]["min"]


def test_onnx_int8_keeps_the_first_and_last_conv_float(tiny, tmp_path):
    import onnx

    d, _ = tiny
    calib = calibration_frames(read_photos(d / "heldout"), 2, H, W)

    def quantized_convs(path):
        g = onnx.load(str(path)).graph
        made_by = {o: n.op_type for n in g.node for o in n.output}
        convs = [n for n in g.node if n.op_type == "Conv"]
        return [made_by.get(c.input[1]) == "DequantizeLinear" for c in convs]

    ends = quantized_convs(onnx_int8(d / "tiny.onnx", tmp_path / "ends.onnx", calib))
    every = quantized_convs(onnx_int8(d / "tiny.onnx", tmp_path / "all.onnx", calib, float_ends=False))
    assert all(every) and len(every) >= 4
    assert ends == [False] + [True] * (len(ends) - 2) + [False]


@pytest.mark.parametrize("mode", ["int8", "fp16"])
def test_tflite_variants_compute_the_keras_output(tiny, tmp_path, mode):
    d, model = tiny
    calib = calibration_frames(read_photos(d / "heldout"), 4, H, W)
    dst = tflite_variant(model, tmp_path / f"{mode}.tflite", mode, calib)
    assert size_bytes(dst) < size_bytes(d / "tiny.tflite")
    frames = [fit_frame(p, H, W).astype(np.float32) for p in _photos()]
    res = compare(tflite_runner(dst), keras_reference(model), frames, 30.0, mode)
    assert res["passed"], res


def test_ort_settings_reach_the_session(tiny):
    import onnxruntime as ort

    d, _ = tiny
    sess = session(d / "tiny.onnx", 2, OrtConfig.from_params({"graph_optimization": "basic", "execution_mode": "parallel"}))
    opts = sess.get_session_options()
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    assert opts.execution_mode == ort.ExecutionMode.ORT_PARALLEL
    assert opts.intra_op_num_threads == 2 and opts.inter_op_num_threads == 2
    with pytest.raises(LivestyleError, match="graph_optimization"):
        OrtConfig.from_params({"graph_optimization": "max"})
    with pytest.raises(LivestyleError, match="min_psnr"):
        QuantizeConfig.from_params({"min_psnr": -1})


def test_bench_times_and_checks_quantized_copies(tiny, tmp_path):
    d, _ = tiny
    cfg = BenchConfig.from_params({"runs": 3, "size": [H, W], "runtimes": ["onnx", "onnx_int8"],
                                   "quantize": {"calibration_frames": 3, "min_psnr": 30.0}})
    result = bench_style(d, "tiny", d / "w.weights.h5", NET, cfg, tmp_path / "out", heldout_dir=d / "heldout")
    q = json.loads((tmp_path / "out" / "bench.json").read_text())["host"]["onnx_int8"]
    assert q["runs_timed"] == 2 and q["verified"] is True and q["psnr_db"]["min"] >= 30
    assert q["size_bytes"] < q["fp32_size_bytes"]
    assert "Quantized copies" in (tmp_path / "out" / "bench.md").read_text()
    # the equal-output headline never names a quantized copy; the quantized one does
    cfg = BenchConfig.from_params({**{"runs": 3, "size": [H, W], "runtimes": ["onnx", "onnx_int8", "torch"], "torch_blocks": [1]},
                                   "quantize": {"calibration_frames": 3}})
    tc = bench_style(d, "tiny", d / "w.weights.h5", NET, cfg, tmp_path / "out3", heldout_dir=d / "heldout")["torch_comparison"]
    assert tc["fastest"]["runtime"] == "onnx" and tc["fastest_quantized"]["runtime"] == "onnx_int8"
    # no held-out photos: a recorded skip, the rest of the bench still runs
    result = bench_style(d, "tiny", d / "w.weights.h5", NET, cfg, tmp_path / "out2", heldout_dir=tmp_path / "none")
    assert "held-out" in result["host"]["onnx_int8"]["skipped"] and result["host"]["onnx"]["median_ms"] > 0


def test_coreml_8bit_weights_are_smaller_and_run_in_the_numpy_executor(tmp_path):
    """linear_quantize_weights works off macOS; mil_exec evaluates its dequantize op."""
    import keras

    from livestyle.convert.export import display_model, export_coreml
    from livestyle.convert.mil_exec import MilProgram
    from livestyle.model.network import build_transformer

    keras.utils.set_random_seed(0)
    fp16 = export_coreml(display_model(build_transformer(NET, H, W), (2 * H, 2 * W)), "mlprogram", tmp_path / "f.mlpackage", {})
    int8 = mlprogram_int8(fp16, tmp_path / "q.mlpackage")
    assert size_bytes(int8) < size_bytes(fp16)
    prog = MilProgram.load(int8)
    assert "constexpr_affine_dequantize" in prog.op_types and not prog.unsupported_ops()
    frame = fit_frame(_photos()[0], H, W).astype(np.float32)
    a, b = MilProgram.load(fp16).run_image(frame), prog.run_image(frame)
    assert b.shape == (2 * H, 2 * W, 3)
    assert 35 < psnr(np.clip(a, 0, 255), np.clip(b, 0, 255)) < 120  # close, and not the same weights
