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
from livestyle.model.determinism import DETERMINISTIC_ENV
from livestyle.model.train import train_style

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


def test_the_colour_term_is_logged_weighed_in_and_moves_the_colours(prepared, style_image, tmp_path):
    import dataclasses

    from livestyle.errors import LivestyleError

    base = tiny(style_image, steps=12)
    with_colour = dataclasses.replace(base, loss=dataclasses.replace(base.loss, colour_weight=20.0, style_weight=0.0))
    without = dataclasses.replace(base, loss=dataclasses.replace(base.loss, style_weight=0.0))
    train_style(with_colour, prepared, tmp_path / "on")
    train_style(without, prepared, tmp_path / "off")
    on, off = _log(tmp_path / "on"), _log(tmp_path / "off")
    assert all(float(r["colour"]) > 0 for r in on) and all(float(r["colour"]) == 0 for r in off)
    for r in on:  # the logged loss is the weighted sum, colour term included
        parts = 1.0 * float(r["content"]) + 1.0 * float(r["tv"]) + 20.0 * float(r["colour"])
        assert float(r["loss"]) == pytest.approx(parts, rel=1e-4)
    # twelve steps on the colour term alone bring the batch's colours toward the painting's
    assert float(on[-1]["colour"]) < 0.5 * float(on[0]["colour"])
    assert json.loads((tmp_path / "on" / "train.json").read_text())["final"]["colour"] > 0
    with pytest.raises(LivestyleError, match="loss.colour_weight"):
        LossConfig(colour_weight=-1.0)


def test_two_candidate_runs_are_judged_on_held_out_photos_and_the_chosen_one_ships(prepared, style_image, tmp_path):
    import dataclasses

    from livestyle.config import WEIGHTS
    from livestyle.convert.export import stylizer
    from livestyle.images import load_rgb
    from livestyle.measure.quality import filter_figures
    from livestyle.model.choice import train_candidates
    from livestyle.model.data import load_images

    base = tiny(style_image, steps=4)
    cfg = dataclasses.replace(base, train=dataclasses.replace(base.train, candidates=2, seed=3))
    heldout = [load_rgb(p) for p in load_images(prepared / "heldout")]
    painting = load_rgb(style_image)

    def judge(weights):
        return filter_figures(stylizer(weights, cfg.network), heldout, painting)

    record = train_candidates(cfg, lambda c, d: train_style(c, prepared, d), tmp_path, judge)
    runs = {int(s): f for s, f in record["runs"].items()}
    assert sorted(runs) == [3, 4] and record["chosen_seed"] in runs
    # each seed trained its own filter; the shipped weights are the chosen run's, byte for byte
    weights = {s: (tmp_path / "candidates" / f"seed_{s}" / WEIGHTS).read_bytes() for s in runs}
    assert weights[3] != weights[4]
    assert (tmp_path / WEIGHTS).read_bytes() == weights[record["chosen_seed"]]
    assert all(np.isfinite(list(f.values())).all() and set(f) == {"texture", "colour", "content"} for f in runs.values())


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



def test_the_train_process_re_runs_itself_with_the_deterministic_environment():
    # numpy's BLAS pools on both cores made 2 of 8 fresh runs differ on a loaded machine
    # and runs on one CPU: TensorFlow's compute thread and the Python thread ran ops side by
    # side on two cores, and 1 in 3 to 1 in 8 fresh runs wrote other weights
    code = ("import os; from livestyle.model.determinism import ensure_deterministic_process as e; e(); "
            "print(' '.join(os.environ[k] for k in ('PYTHONHASHSEED', 'OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', "
            "'MKL_NUM_THREADS')), len(os.sched_getaffinity(0)))")
    env = {k: v for k, v in os.environ.items() if k not in DETERMINISTIC_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["0", "1", "1", "1", "1"]


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_two_trainings_side_by_side_are_pinned_to_different_cpus(tmp_path):
    # the flow trains two styles at once: both on one core would halve the throughput
    code = ("import sys, os; from pathlib import Path; from livestyle.model.determinism import pin_to_one_cpu; "
            "print(pin_to_one_cpu(Path(sys.argv[1])), sorted(os.sched_getaffinity(0)), flush=True); sys.stdin.read()")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        first, second = (p.stdout.readline().split(" ", 1) for p in procs)  # both alive, both holding their lock
    finally:
        for p in procs:
            p.communicate("")
    assert first[0] != second[0]
    assert first[1].strip() == f"[{first[0]}]" and second[1].strip() == f"[{second[0]}]"
    # a CPU is free again once its process ended
    third = subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=env, input="", capture_output=True,
                           text=True, check=True).stdout.split()[0]
    assert third == str(min(os.sched_getaffinity(0)))
    # a lock file that cannot be opened (another user's) skips that CPU instead of failing
    (tmp_path / f"livestyle-train-cpu{third}.lock").unlink()
    (tmp_path / f"livestyle-train-cpu{third}.lock").mkdir()
    fourth = subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=env, input="", capture_output=True,
                            text=True, check=True).stdout.split()[0]
    assert fourth != third


