"""The temporal loss (livestyle.model.temporal): next frames are the batch moved by a known
offset plus noise, and the term measures how far the output fails to move with it."""

import json

import numpy as np
import pytest
from keras import ops
from test_train import _log, prepared, style_image, tiny  # noqa: F401 (fixtures)

from livestyle.config import LossConfig
from livestyle.errors import LivestyleError
from livestyle.model.temporal import next_frames, temporal_term
from livestyle.model.train import train_style


def _batch(n=3, h=40, w=48, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, h, w, 3)).astype(np.float32)


def bilinear(img, y, x):
    """Reference: img (H, W, C) at real coordinates (y, x)."""
    y0, x0 = int(np.floor(y)), int(np.floor(x))
    fy, fx = y - y0, x - x0
    return ((1 - fy) * ((1 - fx) * img[y0, x0] + fx * img[y0, x0 + 1])
            + fy * ((1 - fx) * img[y0 + 1, x0] + fx * img[y0 + 1, x0 + 1]))


def assert_moved(batch, nxt, offset, points=(5, 20, 34)):
    """next[i, j] = batch[i + dy, j + dx] (bilinear) wherever that lies inside the frame."""
    dy, dx = (float(v) for v in offset)
    for i in points:
        for j in points:
            for b in range(len(batch)):
                np.testing.assert_allclose(nxt[b, i, j], bilinear(batch[b], i + dy, j + dx), rtol=1e-4, atol=1e-2)


@pytest.mark.parametrize("seed", range(5))
def test_next_frames_are_the_batch_moved_by_the_offset(seed):
    batch = _batch()
    both, offsets = next_frames(batch, np.random.default_rng(seed), shift=3, noise=0.0)
    assert both.shape == (6, 40, 48, 3) and offsets.shape == (3, 2)
    np.testing.assert_array_equal(both[:3], batch)
    assert (offsets == offsets[0]).all() and np.abs(offsets).max() <= 3
    assert np.abs(offsets[0] - np.round(offsets[0])).max() > 1e-3  # sub-pixel moves, as a video's
    assert_moved(batch, both[3:], offsets[0])


def test_whole_pixel_moves_are_exact_shifts():
    # bilinear resampling also blurs the next frame; whole moves copy pixels
    batch = _batch()
    moves = set()
    for seed in range(8):
        both, offsets = next_frames(batch, np.random.default_rng(seed), shift=3, noise=0.0, moves="whole")
        dy, dx = (int(v) for v in offsets[0])
        assert (dy, dx) == tuple(offsets[0]) and max(abs(dy), abs(dx)) <= 3
        moves.add((dy, dx))
        np.testing.assert_array_equal(both[3:, 4:-4, 4:-4], batch[:, 4 + dy : 36 + dy, 4 + dx : 44 + dx])
    assert len(moves) > 4


def test_lanczos_moves_are_sub_pixel_without_the_bilinear_blur():
    # a fine pattern (period 5 px) moved by a fraction of a pixel: bilinear resampling
    # blurs it, Lanczos keeps it (the temporal term must not ask the filter to blur)
    from livestyle.model.temporal import moved_window

    y, x = np.mgrid[0:48, 0:48].astype(np.float32)
    pattern = lambda dy, dx: 128 + 100 * np.sin(2 * np.pi * ((y + dy) / 5 + (x + dx) / 7))  # noqa: E731
    images = np.repeat(pattern(0, 0)[None, :, :, None], 3, -1)
    offset = np.array([0.4, -1.5], np.float32)
    truth = pattern(*offset)[8:40, 8:40]
    err = {m: float(np.abs(np.asarray(ops.convert_to_numpy(moved_window(images, offset, 8, 32, 32, m)))[0, :, :, 0]
                           - truth).mean()) for m in ("subpixel", "lanczos")}
    assert err["lanczos"] < 0.25 * err["subpixel"] and err["lanczos"] < 3.0
    # and whole offsets stay exact copies
    exact = np.asarray(ops.convert_to_numpy(moved_window(images, np.array([2.0, -3.0], np.float32), 8, 32, 32, "lanczos")))
    np.testing.assert_allclose(exact[0, :, :, 0], images[0, 10:42, 5:37, 0], atol=1e-3)


