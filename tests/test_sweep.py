"""livestyle.measure.sweep: one row per architecture variant, with host timings and estimates;
livestyle.measure.sweep_quality: trained weights, quality against the peer, the fronts."""

import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from livestyle.config import NetworkConfig  # noqa: E402
from livestyle.errors import LivestyleError  # noqa: E402
from livestyle.measure.sweep import SweepConfig, add_quality, markdown, plot, quality_markdown, run_sweep  # noqa: E402
from livestyle.provenance import file_sha256  # noqa: E402
from livestyle.measure.sweep_quality import (  # noqa: E402
    MANIFEST, SweepQualityConfig, TrainedArch, at_peer_quality, fronts, load_fp16, load_trained, pareto, save_fp16, trained_architectures, vs_peer,
)

ROOT = Path(__file__).resolve().parents[1]
TINY = NetworkConfig(res_blocks=1, width=4)


def test_tiny_sweep_has_one_row_per_variant(tmp_path, capsys):
    cfg = SweepConfig.from_params({"res_blocks": [1, 2], "separable": [False, True], "widths": [4], "runs": 2,
                                   "size": [16, 24], "display": [32, 48], "runtimes": ["keras", "tflite", "onnx"]})
    result = run_sweep(cfg, tmp_path)
    rows = result["rows"]
    assert [(r["res_blocks"], r["separable"]) for r in rows] == [(1, False), (2, False), (1, True), (2, True)]
    for r in rows:
        for key in ("keras_median_ms", "tflite_median_ms", "onnx_median_ms", "a12_gpu_latency_ms_estimate",
                    "a12_ane_latency_ms_estimate"):
            assert r[key] > 0, key
        assert r["trained"] is None and r["quality"] is None
    by = {(r["res_blocks"], r["separable"]): r for r in rows}
    assert by[(2, False)]["gflops"] > by[(1, False)]["gflops"]  # a block costs something
    assert by[(2, True)]["gflops"] < by[(2, False)]["gflops"]  # separable is cheaper on paper
    assert json.loads((tmp_path / "sweep.json").read_text())["rows"] == json.loads(json.dumps(rows))
    md = (tmp_path / "sweep.md").read_text()
    assert md.count("\n| ") == 1 + len(rows)  # header + one line per variant
    assert "(estimate)" in md
    # no trained architectures (the dataclass default): latency only, said once, no front
    assert result["quality"] == {"absent": "no trained architectures (sweep.trained is empty)"}
    assert result["fronts"] == {} and "Not measured" in md
    assert capsys.readouterr().out.count("quality not measured") == 1
    assert (tmp_path / "sweep.png").stat().st_size > 1000


def test_sweep_config_checks_and_shares_bench_profiles():
    with pytest.raises(LivestyleError, match="unknown"):
        SweepConfig.from_params({"runtimes": ["coreml"]})
    with pytest.raises(LivestyleError, match="sweep.quality.tolerance"):
        SweepConfig.from_params({"quality": {"tolerance": -1}})
    shared = {"p": {"peak_flops": 1e12, "bandwidth": 1e10}}
    assert list(SweepConfig.from_params({}, profiles=shared).profiles) == ["p"]
    assert len(SweepConfig().variants()) == 10  # the article's grid: 5 depths x full/separable
    assert SweepConfig.from_params({"quality": {"photos": ["a.jpg", "b.jpg"]}}).quality.photos == ("a.jpg", "b.jpg")


# ---------------------------------------------------------------- fronts


def _row(arch, gpu_ms, kib, score, ane_ms=None):
    return {"arch": arch, "trained": f"t_{arch}", "weight_bytes": kib * 1024, "a12_gpu_latency_ms_estimate": gpu_ms,
            "a12_ane_latency_ms_estimate": gpu_ms / 2 if ane_ms is None else ane_ms,
            "quality": {"vs_peer": {"texture": score, "colour": score, "content": 0.5, "score": score}}}


def test_pareto_keeps_points_nothing_beats():
    pts = [(10, 2.0, "a"), (20, 1.5, "b"), (25, 1.6, "c"), (30, 1.0, "d"), (30, 1.2, "e"), (10, 2.0, "f")]
    assert pareto(pts) == ["a", "b", "d"]  # c is beaten by b, e by d, f ties a (first kept)


