"""End to end: the real dvc.yaml and stages on a tiny profile, in a fresh git+DVC repo."""

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
STALE_FOR_NEW_STYLE = {"train@third", "export@third", "verify@third", "bench@third", "preview@third", "quality@third", "release"}

TINY = {
    "data": {"builtin": ["astronaut", "coffee", "chelsea", "camera"], "image_size": 32, "crops_per_image": 1,
             "heldout_min": 1, "heldout_size": 64},
    "network": {"res_blocks": 1, "width": 4},
    "loss": {"content_layers": ["block1_conv2"], "style_layers": ["block1_conv2", "block2_conv2"]},
    # the base network is for the default network settings; width 4 starts from random
    "train": {"steps": 2, "batch_size": 2, "image_size": 32, "checkpoint_every": 1, "sample_every": 1, "init_weights": ""},
    "export": {"sizes": [[37, 20]], "display": [74, 40]},
    "verify": {"frames": 1},
    "bench": {"runs": 3, "drop_first": 1, "runtimes": ["keras", "tflite", "onnx", "coreml"]},
    "preview": {"max_seconds": 1, "gif_seconds": 1, "builtin": {"width": 40, "height": 72, "fps": 15, "seconds": 1}},
}


def _merge(base, over):
    for k, v in over.items():
        base[k] = _merge(base.get(k, {}), v) if isinstance(v, dict) else v
    return base


def _run(args, cwd, env):
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    for name in ("livestyle", "stages"):
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "data").mkdir()
    shutil.copytree(ROOT / "data" / "styles", root / "data" / "styles")
    shutil.copytree(ROOT / "data" / "base", root / "data" / "base")  # a train dep
    # what a clone has of the folders users' inputs lie in (stage deps): each with its README
    for folder in ("quality_inputs", "raw", "clips"):
        (root / "data" / folder).mkdir()
        shutil.copy(ROOT / "data" / folder / "README.md", root / "data" / folder)
    shutil.copy(ROOT / "dvc.yaml", root / "dvc.yaml")
    params = _merge(yaml.safe_load((ROOT / "params.yaml").read_text()), TINY)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(root)}
    dvc = [sys.executable, "-m", "dvc"]
    _run(["git", "init", "-q"], root, env)
    _run(dvc + ["init", "-q"], root, env)
    _run(dvc + ["config", "core.analytics", "false"], root, env)
    return root, env, dvc


def _stale(root, env, dvc):
    return set(json.loads(_run(dvc + ["status", "--json"], root, env)))


def _ran(log):
    return set(re.findall(r"Running stage '([^']+)'", log))


@pytest.mark.slow
def test_whole_dag_then_a_new_style_reruns_only_its_branch(project):
    root, env, dvc = project
    log = _run(dvc + ["repro"], root, env)
    assert {"prepare", "clip", "train@mosaic", "export@sketch", "verify@mosaic", "bench@sketch", "preview@mosaic", "release"} <= _ran(log)
    assert _stale(root, env, dvc) == set()

    for style in ("mosaic", "sketch"):
        export = root / "data/export" / style
        assert {p.name for p in export.iterdir()} >= {f"{style}.mlpackage", f"{style}.mlmodel", f"{style}.tflite", f"{style}.onnx"}
        verify = json.loads((root / "data/verify" / style / "verify.json").read_text())
        assert verify["passed"] and verify["mlprogram"]["psnr_db"]["min"] > 40
        bench = json.loads((root / "data/bench" / style / "bench.json").read_text())
        assert bench["host"]["keras"]["median_ms"] > 0 and "skipped" in bench["host"]["coreml"]
        assert list((root / "data/preview" / style / "media").glob("*.mp4"))
        quality = json.loads((root / "data/quality" / style / "quality.json").read_text())
        assert quality["photos"] >= 1 and quality["mean"]["texture"] >= 0 and "flicker_ratio" in quality
    bundle = root / "data/release/livestyle-0.1.0.zip"
    names = zipfile.ZipFile(bundle).namelist()
    assert "manifest.json" in names and "mosaic/mosaic.onnx" in names
    assert {"mosaic/quality/sheet.png", "mosaic/metrics/quality.json"} <= set(names)
    out = _run([sys.executable, "-m", "livestyle.cli", "verify-bundle", str(bundle)], root, env)
    assert out.startswith("OK")

    # a user adds a painting: only that style's branch and the release are stale
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["styles"]["third"] = {"image": "data/styles/sketch.png", "loss": {"style_weight": 2.0}}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert _stale(root, env, dvc) == STALE_FOR_NEW_STYLE
    log = _run(dvc + ["repro"], root, env)
    assert _ran(log) == STALE_FOR_NEW_STYLE
    assert _stale(root, env, dvc) == set()
