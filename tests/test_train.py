import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from livestyle.config import LossConfig, NetworkConfig, StyleConfig, TrainConfig
from livestyle.images import save_png
from livestyle.model.data import DataConfig, prepare
from livestyle.model.train import DETERMINISTIC_ENV, train_style

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    prepare(DataConfig(builtin=("astronaut", "coffee", "chelsea", "rocket"), image_size=32, crops_per_image=2,
                       heldout_min=1, heldout_size=48), out)
    return out


@pytest.fixture(scope="module")
def style_image(tmp_path_factory):
    path = tmp_path_factory.mktemp("style") / "stripes.png"
    img = np.zeros((64, 64, 3), np.uint8)
    img[:, ::6] = (220, 60, 20)
    img[::5, :] = (20, 60, 220)
    save_png(path, img)
    return path


def tiny(style_image, steps=6, **train):
    return StyleConfig(
        name="tiny", image=str(style_image),
        network=NetworkConfig(res_blocks=1, width=4),
        loss=LossConfig(content_layers=("block1_conv2",), style_layers=("block1_conv2", "block2_conv2")),
        train=TrainConfig(steps=steps, batch_size=2, image_size=32, checkpoint_every=2, sample_every=3,
                          learning_rate=0.01, **train),
    )


def _log(out):
    with open(out / "loss.csv") as f:
        return list(csv.DictReader(f))


def test_training_writes_weights_logs_samples_and_learns(prepared, style_image, tmp_path):
    metrics = train_style(tiny(style_image, steps=12), prepared, tmp_path)
    for name in ("transformer.weights.h5", "loss.csv", "loss.png", "samples.png", "style.png", "train.json"):
        assert (tmp_path / name).exists(), name
    assert (tmp_path / "samples" / "step_000003.png").exists()
    rows = _log(tmp_path)
    assert [int(r["step"]) for r in rows] == list(range(1, 13))
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    assert float(rows[-1]["style"]) < float(rows[0]["style"])  # the style term is being optimised
    saved = json.loads((tmp_path / "train.json").read_text())
    speed = json.loads((tmp_path / "speed.json").read_text())
    assert saved["heldout"].keys() == {"content", "style", "tv"}
    # the returned figures are train.json's plus the run's throughput, kept apart in speed.json
    assert {**saved, **speed} == json.loads(json.dumps(metrics)) and speed["images_per_s_median"] > 0
    assert "images_per_s" not in rows[0] and "images_per_s_median" not in saved


def test_same_seed_same_result(prepared, style_image, tmp_path):
    train_style(tiny(style_image), prepared, tmp_path / "a")
    train_style(tiny(style_image), prepared, tmp_path / "b")
    la, lb = _log(tmp_path / "a"), _log(tmp_path / "b")
    assert [r["loss"] for r in la] == [r["loss"] for r in lb]


def test_resume_continues_from_checkpoint(prepared, style_image, tmp_path):
    full = tmp_path / "full"
    train_style(tiny(style_image), prepared, full)
    part = tmp_path / "part"
    assert train_style(tiny(style_image), prepared, part, stop_after=4) == {"stopped_at": 4}
    train_style(tiny(style_image), prepared, part)  # resumes at step 4
    a, b = _log(full), _log(part)
    assert [r["step"] for r in a] == [r["step"] for r in b]
    np.testing.assert_allclose([float(r["loss"]) for r in a], [float(r["loss"]) for r in b], rtol=1e-4)


def test_checkpoint_of_other_settings_is_not_resumed(prepared, style_image, tmp_path):
    train_style(tiny(style_image), prepared, tmp_path, stop_after=4)
    other = tiny(style_image, seed=7)
    train_style(other, prepared, tmp_path)
    assert [int(r["step"]) for r in _log(tmp_path)] == list(range(1, 7))


def _kill_at_checkpoint(proc: subprocess.Popen, out: Path, step: int) -> int:
    """SIGKILL a training process once its checkpoint reaches `step`; the checkpoint's step."""
    state = out / "checkpoint" / "state.json"
    deadline = time.time() + 240
    while time.time() < deadline and not (state.exists() and json.loads(state.read_text())["step"] >= step):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return json.loads(state.read_text())["step"]


