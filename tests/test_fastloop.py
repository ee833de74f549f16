"""The JAX training loop (livestyle.model.fastloop): same math as Keras' step, deterministic,
resumable. Runs where the Keras backend is JAX (KERAS_BACKEND=jax); the TF-only venv
runs the config checks alone."""

import dataclasses
import importlib.util

import keras
import numpy as np
import pytest
from test_train import _log, h5_tensors, prepared, style_image, tiny  # noqa: F401 (fixtures)

from livestyle.config import TrainConfig
from livestyle.errors import LivestyleError
from livestyle.model.data import load_images
from livestyle.model.train import Batches, build_trainer, resolve_loop, train_style

ON_JAX = importlib.util.find_spec("jax") is not None and keras.backend.backend() == "jax"
needs_jax = pytest.mark.skipif(not ON_JAX, reason="needs jax as the Keras backend (KERAS_BACKEND=jax)")


def _assert_same_weights(a, b):
    wa, wb = h5_tensors(a / "transformer.weights.h5"), h5_tensors(b / "transformer.weights.h5")
    assert wa.keys() == wb.keys() and wa
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)


def test_loop_settings_are_checked():
    with pytest.raises(LivestyleError, match="train.loop"):
        TrainConfig(loop="fast")
    with pytest.raises(LivestyleError, match="steps_per_call"):
        TrainConfig(steps_per_call=0)


def test_auto_is_the_jax_loop_only_on_an_accelerator(prepared):
    accelerator = ON_JAX and __import__("jax").default_backend() != "cpu"
    assert resolve_loop(TrainConfig(), load_images(prepared / "train")) == ("jax" if accelerator else "keras")
    assert resolve_loop(TrainConfig(loop="keras"), load_images(prepared / "train")) == "keras"


@pytest.mark.skipif(keras.backend.backend() == "jax", reason="the JAX backend runs it")
def test_jax_loop_on_another_backend_is_one_clear_error(prepared, style_image, tmp_path):
    with pytest.raises(LivestyleError, match="KERAS_BACKEND=jax"):
        train_style(tiny(style_image, loop="jax"), prepared, tmp_path)


@needs_jax
def test_device_loop_is_keras_train_step(prepared, style_image):
    from livestyle.model.fastloop import TERMS, DeviceLoop

    cfg = tiny(style_image, loop="jax", steps_per_call=4)
    # a gentler rate than tiny's: at 0.01 the second step's loss jumps 30x, and round-off
    # differences between any two compiled programs grow with it
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, learning_rate=1e-3))
    keras.utils.set_random_seed(0)
    fast, _ = build_trainer(cfg)
    ref, _ = build_trainer(cfg)
    ref.transformer.set_weights(fast.transformer.get_weights())
    batches = Batches(load_images(prepared / "train"), cfg.train)
    data = np.stack([batches(s) for s in range(4)])
    expected = []
    for x in data:
        logs = ref.train_on_batch(x, return_dict=True)
        ref.reset_metrics()
        expected.append([logs[k] for k in TERMS])
    loop = DeviceLoop(fast, cfg.train, data, draw=lambda d, s: d[s])  # the Keras loop's batches
    state, logs = loop.run(loop.read_state(), 0, 3)
    state, last = loop.run(state, 3, 1)
    loop.write_back(state)
    np.testing.assert_allclose(np.concatenate([logs[:3], last[:1]]), expected, rtol=1e-4)
    velocity = {v.path.split("/", 1)[1]: keras.ops.convert_to_numpy(v) for v in ref.optimizer.variables}
    for a, b in zip(fast.transformer.trainable_variables, ref.transformer.trainable_variables):
        # a shift that the next batch norm cancels has a zero gradient; Adam turns its
        # round-off into full steps of either sign, in either loop
        if velocity[f"{a.path.replace('/', '_')}_velocity"].max() < 1e-10:
            continue
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), rtol=1e-3, atol=1e-5, err_msg=a.path)


