"""livestyle.measure.bench: the article's protocol, and the report people read."""

import json
import os
import platform

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from livestyle.config import NetworkConfig  # noqa: E402
from livestyle.errors import LivestyleError  # noqa: E402
from livestyle.measure.bench import BenchConfig, bench_style, summarize, time_runs  # noqa: E402

H, W = 24, 32  # tiny model size: the protocol does not depend on it
NET = NetworkConfig(res_blocks=1, width=4)


def test_protocol_drops_warmup_and_computes_statistics_on_a_fake_runner():
    durations = iter([0.900, 0.010, 0.020, 0.030, 0.040, 0.050])  # first run: warm-up outlier
    now = [0.0]
    calls = []

    def runner():
        calls.append(1)
        now[0] += next(durations)

    times = time_runs(runner, 6, clock=lambda: now[0])
    assert len(calls) == 6
    assert times == pytest.approx([900, 10, 20, 30, 40, 50])
    stats = summarize(times, drop_first=1)
    assert stats["runs_timed"] == 5
    assert stats["median_ms"] == pytest.approx(30)
    assert stats["p90_ms"] == pytest.approx(46)  # linear interpolation between 40 and 50
    assert stats["mean_ms"] == pytest.approx(30)
    assert stats["fps"] == pytest.approx(1000 / 30, rel=1e-3)
    assert stats["dropped_ms"] == pytest.approx([900])
    assert stats["meets_budget"] is True  # 30 ms <= 66.7 ms
    assert summarize([900, 100, 100], 1)["meets_budget"] is False


def test_config_rejects_what_cannot_be_benchmarked():
    with pytest.raises(LivestyleError, match="drop_first"):
        BenchConfig.from_params({"runs": 1, "drop_first": 1})
    with pytest.raises(LivestyleError, match="unknown"):
        BenchConfig.from_params({"runtimes": ["keras", "tensorrt"]})
    cfg = BenchConfig.from_params({"size": [853, 480], "profiles": {"p": {"peak_flops": 1e12, "bandwidth": 1e10}}})
    assert cfg.size == (853, 480) and list(cfg.profiles) == ["p"]


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    import keras

    from livestyle.convert.export import display_model, export_coreml, export_onnx, export_tflite
    from livestyle.model.network import build_transformer

    d = tmp_path_factory.mktemp("export")
    keras.utils.set_random_seed(0)
    model = build_transformer(NET, H, W)
    model.save_weights(str(d / "w.weights.h5"))
    export_coreml(display_model(model, (2 * H, 2 * W)), "mlprogram", d / "tiny.mlpackage", {})
    export_tflite(model, d / "tiny.tflite")
    export_onnx(model, d / "tiny.onnx")
    return d


def test_bench_style_reports_every_runtime_estimates_and_skips(export_dir, tmp_path):
    (export_dir / "tiny.onnx").rename(export_dir / "hidden.onnx")  # a missing format is a skip, not a crash
    try:
        cfg = BenchConfig.from_params({"runs": 3, "drop_first": 1, "size": [H, W],
                                       "runtimes": ["keras", "tflite", "onnx", "coreml"]})
        result = bench_style(export_dir, "tiny", export_dir / "w.weights.h5", NET, cfg, tmp_path)
    finally:
        (export_dir / "hidden.onnx").rename(export_dir / "tiny.onnx")

    on_disk = json.loads((tmp_path / "bench.json").read_text())
    assert on_disk == json.loads(json.dumps(result))
    for rt in ("keras", "tflite"):
        assert on_disk["host"][rt]["runs_timed"] == 2
        assert on_disk["host"][rt]["median_ms"] > 0
    assert "no onnx model" in on_disk["host"]["onnx"]["skipped"]
    if platform.system() != "Darwin":
        assert "macOS" in on_disk["host"]["coreml"]["skipped"]
    for prof in ("a12_gpu", "a12_ane"):
        est = on_disk["a12_estimate"][prof]
        assert est["latency_ms_estimate"] > 0 and isinstance(est["meets_budget_estimate"], bool)
    assert on_disk["cost"]["flops"] > 0
    md = (tmp_path / "bench.md").read_text()
    assert "(estimate)" in md and "skipped" in md
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_weights_name_the_file(export_dir, tmp_path):
    cfg = BenchConfig.from_params({"runs": 2, "size": [H, W], "runtimes": ["keras"]})
    with pytest.raises(LivestyleError, match="nope.weights.h5"):
        bench_style(export_dir, "tiny", tmp_path / "nope.weights.h5", NET, cfg, tmp_path)


def test_tflite_and_onnx_runners_compute_the_keras_output(export_dir):
    """Timing the wrong thing is worse than not timing: the runners must run the model."""
    from livestyle.measure.bench import bench_input, keras_runner, onnx_runner, tflite_runner

    x = bench_input(H, W)
    ref = np.asarray(keras_runner(export_dir / "w.weights.h5", NET, x, 2)())
    for make in (tflite_runner, onnx_runner):
        out = make(export_dir / f"tiny.{'tflite' if make is tflite_runner else 'onnx'}", x, 2)()
        out = np.asarray(out[0] if isinstance(out, list) else out)
        assert out.shape == ref.shape
        assert np.abs(out - ref).max() < 0.5
