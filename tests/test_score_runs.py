"""scripts/score_runs.py scores trained filters as the ablations judge them: photo figures
per palette strength, sky probes, the train stage's choice, and one-line errors."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from livestyle.config import NetworkConfig
from livestyle.images import save_png
from livestyle.model.choice import SKY_BLOBS, choose
from livestyle.model.palette import PALETTE_FILE
from livestyle.provenance import file_sha256
from test_quality import painting, photo

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "score_runs.py"
NET = {"res_blocks": 1, "width": 4}
PHOTOS = ("city", "park")


def _module():
    spec = importlib.util.spec_from_file_location("score_runs", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclass looks its module up
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def tool():
    return _module()


def _weights(path: Path, seed: int) -> Path:
    import keras

    from livestyle.model.network import build_transformer

    keras.utils.set_random_seed(seed)
    path.parent.mkdir(parents=True)
    build_transformer(NetworkConfig(**NET), 32, 32).save_weights(path)
    return path


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """Tiny params (a width-4 network, 3 palette photos, 2 probes), a painting, photos, and
    two runs of style `tiny` with random weights and no palette map yet."""
    root = tmp_path_factory.mktemp("score")
    # every image 43x64 once capped (the probes' size at --max-side 64): one model size a run
    params = {"network": NET, "data": {"image_size": 43},
              "train": {"palette_photos": 3, "choice_photos": 2, "choice_probes": 2}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    save_png(root / "styles/tiny.png", painting())
    save_png(root / "photos/city.png", photo(54, 80))
    save_png(root / "photos/park.jpg", np.roll(photo(54, 80), 20, axis=0))
    for i in range(3):
        save_png(root / "fit" / f"{i:06d}.png", np.roll(photo(43, 64), 8 * i, axis=1))
    for i in range(2):
        save_png(root / "heldout" / f"{i:04d}.png", np.roll(photo(43, 64), 12 * i, axis=0))
    for seed, label in enumerate("ab"):
        _weights(root / "runs" / label / "train/tiny/transformer.weights.h5", seed)
    return root


def _argv(root: Path, out: Path, *runs: str, extra=()) -> list[str]:
    return [str(out), "--params", str(root / "params.yaml"), "--photo", str(root / "photos/city.png"),
            "--photo", str(root / "photos/park.jpg"), "--strengths", "0,1", "--max-side", "64", "--probes", "2",
            "--fit-photos", str(root / "fit"), "--painting-dir", str(root / "styles"), *extra, *runs]


def _run(label: str, root: Path) -> str:
    return f"{label}={root / 'runs' / label / 'train/tiny/transformer.weights.h5'}"


@pytest.fixture(scope="module")
def scored(tool, project):
    out = project / "out"
    rc = tool.main(_argv(project, out, _run("a", project), _run("b", project),
                         extra=["--heldout-photos", str(project / "heldout"), "--choose", "a,b", "--choose", "b"]))
    assert rc == 0
    return out, json.loads((out / "scores.json").read_text())


def test_every_run_photo_and_strength_has_its_figures_pngs_and_probes(project, scored):
    out, record = scored
    assert list(record["runs"]) == ["a", "b"]
    for label, run in record["runs"].items():
        weights = project / "runs" / label / "train/tiny/transformer.weights.h5"
        assert run["weights"] == str(weights) and run["weights_sha256"] == file_sha256(weights)
        assert run["style"] == "tiny" and run["painting"] == str(project / "styles/tiny.png")
        assert set(run["photos"]) == set(PHOTOS)
        for name in PHOTOS:
            for s in ("0", "1"):
                figures = run["photos"][name][s]
                assert set(figures) == {"texture", "colour", "content", "flat_area"}
                assert all(np.isfinite(v) for v in figures.values())
                assert (out / label / f"{name}_p{s}.png").is_file()
        for s in ("0", "1"):
            probes = run["probes"][s]
            assert probes["count"] == 2 and len(probes["flat_areas"]) == 2
            assert probes["blotted"] == sum(a > 0 for a in probes["flat_areas"])  # the train stage's rule


def test_figures_are_the_quality_judges_on_the_deployed_filter(project, scored):
    """The tool's figures are quality.score's on the model as deployed at that strength,
    with the palette map the tool fitted (photos capped by --max-side as the quality stage caps them)."""
    from livestyle.convert.export import stylizer
    from livestyle.images import load_rgb
    from livestyle.measure.quality import score
    from livestyle.measure.quality_report import cap_side

    weights = project / "runs/a/train/tiny/transformer.weights.h5"
    city = cap_side(load_rgb(project / "photos/city.png"), 64)
    y = np.clip(stylizer(weights, NetworkConfig(**NET, palette_strength=1.0))(city[None].astype(np.float32))[0], 0, 255)
    expected = score(y, city, load_rgb(project / "styles/tiny.png"))
    got = scored[1]["runs"]["a"]["photos"]["city"]["1"]
    assert got == pytest.approx({k: expected[k] for k in got}, abs=1e-6)


def test_a_missing_palette_is_fitted_and_written_beside_the_weights(project, scored):
    for label in "ab":
        weights = project / "runs" / label / "train/tiny/transformer.weights.h5"
        written = json.loads(weights.with_name(PALETTE_FILE).read_text())
        assert written["weights_sha256"] == file_sha256(weights) and written["photos"] == 3
        assert scored[1]["runs"][label]["palette"]["source"] == "fitted, written"


def test_a_read_only_weights_folder_gets_its_palette_in_memory(tool, project, scored, tmp_path, monkeypatch):
    # run a's weights in a folder the tool may not write: the same map, fitted in memory,
    # gives the same strength-1 figures, and nothing is written beside the weights
    weights = tmp_path / "ro/tiny/transformer.weights.h5"
    weights.parent.mkdir(parents=True)
    shutil.copy(project / "runs/a/train/tiny/transformer.weights.h5", weights)
    access = tool.os.access
    monkeypatch.setattr(tool.os, "access", lambda p, mode: Path(p) != weights.parent and access(p, mode))
    argv = _argv(project, tmp_path / "out", f"ro={weights}")
    assert tool.main([a if a != "0,1" else "1" for a in argv]) == 0
    assert sorted(p.name for p in weights.parent.iterdir()) == [weights.name]
    run = json.loads((tmp_path / "out/scores.json").read_text())["runs"]["ro"]
    assert run["palette"]["source"].startswith("fitted, in memory")
    assert run["photos"]["city"]["1"] == pytest.approx(scored[1]["runs"]["a"]["photos"]["city"]["1"], abs=1e-6)


def test_markdown_has_a_row_per_run_and_strength(scored):
    out, record = scored
    md = (out / "scores.md").read_text()
    for label in "ab":
        for s in ("0", "1"):
            row = next(line for line in md.splitlines() if line.startswith(f"| {label} | tiny | {s} |"))
            city = record["runs"][label]["photos"]["city"][s]
            assert f"{city['texture']:.3f} / {city['colour']:.3f} / {city['content']:.3f}" in row
            flat = max(record["runs"][label]["photos"][p][s]["flat_area"] for p in PHOTOS)
            assert row.endswith(f"| {flat:.3f} | {record['runs'][label]['probes'][s]['blotted']} / 2 |")
    assert "**" in md  # the choice


def test_choose_replays_the_train_stages_choice_on_the_held_out_figures(scored):
    record = scored[1]
    for run in record["runs"].values():
        held = run["heldout"]
        assert set(held) == {"texture", "colour", "content", SKY_BLOBS}
        assert held[SKY_BLOBS] == run["probes"]["0"]["blotted"]
    first, alone = record["choices"]
    assert first["group"] == ["a", "b"] and first["chosen"] in ("a", "b")
    assert first["chosen"] == ["a", "b"][choose({i: record["runs"][g]["heldout"] for i, g in enumerate("ab")})]
    assert alone == {"group": ["b"], "chosen": "b"}


def _bad_photo(root, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("not a jpeg")
    return ["--photo", str(bad)], [_run("a", root)], str(bad)


@pytest.mark.parametrize("case", ["missing weights", "unreadable photo", "bad json", "no label", "unknown key",
                                  "network it was not trained with", "choose unknown run"])
def test_bad_input_is_one_line_exit_2_and_keeps_what_out_holds(tool, project, tmp_path, capsys, case):
    good = _run("a", project)
    missing = tmp_path / "gone/tiny/transformer.weights.h5"
    extra, runs, named = {
        "missing weights": ([], [good, f"b={missing}"], str(missing)),
        "unreadable photo": _bad_photo(project, tmp_path),
        "bad json": ([], [good + "@{antialias: 3"], "@"),
        "no label": ([], [str(missing)], str(missing)),
        "unknown key": ([], [good + '@{"blur": 3}'], "blur"),
        "network it was not trained with": ([], [good + '@{"width": 8}'], str(project / "runs/a")),
        "choose unknown run": (["--heldout-photos", str(project / "heldout"), "--choose", "a,c"], [good], "--choose"),
    }[case]
    out = tmp_path / "out"
    out.mkdir()
    (out / "scores.json").write_text("from before")
    assert tool.main(_argv(project, out, *runs, extra=extra)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and named in err, err
    assert [p.name for p in out.iterdir()] == ["scores.json"] and (out / "scores.json").read_text() == "from before"