@needs_jax
def test_batches_are_windows_of_the_crops_and_a_function_of_the_step():
    import jax

    from livestyle.model.fastloop import random_batch

    data = np.random.default_rng(0).integers(0, 256, (5, 12, 10, 3), dtype=np.uint8)
    draw = jax.jit(lambda d, s: random_batch(d, s, seed=3, batch=4, size=8))
    b7 = np.asarray(draw(data, 7))
    assert b7.shape == (4, 8, 8, 3) and b7.dtype == np.float32
    np.testing.assert_array_equal(b7, np.asarray(draw(data, 7)))
    assert not np.array_equal(b7, np.asarray(draw(data, 8)))
    windows = {img[t : t + 8, l : l + 8][:, ::f].tobytes() for img in data for t in range(5) for l in range(3) for f in (1, -1)}
    assert all(x.astype(np.uint8).tobytes() in windows for x in b7)


@needs_jax
def test_jax_loop_trains_and_writes_the_keras_loops_outputs(prepared, style_image, tmp_path):
    metrics = train_style(tiny(style_image, steps=12, loop="jax", steps_per_call=4), prepared, tmp_path)
    for name in ("transformer.weights.h5", "loss.csv", "loss.png", "samples.png", "style.png", "train.json"):
        assert (tmp_path / name).exists(), name
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["step_000003.png", "step_000006.png", "step_000009.png"]
    rows = _log(tmp_path)
    assert [int(r["step"]) for r in rows] == list(range(1, 13))
    assert all(np.isfinite(float(r[k])) for r in rows for k in ("loss", "content", "style", "tv"))
    assert float(rows[-1]["style"]) < float(rows[0]["style"])
    assert metrics["loop"] == "jax" and metrics["images_per_s_median"] > 0