@pytest.mark.slow
def test_resume_after_kill_loses_nothing_before_the_checkpoint(prepared, style_image, tmp_path):
    out = tmp_path / "killed"
    code = (
        "import sys, pickle; from pathlib import Path; from livestyle.model.train import train_style; "
        "cfg = pickle.loads(bytes.fromhex(sys.argv[1])); train_style(cfg, Path(sys.argv[2]), Path(sys.argv[3]))"
    )
    import pickle

    cfg = tiny(style_image, steps=400)
    proc = subprocess.Popen([sys.executable, "-c", code, pickle.dumps(cfg).hex(), str(prepared), str(out)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed_at = _kill_at_checkpoint(proc, out, 4)
    assert 4 <= killed_at < 400
    assert not (out / "transformer.weights.h5").exists()  # a killed run leaves no final weights
    finish = tiny(style_image, steps=killed_at + 4)
    train_style(finish, prepared, out)
    steps = [int(r["step"]) for r in _log(out)]
    assert steps == list(range(1, killed_at + 5))  # continuous: nothing lost, nothing repeated


def test_base_network_keeps_a_photo_and_refuses_other_settings(tmp_path):
    from livestyle.errors import LivestyleError
    from livestyle.images import center_crop, resize_short_side
    from livestyle.model.network import build_transformer
    from livestyle.model.train import load_init_weights

    import skimage.data

    base = Path(__file__).resolve().parents[1] / "data" / "base" / "base.weights.h5"
    photo = center_crop(resize_short_side(skimage.data.astronaut(), 96), 96, 96).astype(np.float32)
    net = build_transformer(NetworkConfig(), 96, 96)
    load_init_weights(net, base)
    out = np.asarray(net(photo[None], training=False))[0]
    # near-identity: the scene survives (what the CPU default's 200 steps build on)
    assert np.corrcoef(out.ravel(), photo.ravel())[0, 1] > 0.9
    with pytest.raises(LivestyleError, match="train.init_weights"):
        load_init_weights(build_transformer(NetworkConfig(res_blocks=1, width=4), 32, 32), base)
    with pytest.raises(LivestyleError, match="no file"):
        load_init_weights(net, tmp_path / "missing.h5")


@pytest.mark.parametrize("norm_stats", ["update", "frozen"])
def test_norm_stats_frozen_keeps_the_starting_statistics_and_still_learns(prepared, style_image, tmp_path, norm_stats):
    import keras

    from livestyle.model.network import build_transformer

    def stats_and_kernels(path):
        net = build_transformer(NetworkConfig(res_blocks=1, width=4), 32, 32)
        net.load_weights(path)
        norms = [l for l in net.layers if isinstance(l, keras.layers.BatchNormalization)]
        stats = np.concatenate([np.ravel(v) for l in norms for v in (l.moving_mean, l.moving_variance)])
        kernels = np.concatenate([np.ravel(l.kernel) for l in net.layers if isinstance(l, keras.layers.Conv2D)])
        return stats, kernels

    start = tmp_path / "start.weights.h5"
    build_transformer(NetworkConfig(res_blocks=1, width=4), 32, 32, seed=3).save_weights(start)
    train_style(tiny(style_image, steps=3, norm_stats=norm_stats, init_weights=str(start)), prepared, tmp_path / "run")
    (s0, k0), (s1, k1) = stats_and_kernels(start), stats_and_kernels(tmp_path / "run" / "transformer.weights.h5")
    assert not np.allclose(k0, k1)  # the convolutions train either way
    # frozen: training normalises as the exported model does, by the start's statistics
    assert np.array_equal(s0, s1) == (norm_stats == "frozen")



def _file_hashes(folder: Path) -> dict[str, str]:
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_train_process_re_runs_itself_with_the_deterministic_environment():
    # numpy's BLAS pools on both cores made 2 of 8 fresh runs differ on a loaded machine
    code = ("import os; from livestyle.model.train import ensure_deterministic_process as e; e(); "
            "print(' '.join(os.environ[k] for k in ('PYTHONHASHSEED', 'OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', "
            "'MKL_NUM_THREADS')))")
    env = {k: v for k, v in os.environ.items() if k not in DETERMINISTIC_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["0", "1", "1", "1"]


@pytest.mark.slow
def test_a_rerun_and_a_killed_and_resumed_run_of_the_train_stage_are_byte_identical(tmp_path):
    # `python -m stages.train mosaic` as dvc repro runs it, at the default's real settings
    # (width 32, 128 px crops, batch 4, the ImageNet loss network), 6 steps: with
    # TensorFlow's default threads, or with Python's per-process str hash salt, two such
    # runs differed in the last bits after two steps
    import shutil

    import yaml

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"].update(steps=6, checkpoint_every=2, sample_every=2)
    assert params["train"]["deterministic"] is True  # the default this test stands for
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for rel in ("data/styles/mosaic.png", params["train"]["init_weights"]):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    prepare(DataConfig(builtin=("astronaut", "coffee", "chelsea", "rocket"), image_size=128, crops_per_image=2,
                       heldout_min=1, heldout_size=160), tmp_path / "data" / "prepared")
    # the stage must set its deterministic environment itself, as under dvc repro
    env = {k: v for k, v in os.environ.items() if k not in DETERMINISTIC_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    out = tmp_path / "data" / "train" / "mosaic"
    stage = [sys.executable, "-m", "stages.train", "mosaic"]

    def run() -> dict[str, str]:
        subprocess.run(stage, cwd=tmp_path, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        hashes = _file_hashes(out)
        hashes.pop("speed.json")  # this run's measured throughput: the one output not repeatable
        return hashes

    first = run()
    assert "transformer.weights.h5" in first and "samples/step_000004.png" in first
    shutil.rmtree(out)
    assert run() == first
    shutil.rmtree(out)
    proc = subprocess.Popen(stage, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert _kill_at_checkpoint(proc, out, 2) < 6 and not (out / "transformer.weights.h5").exists()
    assert run() == first  # resumed from the checkpoint
