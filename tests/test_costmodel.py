"""livestyle.measure.costmodel: counts from the Core ML program, and the A12 calibration point."""

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from coremltools.converters.mil import Builder as mb  # noqa: E402

from livestyle.errors import LivestyleError  # noqa: E402
from livestyle.measure import costmodel  # noqa: E402


def _conv_program(c_in=3, c_out=8, k=3, hw=(16, 20), groups=1, bias=True):
    w = np.random.default_rng(0).normal(size=(c_out, c_in // groups, k, k)).astype(np.float32)
    b = np.arange(c_out, dtype=np.float32) + 1

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, c_in, *hw))])
    def prog(x):
        return mb.conv(x=x, weight=w, bias=b if bias else None, groups=groups, pad_type="valid")

    return prog


def test_single_conv_flops_params_bytes_match_the_analytic_count():
    cost = costmodel.program_cost(_conv_program())
    h_out, w_out = 14, 18
    assert cost.flops == 2 * h_out * w_out * 8 * 3 * 3 * 3 + h_out * w_out * 8  # MACs x2 + bias adds
    assert cost.params == 8 * 3 * 3 * 3 + 8
    assert cost.weight_bytes == 4 * cost.params  # stored fp32
    assert cost.activation_bytes == 4 * 8 * h_out * w_out
    assert cost.op_counts() == {"conv": 1}


def test_depthwise_conv_counts_one_input_channel_per_output():
    cost = costmodel.program_cost(_conv_program(c_in=8, c_out=8, groups=8, bias=False))
    assert cost.flops == 2 * 14 * 18 * 8 * 3 * 3
    assert cost.params == 8 * 3 * 3


def test_conv_transpose_counts_per_input_position():
    w = np.ones((4, 6, 3, 3), np.float32)  # (C_in, C_out, kh, kw)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4, 5, 7))])
    def prog(x):
        return mb.conv_transpose(x=x, weight=w, strides=[2, 2])

    assert costmodel.program_cost(prog).flops == 2 * 5 * 7 * 4 * 6 * 3 * 3


def test_peak_activation_follows_liveness():
    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4, 8, 8))])
    def prog(x):
        a = mb.relu(x=x)  # x dies here
        b = mb.relu(x=a)
        return mb.add(x=a, y=b)  # a, b and the output live at once

    cost = costmodel.program_cost(prog)
    one = 4 * 8 * 8 * 4
    assert cost.peak_activation_bytes == 3 * one
    assert cost.flops == 3 * 4 * 8 * 8


def test_keras_conv_converted_to_fp16_mlprogram_matches_analytic_count():
    import coremltools as ct
    import keras

    inp = keras.Input((16, 20, 3), batch_size=1)
    conv = keras.layers.Conv2D(8, 3, padding="valid")
    model = keras.Model(inp, conv(inp))
    kernel, _ = conv.get_weights()
    conv.set_weights([kernel, np.linspace(0.5, 1.5, 8).astype(np.float32)])  # a bias that cannot be dropped
    ml = ct.convert(model, source="tensorflow", convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
                    inputs=[ct.TensorType(shape=(1, 16, 20, 3))], compute_precision=ct.precision.FLOAT16)
    cost = costmodel.program_cost(costmodel.load_program(ml))
    assert cost.flops == 2 * 14 * 18 * 8 * 27 + 14 * 18 * 8
    assert cost.params == 8 * 27 + 8
    assert cost.weight_bytes == 2 * cost.params  # fp16 as stored


def test_separable_blocks_cost_fewer_flops_than_full():
    from livestyle.config import NetworkConfig
    from livestyle.convert.export import convert_coreml, display_model
    from livestyle.model.network import build_transformer

    def cost(separable):
        m = build_transformer(NetworkConfig(res_blocks=2, width=8, separable=separable), 32, 24)
        return costmodel.program_cost(costmodel.load_program(convert_coreml(display_model(m, (64, 48)), "mlprogram", 32, 24)))

    full, sep = cost(False), cost(True)
    assert sep.flops < full.flops
    assert sep.params < full.params
    assert full.op_counts()["upsample_bilinear"] == 1  # the in-model display upscale is costed


@pytest.fixture(scope="module")
def reference():
    return costmodel.reference_cost()


def _params_profiles():
    from pathlib import Path

    import yaml

    path = Path(__file__).resolve().parents[1] / "params.yaml"
    if path.exists():
        section = (yaml.safe_load(path.read_text()) or {}).get("bench") or {}
        if section.get("profiles"):
            return {"params.yaml": costmodel.profiles_from_params(section["profiles"])}
    return {}


def test_calibration_point_holds(reference):
    """The article's network at 480x853 (+1920x1080 upscale) comes out at its measured 66 ms
    on the profiles fitted to that point alone (params' a12_gpu is fitted on several
    published points instead: test_params_gpu_profile_is_the_recorded_fit)."""
    target = costmodel.CALIBRATION["target_ms"]
    params = _params_profiles()
    for where, profiles in {"defaults": costmodel.default_profiles(), **params}.items():
        for name in ("a12_gpu", "a12_ane") if where == "defaults" else ("a12_ane",):
            est = costmodel.estimate(reference, profiles[name])
            assert est["latency_ms_estimate"] == pytest.approx(target, rel=0.05), (where, name)
            assert est["meets_budget_estimate"]


def test_params_gpu_profile_is_the_recorded_fit():
    """params.yaml's a12_gpu carries the multi-point fit scripts/a12_calibrate.py wrote
    (data/a12/fit.json), not a hand-tuned value."""
    import json
    from pathlib import Path

    fit_path = Path(__file__).resolve().parents[1] / "data" / "a12" / "fit.json"
    params = _params_profiles()
    if not params or not fit_path.exists():
        pytest.skip("no params.yaml profiles or no recorded fit")
    fit = json.loads(fit_path.read_text())["fits"]["exact points, a12_gpu, efficiency + dispatch"]["fit"]
    gpu = params["params.yaml"]["a12_gpu"]
    assert gpu.efficiency == pytest.approx(fit["efficiency"], rel=1e-3)
    assert gpu.dispatch_s == pytest.approx(fit["dispatch_s"], rel=1e-2)


def test_calibrate_inverts_estimate_and_refuses_the_impossible(reference):
    prof = costmodel.default_profiles()["a12_gpu"]
    eff = costmodel.calibrate(reference, prof, 120.0)
    assert costmodel.estimate(reference, prof, efficiency=eff)["latency_ms_estimate"] == pytest.approx(120.0, rel=1e-3)
    with pytest.raises(ValueError, match="memory-bound floor"):
        costmodel.calibrate(reference, prof, 1.0)


def test_estimate_keys_are_labelled_and_budget_verdict_flips():
    cost = costmodel.program_cost(_conv_program())
    slow = costmodel.DeviceProfile("slow", peak_flops=1e3, bandwidth=1e3)
    fast = costmodel.DeviceProfile("fast", peak_flops=1e15, bandwidth=1e15)
    for prof, meets in ((slow, False), (fast, True)):
        est = costmodel.estimate(cost, prof)
        figures = {k for k, v in est.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        assert all(k.endswith("_estimate") for k in figures - {"budget_ms", "efficiency"})
        assert est["meets_budget_estimate"] is meets


def test_bad_inputs_name_the_file(tmp_path):
    with pytest.raises(LivestyleError, match="no such Core ML model"):
        costmodel.load_program(tmp_path / "missing.mlpackage")
    with pytest.raises(LivestyleError, match="bandwidth"):
        costmodel.DeviceProfile.from_params("x", {"peak_flops": 1e9})