@pytest.fixture(scope="module")
def uninterrupted(prepared, style_image, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    train_style(tiny(style_image, loop="jax"), prepared, out)
    return out


@needs_jax
def test_same_seed_same_weights(prepared, style_image, uninterrupted, tmp_path):
    train_style(tiny(style_image, loop="jax"), prepared, tmp_path)
    _assert_same_weights(uninterrupted, tmp_path)
    assert [r["loss"] for r in _log(uninterrupted)] == [r["loss"] for r in _log(tmp_path)]


@needs_jax
@pytest.mark.parametrize("stop", [4, 3])  # 3: not a checkpoint, resumes from 2
def test_resumed_run_equals_uninterrupted_run(prepared, style_image, uninterrupted, tmp_path, stop):
    assert train_style(tiny(style_image, loop="jax"), prepared, tmp_path, stop_after=stop) == {"stopped_at": stop}
    train_style(tiny(style_image, loop="jax"), prepared, tmp_path)
    _assert_same_weights(uninterrupted, tmp_path)
    assert [(r["step"], r["loss"]) for r in _log(uninterrupted)] == [(r["step"], r["loss"]) for r in _log(tmp_path)]


@needs_jax
def test_call_length_changes_nothing_but_speed(prepared, style_image, uninterrupted, tmp_path):
    train_style(tiny(style_image, loop="jax", steps_per_call=1), prepared, tmp_path)
    np.testing.assert_allclose([float(r["loss"]) for r in _log(tmp_path)], [float(r["loss"]) for r in _log(uninterrupted)],
                               rtol=1e-5)


@needs_jax
def test_keras_loop_checkpoint_is_not_resumed_by_the_jax_loop(prepared, style_image, tmp_path):
    train_style(tiny(style_image, loop="keras"), prepared, tmp_path, stop_after=4)
    metrics = train_style(tiny(style_image, loop="jax"), prepared, tmp_path)
    assert metrics["loop"] == "jax" and [int(r["step"]) for r in _log(tmp_path)] == list(range(1, 7))


@needs_jax
def test_bfloat16_trains_with_float32_grams(prepared, style_image, tmp_path):
    try:
        metrics = train_style(tiny(style_image, loop="jax", mixed_precision=True), prepared, tmp_path)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert all(np.isfinite(float(r["loss"])) for r in _log(tmp_path)) and metrics["loop"] == "jax"


@needs_jax
def test_device_next_frames_keep_the_host_contract():
    import jax
    from test_temporal import assert_moved

    from livestyle.model.fastloop import next_frames

    batch = np.random.default_rng(0).uniform(0, 255, (2, 40, 40, 3)).astype(np.float32)
    draw = jax.jit(lambda b, s: next_frames(b, s, seed=0, shift=3, noise=0.0))
    both, offsets = (np.asarray(a) for a in draw(batch, 5))
    np.testing.assert_array_equal(both[:2], batch)
    assert (offsets == offsets[0]).all() and np.abs(offsets).max() <= 3
    assert_moved(batch, both[2:], offsets[0])
    moves = {tuple(np.asarray(draw(batch, s)[1][0])) for s in range(12)}
    assert len(moves) == 12  # a function of the step
    whole = jax.jit(lambda b, s: next_frames(b, s, seed=0, shift=3, noise=0.0, moves="whole"))
    both, offsets = (np.asarray(a) for a in whole(batch, 5))
    dy, dx = (int(v) for v in offsets[0])
    assert (dy, dx) == tuple(offsets[0])
    np.testing.assert_array_equal(both[2:, 4:-4, 4:-4], batch[:, 4 + dy : 36 + dy, 4 + dx : 36 + dx])
    # correlated noise and gains, as on the host: the noise's std kept, its grain a few px
    flat = np.full((2, 96, 96, 3), 128.0, np.float32)
    grain = jax.jit(lambda b, s: next_frames(b, s, seed=0, shift=0, noise=5.0, noise_blur=1.5))
    noise = np.asarray(grain(flat, 5)[0])[2:] - flat
    assert abs(float(np.std(noise)) - 5.0) < 0.5
    assert np.corrcoef(noise[:, :, :-1].ravel(), noise[:, :, 1:].ravel())[0, 1] > 0.7
    gained = jax.jit(lambda b, s: next_frames(b, s, seed=0, shift=0, noise=0.0, gain=0.05))
    ratio = np.asarray(gained(flat, 5)[0])[2:, 0, 0] / 128.0
    assert np.abs(ratio - 1).max() <= 0.05 + 1e-5 and len(np.unique(ratio)) == 6
    # warp moves: each image its own smooth field, bicubic, as on the host
    from test_temporal import _smooth

    image, at = _smooth(64, 64)
    warped = jax.jit(lambda b, s: next_frames(b, s, seed=0, shift=2, noise=0.0, moves="warp", warp=1.5))
    both, field = (np.asarray(a) for a in warped(np.repeat(image[None], 2, 0), 5))
    assert field.shape == (2, 64, 64, 2) and np.abs(field).max() <= 5 + 1e-4
    assert float(field[0, ..., 0].std()) > 0.2 and float(np.abs(field[0] - field[1]).mean()) > 0.3
    y, x = np.mgrid[8:56, 8:56].astype(np.float32)
    truth = np.stack([at(y + field[b, 8:56, 8:56, 0], x + field[b, 8:56, 8:56, 1]) for b in range(2)])
    assert float(np.abs(both[2:, 8:56, 8:56] - truth).mean()) < 2.0


@needs_jax
def test_jax_loop_trains_with_the_temporal_loss(prepared, style_image, tmp_path):
    cfg = tiny(style_image, steps=8, loop="jax", steps_per_call=4)
    cfg = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, temporal_weight=10.0, temporal_shift=2, temporal_from=0.25,
                                                            temporal_noise=2.0, temporal_noise_blur=1.0, temporal_gain=0.02))
    train_style(cfg, prepared, tmp_path)
    rows = _log(tmp_path)
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    # from step 2 of 8 (0.25), in the middle of the first 4-step call: calls are cut there
    assert [float(r["temporal"]) > 0 for r in rows] == [False] * 2 + [True] * 6


@needs_jax
def test_jax_loop_trains_with_warp_moves(prepared, style_image, tmp_path):
    cfg = tiny(style_image, steps=4, loop="jax", steps_per_call=2)
    cfg = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, temporal_weight=10.0, temporal_shift=2, temporal_from=0.5,
                                                            temporal_moves="warp", temporal_warp=1.5))
    train_style(cfg, prepared, tmp_path)
    rows = _log(tmp_path)
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    assert [float(r["temporal"]) > 0 for r in rows] == [False] * 2 + [True] * 2