def test_next_frames_add_noise_of_the_asked_strength():
    batch = np.full((2, 64, 64, 3), 128.0, np.float32)
    both, _ = next_frames(batch, np.random.default_rng(0), shift=0, noise=5.0)
    assert abs(float(np.std(both[2:] - batch)) - 5.0) < 0.2
    assert both[2:].min() >= 0 and both[2:].max() <= 255


def _neighbour_correlation(noise):
    a = noise[:, :, :-1].ravel() - noise.mean()
    b = noise[:, :, 1:].ravel() - noise.mean()
    return float(np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b)))


def test_correlated_noise_keeps_its_strength_and_grows_grain():
    batch = np.full((2, 96, 96, 3), 128.0, np.float32)
    white, _ = next_frames(batch, np.random.default_rng(0), shift=0, noise=5.0)
    grain, _ = next_frames(batch, np.random.default_rng(0), shift=0, noise=5.0, noise_blur=1.5)
    white, grain = white[2:] - batch, grain[2:] - batch
    assert abs(float(np.std(grain)) - 5.0) < 0.5  # the same std, as temporal_noise says
    # white noise: neighbours independent; blurred: neighbours alike (grain a few px wide)
    assert abs(_neighbour_correlation(white)) < 0.05 and _neighbour_correlation(grain) > 0.7
    # no blur draws exactly what a run without the option drew
    again, _ = next_frames(batch, np.random.default_rng(0), shift=0, noise=5.0, noise_blur=0.0, gain=0.0)
    np.testing.assert_array_equal(again[2:] - batch, white)


def test_gain_changes_each_channel_of_the_next_frame_by_at_most_the_asked_share():
    batch = _batch(n=4)
    both, offsets = next_frames(batch, np.random.default_rng(3), shift=0, noise=0.0, gain=0.05)
    np.testing.assert_array_equal(both[:4], batch)  # the frames themselves untouched
    ratio = both[4:].reshape(4, -1, 3) / np.maximum(batch.reshape(4, -1, 3), 1e-3)
    inside = (both[4:].reshape(4, -1, 3) < 255) & (batch.reshape(4, -1, 3) > 5)  # not clipped, not ~0
    per_channel = np.array([[np.median(ratio[i, inside[i, :, c], c]) for c in range(3)] for i in range(4)])
    assert np.abs(per_channel - 1).max() <= 0.05 + 1e-4
    assert len(np.unique(np.round(per_channel, 4))) > 6  # drawn per image and per channel
    for i in range(4):  # one gain over a channel: a change of exposure, not noise
        for c in range(3):
            np.testing.assert_allclose(ratio[i, inside[i, :, c], c], per_channel[i, c], rtol=1e-4)
    assert both[4:].max() <= 255


def test_temporal_term_is_zero_for_a_filter_that_moves_with_the_frame():
    batch = _batch(h=64, w=64)
    both, offsets = next_frames(batch, np.random.default_rng(1), 4, 0.0)
    follows = float(ops.convert_to_numpy(temporal_term(both[:3], both[3:], offsets[0], 4)))
    assert follows < 1e-10  # an identity filter moves with the frame
    # a filter whose output stays put while the frame moves (a fixed pattern) is penalised
    stuck = float(ops.convert_to_numpy(temporal_term(both[:3], both[:3], offsets[0], 4)))
    assert stuck > 0.01
    # so is one that reads the offset wrong
    wrong = float(ops.convert_to_numpy(temporal_term(both[:3], both[3:], -offsets[0], 4)))
    assert wrong > 0.01


def _smooth(h, w):
    """A pattern bicubic resampling reproduces closely (periods 11-13 px), and its truth at real coordinates."""
    def at(y, x):
        return np.stack([128 + 90 * np.sin(2 * np.pi * (y / 11 + x / 13)), 128 + 90 * np.cos(2 * np.pi * (y / 13 - x / 12)),
                         128 + 60 * np.sin(2 * np.pi * x / 12)], -1)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return at(y, x).astype(np.float32), at