def test_fronts_smallest_at_peer_quality_and_recommendations():
    rows = [_row("big", 60.0, 3000, 0.95), _row("mid", 40.0, 1500, 1.05), _row("small", 30.0, 500, 1.30),
            _row("slow_bad", 70.0, 4000, 1.40), {"arch": "grid_only", "weight_bytes": 1, "a12_gpu_latency_ms_estimate": 1.0,
                                                 "a12_ane_latency_ms_estimate": 1.0, "quality": None}]
    out = fronts(rows, tolerance=0.10, fps=(15, 30))
    gpu, size = out["fronts"]["a12_gpu_latency"], out["fronts"]["size"]
    assert gpu["members"] == ["small", "mid", "big"] and size["members"] == ["small", "mid", "big"]
    assert gpu["cost"] == "a12_gpu_latency_ms_estimate" and size["cost"] == "weight_bytes"
    assert gpu["smallest_at_peer_quality"] == "mid" and size["smallest_at_peer_quality"] == "mid"  # 1.05 <= 1.10
    rec = out["recommended"]["a12_gpu"]
    assert rec["15"]["arch"] == "big" and rec["15"]["vs_peer"] == 0.95  # best quality within 66.7 ms
    assert rec["30"]["arch"] is None and "fastest at peer quality, mid, is 40.0 ms" in rec["30"]["why"]
    assert out["recommended"]["a12_ane"]["30"]["arch"] == "big"  # 30 ms on this profile
    # a tighter tolerance: nothing is at peer quality, and every answer says how close it came
    strict = fronts(rows, tolerance=0.0, fps=(15,))
    assert strict["fronts"]["size"]["smallest_at_peer_quality"] == "big"
    none = fronts(rows[1:], tolerance=0.0, fps=(15, 30))
    assert none["fronts"]["size"]["smallest_at_peer_quality"] is None
    assert "closest is mid at 1.05x" in none["fronts"]["size"]["note"]
    rec = none["recommended"]["a12_gpu"]
    assert rec["15"]["arch"] is None and "no architecture is at peer quality" in rec["15"]["why"]
    assert rec["15"]["closest_in_budget"] == {"arch": "mid", "trained": "t_mid", "latency_ms_estimate": 40.0, "vs_peer": 1.05}
    assert rec["30"]["closest_in_budget"] == {"arch": "small", "trained": "t_small", "latency_ms_estimate": 30.0, "vs_peer": 1.3}


def test_a_blob_rules_a_network_out_of_peer_quality_whatever_its_score():
    peer = {"texture": 0.36, "colour": 5.7, "content": 0.21, "flat_area": 0.0}
    clean = vs_peer({"texture": 0.38, "colour": 4.8, "content": 0.23, "flat_area": 0.0}, peer, flat_tolerance=0.01)
    blob = vs_peer({"texture": 0.34, "colour": 5.7, "content": 0.20, "flat_area": 0.043}, peer, flat_tolerance=0.01)
    assert not clean["blob"] and at_peer_quality(clean, 0.10)
    assert blob["score"] < clean["score"] and blob["blob"] and not at_peer_quality(blob, 0.10)
    rows = [_row("clean", 40.0, 140, clean["score"]), _row("blobby", 50.0, 960, blob["score"])]
    rows[0]["quality"]["vs_peer"], rows[1]["quality"]["vs_peer"] = clean, blob
    out = fronts(rows, tolerance=0.10, fps=(15,))
    assert out["recommended"]["a12_gpu"]["15"]["arch"] == "clean"  # the better score has a blob
    assert out["fronts"]["size"]["smallest_at_peer_quality"] == "clean"


# ---------------------------------------------------------------- trained weights


def _tiny_trained(folder: Path, seed: int = 3) -> TrainedArch:
    import keras

    from livestyle.model.network import build_transformer

    keras.utils.set_random_seed(seed)
    model = build_transformer(TINY, 48, 64, seed=seed)
    sha = save_fp16(model, folder / "tiny.npz")
    entry = {"file": "tiny.npz", "res_blocks": 1, "width": 4, "separable": False, "sha256": sha}
    (folder / MANIFEST).write_text(json.dumps({"architectures": {"tiny": entry}}))
    return trained_architectures(folder)[0]


def test_fp16_weights_round_trip(tmp_path):
    from livestyle.convert.verify import psnr
    from livestyle.model.network import build_transformer

    arch = _tiny_trained(tmp_path)
    assert arch.net == TINY and arch.sha256 == file_sha256(tmp_path / "tiny.npz")
    original = build_transformer(TINY, 48, 64, seed=3)
    copy = load_trained(arch, 48, 64)
    x = np.random.default_rng(0).uniform(0, 255, (1, 48, 64, 3)).astype(np.float32)
    assert psnr(original(x, training=False), copy(x, training=False)) > 40
    assert save_fp16(original, tmp_path / "again.npz") == arch.sha256  # no time stamps in the bytes
    with pytest.raises(LivestyleError, match="do not match the network"):
        load_fp16(build_transformer(NetworkConfig(res_blocks=2, width=4), 16, 16), arch.path)
    with pytest.raises(LivestyleError, match="sha256 differs"):
        load_trained(TrainedArch("tiny", TINY, arch.path, "0" * 64), 16, 16)


