"""`livestyle verify-bundle` and .ci/release.sh on a tiny fake tree."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from livestyle import cli
from livestyle.images import save_png
from livestyle.release.bundle import build_bundle
from test_bundle import TOOLS, _rewrite, fake_styles

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def bundle(tmp_path) -> Path:
    out = tmp_path / "data" / "release" / "livestyle-0.1.0.zip"
    build_bundle(fake_styles(tmp_path / "data"), "0.1.0", out, tools=TOOLS, progress=False)
    return out


def test_verify_bundle_ok(bundle, capsys):
    assert cli.main(["verify-bundle", str(bundle)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"OK: {bundle}: version 0.1.0, 2 style(s) (mosaic, sketch),")
    assert " files, " in out and out.strip().endswith("bytes verified")


def test_verify_bundle_prints_each_problem_and_exits_1(bundle, tmp_path, capsys):
    bad = _rewrite(bundle, tmp_path / "bad.zip", drop={"mosaic/mosaic.onnx"},
                   add=[(zipfile.ZipInfo("extra.txt"), b"x")], change={"sketch/sketch.tflite": b"TFL3sketcX"})
    assert cli.main(["verify-bundle", str(bad)]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines == [
        f"{bad}: extra.txt: extra file not in the manifest",
        f"{bad}: mosaic/mosaic.onnx: missing (listed in the manifest)",
        f"{bad}: sketch/sketch.tflite: SHA-256 mismatch (changed since the bundle was built)",
    ]
    assert "3 problem(s)" in captured.err


def test_verify_missing_bundle_is_one_line(tmp_path, capsys):
    assert cli.main(["verify-bundle", str(tmp_path / "nope.zip")]) == 1
    assert capsys.readouterr().out == f"{tmp_path / 'nope.zip'}: no such bundle file\n"


def test_livestyle_error_is_one_line_on_stderr(monkeypatch, capsys):
    from livestyle.errors import LivestyleError

    def boom(args):
        raise LivestyleError("data/x.json", "not valid JSON")

    monkeypatch.setattr(cli, "cmd_verify_bundle", boom)
    assert cli.main(["verify-bundle", "whatever.zip"]) == 1
    assert capsys.readouterr().err == "livestyle: data/x.json: not valid JSON\n"


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        cli.main(["verify-bundle"])
    assert e.value.code == 2


def test_module_entry_point(bundle):
    r = subprocess.run([sys.executable, "-m", "livestyle.cli", "verify-bundle", str(bundle)],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("OK: ")


# ---------------------------------------------------------------- livestyle score


@pytest.fixture
def score_files(tmp_path) -> dict[str, Path]:
    """A painting (PNG), a photo (JPEG) and a 'stylized' photo half-way to the painting (PNG)."""
    from PIL import Image

    from test_quality import painting, photo

    art, ph = painting(96, 128), photo(72, 96)
    mixed = (ph.astype(int) + art[:72, :96]) // 2
    files = {"painting": tmp_path / "painting.png", "photo": tmp_path / "photo.jpg", "stylized": tmp_path / "out.png"}
    for key, rgb in (("painting", art), ("photo", ph), ("stylized", mixed)):
        Image.fromarray(rgb.astype(np.uint8)).save(files[key], quality=95)
    return files


def test_score_prints_a_table_and_writes_json(score_files, tmp_path, capsys):
    f = score_files
    out = tmp_path / "score.json"
    assert cli.main(["score", str(f["stylized"]), "--photo", str(f["photo"]), "--painting", str(f["painting"]), "--json", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["measure", "(0", "=", "best)", "stylized", "photo", "stylized/photo"]
    assert [ln.split()[0] for ln in lines[1:4]] == ["texture", "colour", "content"]
    figures = json.loads(out.read_text())
    assert figures["files"]["photo"] == str(f["photo"]) and figures["seed"] == 0
    assert figures["texture"] < figures["photo"]["texture"] and figures["photo"]["content"] == 0
    assert 0 < figures["content"] < 1 and "lossnet_style" not in figures


def test_score_of_the_photo_itself_and_bad_input(score_files, tmp_path, capsys):
    f = score_files
    assert cli.main(["score", str(f["photo"]), "--photo", str(f["photo"]), "--painting", str(f["painting"]), "--json", str(tmp_path / "s.json")]) == 0
    figures = json.loads((tmp_path / "s.json").read_text())
    assert figures["content"] == pytest.approx(0, abs=1e-9) and figures["texture"] == pytest.approx(figures["photo"]["texture"])
    capsys.readouterr()
    assert cli.main(["score", str(tmp_path / "nope.png"), "--photo", str(f["photo"]), "--painting", str(f["painting"])]) == 1
    assert capsys.readouterr().err == f"livestyle: {tmp_path / 'nope.png'}: no such image file\n"
    tiny = tmp_path / "tiny.png"
    save_png(tiny, np.zeros((20, 20, 3), np.uint8))
    assert cli.main(["score", str(tiny), "--photo", str(f["photo"]), "--painting", str(f["painting"])]) == 1
    assert "tiny.png: image is under 38 px" in capsys.readouterr().err


@pytest.mark.slow
def test_score_with_the_training_loss_network(score_files, tmp_path, capsys):
    f = score_files
    params = tmp_path / "params.yaml"
    params.write_text("loss:\n  content_layers: [block1_conv2]\n  style_layers: [block1_conv2, block2_conv2]\n")
    assert cli.main(["score", str(f["stylized"]), "--photo", str(f["photo"]), "--painting", str(f["painting"]),
                     "--lossnet", "hed_vgg16", "--params", str(params)]) == 0
    out = capsys.readouterr().out
    assert "lossnet content (training)" in out and "lossnet style (training)" in out


# ---------------------------------------------------------------- .ci/release.sh


@pytest.fixture
def tree(tmp_path, bundle) -> Path:
    """A repo-shaped folder: .ci/release.sh, params.yaml with release.version, a built bundle."""
    (tmp_path / ".ci").mkdir()
    shutil.copy(ROOT / ".ci" / "release.sh", tmp_path / ".ci" / "release.sh")
    (tmp_path / "params.yaml").write_text("release:\n  version: 0.1.0\n")
    return tmp_path


def _release(tree: Path, *args: str, env_extra=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_REF_NAME"}
    env.update(PYTHON=sys.executable, PYTHONPATH=str(ROOT), **(env_extra or {}))
    # run from elsewhere: the script must find its repo root itself
    return subprocess.run(["bash", str(tree / ".ci" / "release.sh"), *args], cwd="/", env=env, capture_output=True, text=True)


def test_release_script_verifies_and_prints_the_path(tree):
    r = _release(tree, "--tag", "v0.1.0", "--skip-repro")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "data/release/livestyle-0.1.0.zip\n"  # only the path: the workflow reads it
    assert "OK: data/release/livestyle-0.1.0.zip" in r.stderr


def test_release_script_takes_the_tag_from_github(tree):
    r = _release(tree, "--skip-repro", env_extra={"GITHUB_REF_NAME": "v0.1.0"})
    assert r.returncode == 0, r.stderr


def test_release_script_refuses_a_tag_for_another_version(tree):
    r = _release(tree, "--tag", "v0.2.0", "--skip-repro")
    assert r.returncode == 1 and r.stdout == ""
    assert "tag v0.2.0 does not match params.yaml release.version 0.1.0" in r.stderr


def test_release_script_fails_on_a_tampered_bundle(tree):
    z = tree / "data" / "release" / "livestyle-0.1.0.zip"
    bad = _rewrite(z, tree / "bad.zip", change={"mosaic/mosaic.onnx": b"onnx mosaiX"})
    os.replace(bad, z)
    r = _release(tree, "--tag", "v0.1.0", "--skip-repro")
    assert r.returncode == 1 and r.stdout == ""
    assert "mosaic/mosaic.onnx: SHA-256 mismatch" in r.stderr


def test_release_script_fails_without_bundle_or_version(tree):
    (tree / "data" / "release" / "livestyle-0.1.0.zip").unlink()
    r = _release(tree, "--tag", "v0.1.0", "--skip-repro")
    assert r.returncode == 1 and "no bundle" in r.stderr
    (tree / "params.yaml").write_text("styles: {}\n")
    r = _release(tree, "--tag", "v0.1.0", "--skip-repro")
    assert r.returncode != 0 and "release.version is missing" in r.stderr
