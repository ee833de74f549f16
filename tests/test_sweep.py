"""livestyle.sweep: one row per architecture variant, with host timings and estimates."""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

from livestyle.errors import LivestyleError  # noqa: E402
from livestyle.sweep import SweepConfig, run_sweep  # noqa: E402


def test_tiny_sweep_has_one_row_per_variant(tmp_path):
    cfg = SweepConfig.from_params({"res_blocks": [1, 2], "separable": [False, True], "widths": [4], "runs": 2,
                                   "size": [16, 24], "display": [32, 48], "runtimes": ["keras", "tflite", "onnx"]})
    result = run_sweep(cfg, tmp_path)
    rows = result["rows"]
    assert [(r["res_blocks"], r["separable"]) for r in rows] == [(1, False), (2, False), (1, True), (2, True)]
    for r in rows:
        for key in ("keras_median_ms", "tflite_median_ms", "onnx_median_ms", "a12_gpu_latency_ms_estimate",
                    "a12_ane_latency_ms_estimate"):
            assert r[key] > 0, key
    by = {(r["res_blocks"], r["separable"]): r for r in rows}
    assert by[(2, False)]["gflops"] > by[(1, False)]["gflops"]  # a block costs something
    assert by[(2, True)]["gflops"] < by[(2, False)]["gflops"]  # separable is cheaper on paper
    assert json.loads((tmp_path / "sweep.json").read_text())["rows"] == json.loads(json.dumps(rows))
    md = (tmp_path / "sweep.md").read_text()
    assert md.count("\n| ") == 1 + len(rows)  # header + one line per variant
    assert "(estimate)" in md
    assert (tmp_path / "sweep.png").stat().st_size > 1000


def test_sweep_config_checks_and_shares_bench_profiles():
    with pytest.raises(LivestyleError, match="unknown"):
        SweepConfig.from_params({"runtimes": ["coreml"]})
    shared = {"p": {"peak_flops": 1e12, "bandwidth": 1e10}}
    assert list(SweepConfig.from_params({}, profiles=shared).profiles) == ["p"]
    assert len(SweepConfig().variants()) == 10  # the article's grid: 5 depths x full/separable