def test_trained_architectures_are_scored_with_the_inference_input_levels(tmp_path, monkeypatch):
    # the sweep scores a network as it ships: the stage passes network.input_levels on
    from livestyle.model.network import build_transformer
    from stages import sweep as stage

    arch = _tiny_trained(tmp_path)
    x = np.random.default_rng(0).uniform(0, 255, (1, 48, 64, 3)).astype(np.float32)
    leveled = load_trained(arch, 48, 64, (16, 235))
    original = build_transformer(TINY, 48, 64, seed=3)
    expected = np.asarray(original(16 + x * (235 - 16) / 255, training=False))
    np.testing.assert_allclose(np.asarray(leveled(x, training=False)), expected, atol=0.5)  # fp16 weights
    seen = {}
    monkeypatch.setattr(stage, "run_sweep", lambda cfg, out: seen.setdefault("cfg", cfg) and {"rows": [], "fronts": {}})
    stage.main([])
    from livestyle.config import load_params

    assert seen["cfg"].quality.input_levels == tuple(load_params()["network"]["input_levels"])


def test_committed_trained_architectures_load_and_match_their_manifest():
    folder = ROOT / "data" / "sweep_trained"
    manifest = json.loads((folder / MANIFEST).read_text())["architectures"]
    archs = trained_architectures(folder)
    assert len(archs) >= 8 and sum((folder / e["file"]).stat().st_size for e in manifest.values()) < 10 << 20
    for a in archs:
        e = manifest[a.name]
        model = load_trained(a, 16, 16)  # checks the sha256
        assert model.count_params() == e["params"], a.name
        assert e["fp16_psnr_db_vs_fp32"] > 40 and e["steps"] == 3000 and (ROOT / e["recipe"]).is_file()
        assert tuple(e["input_levels"]) == a.input_levels == (0, 255)  # trained on overexposed crops


# ---------------------------------------------------------------- quality


def _quality_inputs(folder: Path) -> dict:
    from PIL import Image

    rng = np.random.default_rng(1)
    paths = {}
    for name, shape in (("painting", (80, 96)), ("photo", (48, 64)), ("reference", (48, 64))):
        paths[name] = str(folder / f"{name}.png")
        Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8)).save(paths[name])
    return {"painting": paths["painting"], "photos": [paths["photo"]], "reference": paths["reference"]}


def test_missing_quality_inputs_are_one_line_not_a_crash(tmp_path, capsys):
    arch = _tiny_trained(tmp_path)
    cfg = SweepQualityConfig.from_params({**_quality_inputs(tmp_path), "painting": str(tmp_path / "udnie.jpg")})
    rows = [{"arch": "b1_full_w4", "trained": "tiny", "quality": None}]
    quality = add_quality(rows, [arch], cfg)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and str(tmp_path / "udnie.jpg") in out[0] and "data/quality_inputs/README.md" in out[0]
    assert "absent" in quality and rows[0]["quality"] is None
    assert "Not measured: missing" in "\n".join(quality_markdown({"quality": quality}))


def test_quality_rows_fronts_markdown_and_plot(tmp_path):
    arch = _tiny_trained(tmp_path)
    cfg = SweepQualityConfig.from_params(_quality_inputs(tmp_path))
    rows = [dict(_row("b1_full_w4", 20.0, 40, 0), trained="tiny", quality=None, res_blocks=1, separable=False, width=4,
                 gflops=0.1, params=9432, keras_median_ms=3.0, a12_gpu_meets_budget_estimate=True),
            dict(_row("b2_full_w4", 30.0, 60, 0), trained=None, quality=None, res_blocks=2, separable=False, width=4,
                 gflops=0.2, params=12000, keras_median_ms=4.0, a12_gpu_meets_budget_estimate=True)]
    quality = add_quality(rows, [arch], cfg)
    q = rows[0]["quality"]
    assert rows[1]["quality"] is None and set(q) == {"texture", "colour", "content", "flat_area", "vs_peer"}
    assert all(np.isfinite(q[k]) for k in ("texture", "colour", "content"))
    assert set(quality["peer"]) == {"texture", "colour", "content", "flat_area"} and quality["photo"]["content"] == 0.0
    result = {"rows": rows, "quality": quality, "size": {"height": 16, "width": 24}, "budget": {"fps": 15, "ms": 66.67},
              "protocol": {"runs": 2, "drop_first": 1}, **fronts(rows, cfg.tolerance, cfg.fps)}
    assert result["fronts"]["size"]["members"] == ["b1_full_w4"]
    md = markdown(result)
    header = next(line for line in md.splitlines() if line.startswith("| blocks"))
    rule = md.splitlines()[md.splitlines().index(header) + 1]
    assert rule.count("|") == header.count("|") and rule.startswith("|---|---|---|---|---:|")  # one cell a column
    assert all(c in header for c in ("| trained |", "| texture |", "| colour |", "| content |", "| vs peer |", "| at peer |"))
    assert "| peer (reference.png) |" in md and "| photo (unstylized) |" in md
    assert "**Rule.**" in md and "Smallest at peer quality" in md and "### Recommended" in md
    assert plot(result, tmp_path / "sweep.png").stat().st_size > 1000
