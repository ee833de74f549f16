"""livestyle.measure.a12_fit: the published points, the vectorised fit, leave-one-out."""

import dataclasses
from pathlib import Path

import pytest

from livestyle.errors import LivestyleError
from livestyle.measure import a12_fit, costmodel

POINTS = Path(__file__).resolve().parents[1] / "data" / "a12" / "points.yaml"
PROFILE = costmodel.default_profiles()["a12_ane"]


def test_published_points_name_their_sources_and_several_networks():
    points = a12_fit.load_points(POINTS)
    assert len(points) >= 5
    assert all(p.source.startswith("https://") and p.latency_ms > 0 for p in points)
    assert len({p.key for p in points}) >= 5  # several distinct networks, not one point repeated
    assert any("transformer" in p.network for p in points)


def test_bad_points_name_the_file(tmp_path):
    bad = tmp_path / "points.yaml"
    bad.write_text("points:\n  - {name: a, device: XS, latency_ms: 3, source: my notes, network: {keras_app: MobileNet, input: [224, 224]}}\n")
    with pytest.raises(LivestyleError, match="source must be a URL"):
        a12_fit.load_points(bad)
    bad.write_text("points:\n  - {name: a, device: XS, latency_ms: 3}\n")
    with pytest.raises(LivestyleError, match="missing source, network"):
        a12_fit.load_points(bad)


def _op(name, flops, kib, fused=False):
    """A conv-like op: its FLOPs, and KiB in and out."""
    return costmodel.OpCost(name, "relu" if fused else "conv", int(flops), 0, 0, kib * 512, kib * 512, (1,), fused)


@pytest.fixture(scope="module")
def tiny_costs():
    """Programs where compute, memory and dispatch each dominate somewhere (else a
    parameter is free): many small ops, few big ones, a memory-bound one."""
    return {
        "many_small": costmodel.ProgramCost([_op(f"o{i}", 2e6, 16) for i in range(200)], 0, 0, []),
        "few_big": costmodel.ProgramCost([_op(f"o{i}", 2e10, 512) for i in range(12)], 0, 0, []),
        "memory": costmodel.ProgramCost([_op(f"o{i}", 1e7, 64 * 1024) for i in range(10)], 0, 0, []),
        # a second of each kind: leave-one-out must still see what every parameter does
        "many_small_2": costmodel.ProgramCost([_op(f"o{i}", 1e6, 8) for i in range(120)], 0, 0, []),
        "few_big_2": costmodel.ProgramCost([_op(f"o{i}", 4e10, 1024) for i in range(5)], 0, 0, []),
        "mixed": costmodel.ProgramCost([_op(f"o{i}", 5e9 if i % 2 else 1e6, 4096, fused=i % 3 == 0) for i in range(60)], 0, 0, []),
    }


def _points(costs, eff, dispatch, scale=None):
    scale = scale or {}
    return [a12_fit.Point(k, "XS", a12_fit.predict_ms(c, PROFILE, eff, dispatch) * scale.get(k, 1.0), "https://x", {"k": k})
            for k, c in costs.items()]


def test_vectorised_curve_is_costmodels_estimate(tiny_costs):
    import numpy as np

    for cost in tiny_costs.values():
        effs = np.array([0.05, 0.5, 3.0])
        curve, n = a12_fit._curve(cost, PROFILE, effs)
        for e, ms in zip(effs, curve):
            prof = dataclasses.replace(PROFILE, efficiency=float(e), dispatch_s=2e-5)
            assert ms + n * 2e-5 * 1e3 == pytest.approx(costmodel.estimate(cost, prof)["latency_ms_estimate"], rel=1e-3, abs=1e-3)


def test_fit_recovers_the_parameters_that_made_the_points(tiny_costs):
    points = _points(tiny_costs, 0.3, 2e-5)
    f = a12_fit.fit(points, tiny_costs, PROFILE)
    assert f["efficiency"] == pytest.approx(0.3, rel=0.05)
    assert f["dispatch_s"] == pytest.approx(2e-5, rel=0.2)
    loo = a12_fit.leave_one_out(points, tiny_costs, PROFILE)
    assert max(abs(r["error_pct"]) for r in loo) < 5


def test_leave_one_out_exposes_a_point_the_others_do_not_explain(tiny_costs):
    points = _points(tiny_costs, 0.3, 2e-5, scale={"mixed": 4.0})
    loo = {r["name"]: r for r in a12_fit.leave_one_out(points, tiny_costs, PROFILE)}
    assert loo["mixed"]["error_pct"] < -60  # predicted from the others: a quarter of its published figure
    assert max(abs(r["error_pct"]) for n, r in loo.items() if n != "mixed") > 5  # and it pulls their fits off too


@pytest.mark.slow
def test_costs_of_a_real_network_survive_the_cache(tmp_path):
    """A point's network converted to an mlprogram and costed; the cache gives it back."""
    points = [a12_fit.Point("t", "XS", 10.0, "https://x", {"transformer": {"res_blocks": 1, "width": 4}, "input": [32, 48],
                                                          "display": [64, 96]})]
    fresh = a12_fit.costs(points, tmp_path / "c.json", progress=False)["t"]
    assert fresh.flops > 0 and fresh.op_counts()["upsample_bilinear"] == 1
    cached = a12_fit.costs(points, tmp_path / "c.json", progress=False)["t"]
    assert costmodel.estimate(cached, PROFILE) == costmodel.estimate(fresh, PROFILE)


def test_efficiency_never_exceeds_the_peak(tiny_costs):
    """Points only a unit faster than its peak could make: the fit stops at the bound."""
    points = _points(tiny_costs, 3.0, 2e-5)
    assert a12_fit.fit(points, tiny_costs, PROFILE)["efficiency"] <= 1.0
    assert a12_fit.fit(points, tiny_costs, PROFILE, max_efficiency=10.0)["efficiency"] == pytest.approx(3.0, rel=0.05)