def h5_tensors(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of a Keras weights file by its path inside the file."""
    import h5py

    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, np.asarray(obj)) if isinstance(obj, h5py.Dataset) else None)
    return out


def assert_same_training(out: Path, first: Path, start_weights: Path) -> None:
    """out holds the same training as first: the same files, the same steps logged, and
    every number equal up to float rounding.

    Byte-identical is what the train stage aims at (livestyle.model.determinism), and on
    an idle machine 22 of 22 fresh runs wrote the same bytes; on a loaded one 1 run in 3
    still differed in the last bits after the first step (Adam then spreads them to
    1e-4 of how far training moved each weight). A resume that lost or repeated a step,
    or the optimizer state, moves weights by a sizeable share of a step."""
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.name != "speed.json")
    assert files == sorted(str(p.relative_to(first)) for p in first.rglob("*") if p.is_file() and p.name != "speed.json")
    assert (out / "style.png").read_bytes() == (first / "style.png").read_bytes()
    with open(out / "loss.csv") as a, open(first / "loss.csv") as b:
        rows, want = list(csv.DictReader(a)), list(csv.DictReader(b))
    assert [r["step"] for r in rows] == [r["step"] for r in want]
    for r, w in zip(rows, want):
        assert {k: float(v) for k, v in r.items()} == pytest.approx({k: float(v) for k, v in w.items()}, rel=1e-3, abs=1e-7)
    assert json.loads((out / "checkpoint" / "state.json").read_text())["step"] == \
        json.loads((first / "checkpoint" / "state.json").read_text())["step"]
    start = h5_tensors(start_weights)
    for rel in ("transformer.weights.h5", "checkpoint/transformer.weights.h5"):
        got, ref = h5_tensors(out / rel), h5_tensors(first / rel)
        assert got.keys() == ref.keys()
        for k in ref:
            moved = float(np.linalg.norm(ref[k] - start[k])) if k in start else float(np.linalg.norm(ref[k]))
            assert float(np.linalg.norm(got[k] - ref[k])) <= 1e-3 * moved + 1e-7, (rel, k)
    for rel in [f for f in files if f.endswith(".png") and "samples" in f]:
        from livestyle.images import load_rgb

        diff = np.abs(load_rgb(out / rel).astype(np.int16) - load_rgb(first / rel).astype(np.int16))
        assert diff.mean() < 0.5, rel


@pytest.mark.slow
def test_a_rerun_and_a_killed_and_resumed_run_of_the_train_stage_give_the_same_training(tmp_path):
    # `python -m stages.train mosaic` as dvc repro runs it, at the default's real settings
    # (width 32, 128 px crops, batch 4, the ImageNet loss network), 6 steps
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
    out, first = tmp_path / "data" / "train" / "mosaic", tmp_path / "first"
    stage = [sys.executable, "-m", "stages.train", "mosaic"]

    def run() -> None:
        subprocess.run(stage, cwd=tmp_path, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    run()
    assert (out / "transformer.weights.h5").exists() and (out / "samples" / "step_000004.png").exists()
    # the palette map is fitted after training on the training photos, and names its weights
    from livestyle.provenance import file_sha256

    palette = json.loads((out / "palette.json").read_text())
    assert palette["weights_sha256"] == file_sha256(out / "transformer.weights.h5") and palette["photos"] > 0
    assert np.isfinite(palette["matrix"]).all() and np.linalg.eigvalsh(palette["matrix"]).min() > 0
    shutil.move(out, first)
    run()
    assert_same_training(out, first, tmp_path / params["train"]["init_weights"])
    shutil.rmtree(out)
    proc = subprocess.Popen(stage, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert _kill_at_checkpoint(proc, out, 2) < 6 and not (out / "transformer.weights.h5").exists()
    run()  # resumed from the checkpoint
    assert_same_training(out, first, tmp_path / params["train"]["init_weights"])