def test_warp_moves_deform_each_image_by_its_own_smooth_field():
    image, at = _smooth(64, 64)
    batch = np.repeat(image[None], 3, 0)
    both, field = next_frames(batch, np.random.default_rng(2), shift=2, noise=0.0, moves="warp", warp=1.5)
    assert both.shape == (6, 64, 64, 3) and field.shape == (3, 64, 64, 2)
    np.testing.assert_array_equal(both[:3], batch)
    assert np.abs(field).max() <= 2 + 2 * 1.5 + 1e-4
    # not rigid: the displacement varies across each image, and from image to image
    assert min(float(field[b, ..., k].std()) for b in range(3) for k in range(2)) > 0.2
    assert float(np.abs(field[0] - field[1]).mean()) > 0.3
    # smooth: neighbouring pixels move alike (a deformation, not noise; control points
    # 16 px apart on this 64 px frame)
    steps = np.abs(np.concatenate([np.diff(field, axis=1).ravel(), np.diff(field, axis=2).ravel()]))
    assert float(steps.mean()) < 0.1 and float(steps.max()) < 0.75
    # next[i, j] = frame(i + dy, j + dx), sharp: bicubic keeps an 11-13 px pattern to ~1 %
    inner = (slice(None), slice(8, 56), slice(8, 56))
    y, x = np.mgrid[8:56, 8:56].astype(np.float32)
    truth = np.stack([at(y + field[b, 8:56, 8:56, 0], x + field[b, 8:56, 8:56, 1]) for b in range(3)])
    assert float(np.abs(both[3:][inner] - truth).mean()) < 2.0


def test_warped_window_is_an_exact_copy_at_whole_offsets():
    from livestyle.model.temporal import warped_window

    images = _batch(n=2, h=40, w=40)
    field = np.zeros((2, 24, 24, 2), np.float32)
    field[0, ..., 0], field[0, ..., 1], field[1, ..., 0] = 3.0, -2.0, -5.0
    out = np.asarray(ops.convert_to_numpy(warped_window(images, field, 8, 24, 24)))
    np.testing.assert_allclose(out[0], images[0, 11:35, 6:30], atol=1e-3)
    np.testing.assert_allclose(out[1], images[1, 3:27, 8:32], atol=1e-3)


def test_warp_term_asks_the_output_to_follow_the_field():
    image, _ = _smooth(80, 80)
    batch = np.repeat(image[None], 2, 0)
    both, field = next_frames(batch, np.random.default_rng(4), shift=2, noise=0.0, moves="warp", warp=1.5)
    term = lambda a, b, f: float(ops.convert_to_numpy(temporal_term(a, b, f, 2, "warp", 1.5)))  # noqa: E731
    follows = term(both[:2], both[2:], field)
    assert follows < 1e-5  # an identity filter follows the deformation
    assert term(both[:2], both[:2], field) > 100 * follows  # an output that stays put does not
    # nor one that reads only the translation, not the local field
    rigid = np.broadcast_to(field.mean(axis=(1, 2), keepdims=True), field.shape)
    assert term(both[:2], both[2:], rigid) > 20 * follows


def _contrast_slope(normalise: str) -> float:
    """d term / d c at c = 1, the outputs' contrast scaled by c about their means: how
    much the term pays a filter for painting paler (TensorFlow's tape: the venv's backend)."""
    import tensorflow as tf

    rng = np.random.default_rng(5)
    image, _ = _smooth(64, 64)
    batch = np.stack([image, 0.3 * image + 90])  # a bold and a pale output
    both, field = next_frames(batch, rng, shift=2, noise=6.0, moves="warp", warp=1.5)
    mean = float(both.mean())  # one centre: the moves keep a constant as it is, so the error scales by c
    c = tf.Variable(1.0)
    with tf.GradientTape() as tape:
        out = mean + c * (both - mean)
        term = temporal_term(out[:2], out[2:], field, 2, "warp", 1.5, normalise)
    return float(tape.gradient(term, c)) / float(term)


def test_the_contrast_normalised_term_does_not_pay_for_a_paler_output():
    # the plain term falls as the output's contrast falls (2x its value per unit of c):
    # a flatter filter looks steadier; normalised by the output's variance it does not
    assert _contrast_slope("none") > 1.5
    # (all but the energy's floor, 1e-5, which the pale image feels by under 2 %)
    assert abs(_contrast_slope("contrast")) < 0.05
    assert abs(_contrast_slope("detail")) < 0.05
    # and it still tells a filter that follows the frame from one that does not
    image, _ = _smooth(80, 80)
    both, field = next_frames(np.repeat(image[None], 2, 0), np.random.default_rng(4), shift=2, noise=0.0,
                              moves="warp", warp=1.5)
    for normalise in ("contrast", "detail"):
        term = lambda a, b: float(ops.convert_to_numpy(temporal_term(a, b, field, 2, "warp", 1.5, normalise)))  # noqa: E731
        assert term(both[:2], both[:2]) > 100 * term(both[:2], both[2:])


