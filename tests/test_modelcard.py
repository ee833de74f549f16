"""Model card: renders every section from stage JSONs, labels estimates, survives missing keys."""

from __future__ import annotations

import json

import pytest

from livestyle.release.bundle import StyleArtifacts
from livestyle.release.modelcard import build_card, flatten, fmt, psnr_by_format, render_bench_markdown, render_markdown
from test_bundle import fake_style


def _write(art: StyleArtifacts, stage: str, obj) -> None:
    path = {"train": art.train_json, "verify": art.verify_json, "bench": art.bench_json}[stage]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def test_full_card_has_every_section(tmp_path):
    art = fake_style(tmp_path, "mosaic")
    _write(art, "bench", {
        "input": [853, 480],
        "runtimes": {"keras": {"median_ms": 590.0, "p90_ms": 610.0, "runs_ms": [590.0] * 99},
                     "tflite": {"median_ms": 300.25}},
        "cost_model": {"flops": 12_345_678_901, "weight_bytes": 400_000},
        "estimates": {"a12_gpu": {"ms": 66.0, "fps": 15.15}, "a12_ane": {"ms": 21.0}},
    })
    card = build_card(art, model_sizes={"tflite": 2048})
    md = render_markdown(card)
    for heading in ("## Painting", "## Model", "## Loss network", "## Training", "## Training data", "## Files",
                    "## Verification", "## Speed", "## Quality", "## Intended use", "## Limitations"):
        assert heading in md
    assert "| texture | 12.5 | 118 |" in md and "| content | 0.31 | 0 |" in md  # ours beside the photo baseline
    assert "mosaic by A. Painter (1900)" in md and "public domain" in md
    assert "| mlpackage | 41 | yes |" in md and "| tflite | 48.2 | yes |" in md  # per-format PSNR
    assert "| res_blocks | 3 |" in md and "123,456" in md and "hed_vgg16" in md
    assert "| tflite | mosaic/mosaic.tflite | 2.00 KiB |" in md
    # measured runtimes pivot into one table; the long per-run list is summarised
    assert "| runtimes (measured) | median_ms | p90_ms | runs_ms |" in md
    assert "(99 values)" in md
    # every A12 figure and cost-model figure sits under an estimate label, never a measured one
    speed = md.split("## Speed")[1].split("## Preview")[0]
    measured_part, estimate_part = speed.split("**Estimates**")
    assert "A12 iPhone, the reference device (**estimate**" in measured_part
    assert "a12" not in measured_part.split("Measured on the build machine")[1].lower()
    assert "| estimates.a12_gpu (estimate) |" not in md  # pivoted: group 'estimates', rows a12_*
    assert "| estimates (estimate) | fps | ms |" in estimate_part and "| a12_gpu | 15.15 | 66 |" in estimate_part
    assert "| cost_model.flops | 12,345,678,901 |" in estimate_part
    assert card["bench"]["a12_estimate"] == {"estimates.a12_ane.ms": 21.0, "estimates.a12_gpu.fps": 15.15, "estimates.a12_gpu.ms": 66.0}
    json.dumps(card)  # the JSON card must serialise


@pytest.mark.parametrize("missing", ["train", "verify", "bench", "all"])
def test_missing_optional_jsons_render_as_not_recorded(tmp_path, missing):
    art = fake_style(tmp_path, "mosaic")
    gone = ["train", "verify", "bench"] if missing == "all" else [missing]
    for stage in gone:
        getattr(art, f"{stage}_json").unlink()
    md = render_markdown(build_card(art))

    def section(title):
        return md.split(f"## {title}")[1].split("\n## ")[0]

    if "train" in gone:
        assert "| parameters | not recorded |" in md and "final." not in md
        assert "| config.steps | 10 |" in section("Training\n")  # params still shown
    if "verify" in gone:
        assert section("Verification").strip().endswith("Not recorded.")
    if "bench" in gone:
        assert section("Speed").strip() == "Not recorded."
    assert "## Limitations" in md and "## Intended use" in md


def test_card_renders_with_keys_missing_or_odd(tmp_path):
    art = StyleArtifacts("odd", tmp_path / "export" / "odd", train_json=tmp_path / "t.json",
                         verify_json=tmp_path / "v.json", bench_json=tmp_path / "b.json")
    (tmp_path / "t.json").write_text(json.dumps({"final": None, "heldout": {}, "params": None}))
    # verify in a shape the card does not know: shown as flattened rows, not dropped
    (tmp_path / "v.json").write_text(json.dumps({"checks": [{"format": "onnx", "db": 50.0}], "ok": True}))
    (tmp_path / "b.json").write_text(json.dumps({"runtimes": {}, "note": "cpu | 2 cores\nshared"}))
    md = render_markdown(build_card(art))
    assert "| checks[0].db | 50 |" in md and "| ok | yes |" in md
    assert "cpu \\| 2 cores shared" in md  # a pipe or newline in a value does not break the table
    assert "| parameters | not recorded |" in md and "| credit | not recorded |" in md
    assert "Training data\n\nNot recorded." in md


def test_psnr_shapes_and_formatting():
    assert psnr_by_format({"psnr": {"onnx": 40.0}}) == {"onnx": {"psnr_db": 40.0}}
    assert psnr_by_format({"tflite": {"psnr_min": 33.0}, "bound_db": 30}) == {"tflite": {"psnr_min": 33.0}}
    assert psnr_by_format({}) == {}
    assert flatten({"b": {"y": 1, "x": 2}, "a": 3}) == [("a", 3), ("b.x", 2), ("b.y", 1)]
    assert [fmt(v) for v in (None, True, 1.23456, 123456, float("nan"))] == ["-", "yes", "1.235", "123,456", "nan"]


def test_bench_page_without_bench(tmp_path):
    assert render_bench_markdown("x", {}) == "## x\n\nBenchmarks: not recorded.\n"


def test_benchmarks_page_compares_styles_and_labels_estimates():
    from livestyle.release.modelcard import render_benchmarks

    md = render_benchmarks("1.0.0", {
        "a": {"runtimes": {"onnxruntime": {"median_ms": 400.0}}, "estimates": {"a12_gpu": {"ms": 66.0}}},
        "b": {"runtimes": {"onnxruntime": {"median_ms": 420.0}}},
        "c": {},
    })
    table = md.split("## All styles")[1].split("\n## ")[0]
    lines = [l for l in table.splitlines() if l.startswith("| ")]
    assert lines == [
        "| figure | a | b | c |",
        "| runtimes.onnxruntime.median_ms | 400 | 420 | - |",
        "| estimates.a12_gpu.ms (estimate) | 66 | - | - |",
    ]
    assert "## c\n\nBenchmarks: not recorded." in md