def test_detail_energy_counts_strokes_not_the_scenes_layout():
    from livestyle.model.temporal import output_energy

    y, x = np.mgrid[0:64, 0:64].astype(np.float32)
    # a dark city under a bright sky, graded over ~16 px: broad layout (a hard edge is detail)
    layout = np.repeat((0.2 + 0.3 * (1 + np.tanh((y - 32) / 8)) + 0.002 * x)[None, ..., None], 3, -1)
    strokes = 0.5 + 0.1 * np.sin(2 * np.pi * np.stack([x / 5 + y / 7] * 3, -1))[None]
    energy = lambda img, how: float(ops.convert_to_numpy(output_energy(img.astype(np.float32), how))[0])  # noqa: E731
    assert energy(layout, "contrast") > 10 * energy(strokes, "contrast") / 2  # variance: the layout dominates
    assert energy(layout, "detail") < energy(strokes, "detail") / 5  # detail: the strokes do


def test_negative_temporal_settings_are_refused():
    with pytest.raises(LivestyleError, match="temporal"):
        LossConfig(temporal_weight=-1)
    with pytest.raises(LivestyleError, match="temporal_from"):
        LossConfig(temporal_from=1.0)
    with pytest.raises(LivestyleError, match="temporal_warp"):
        LossConfig(temporal_warp=-1.0)
    with pytest.raises(LivestyleError, match="temporal_normalise"):
        LossConfig.from_params({"temporal_normalise": "luma"})
    for bad in ({"temporal_noise_blur": -1.0}, {"temporal_gain": 0.5}, {"temporal_gain": -0.1}):
        with pytest.raises(LivestyleError, match="temporal_noise_blur|temporal_gain"):
            LossConfig(**bad)


def _with_temporal(style_image, weight, start=0.0, **train):
    import dataclasses

    cfg = tiny(style_image, steps=6, **train)
    # correlated noise and gains on: the Keras loop draws its pairs with them
    return dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, temporal_weight=weight, temporal_shift=2, temporal_noise=3.0,
                                                             temporal_from=start, temporal_noise_blur=1.0, temporal_gain=0.02))


def test_training_with_the_temporal_loss_logs_and_weighs_it(prepared, style_image, tmp_path):
    train_style(_with_temporal(style_image, 50.0), prepared, tmp_path / "on")
    train_style(_with_temporal(style_image, 0.0), prepared, tmp_path / "off")
    on, off = _log(tmp_path / "on"), _log(tmp_path / "off")
    assert all(float(r["temporal"]) > 0 for r in on) and all(float(r["temporal"]) == 0 for r in off)
    for r in on:  # the logged loss is the weighted sum, temporal term included
        parts = float(r["content"]) + float(r["style"]) + float(r["tv"]) + 50.0 * float(r["temporal"])
        assert float(r["loss"]) == pytest.approx(parts, rel=1e-4)
    assert json.loads((tmp_path / "on" / "train.json").read_text())["final"]["temporal"] > 0
    # the photo batches are those of a run without it: step 1 sees the same crops
    assert float(on[0]["content"]) == pytest.approx(float(off[0]["content"]), rel=0.2)


def test_training_with_warp_moves(prepared, style_image, tmp_path):
    import dataclasses

    cfg = _with_temporal(style_image, 50.0)
    train_style(dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, temporal_moves="warp", temporal_warp=1.5)),
                prepared, tmp_path)
    rows = _log(tmp_path)
    assert all(np.isfinite(float(r["loss"])) and float(r["temporal"]) > 0 for r in rows)


def test_the_temporal_term_starts_at_its_fraction_of_the_steps(prepared, style_image, tmp_path):
    train_style(_with_temporal(style_image, 50.0, start=0.5), prepared, tmp_path)
    assert [float(r["temporal"]) > 0 for r in _log(tmp_path)] == [False] * 3 + [True] * 3
