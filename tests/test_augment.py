"""Overexposed training crops (livestyle.model.augment): the share and the gain asked for,
clipped like a blown-out sky, the same batch for the same step (resume), and off by
default without changing any batch."""

import importlib.util

import keras
import numpy as np
import pytest
from test_train import prepared  # noqa: F401 (fixture)

from livestyle.config import TrainConfig
from livestyle.errors import LivestyleError
from livestyle.model.data import load_images
from livestyle.model.train import Batches

ON_JAX = importlib.util.find_spec("jax") is not None and keras.backend.backend() == "jax"


def _cfg(**kw):
    return TrainConfig(batch_size=8, image_size=32, seed=3, **kw)


def _gain_per_crop(plain, bright):
    """The gain each crop was brightened by (from its unclipped pixels), and whether
    every pixel obeys min(plain * gain, 255)."""
    gains, exact = [], []
    for p, b in zip(plain, bright):
        free = (b < 254.5) & (p > 20)
        g = float(np.median(b[free] / p[free]))
        gains.append(g)
        exact.append(np.allclose(b, np.minimum(p * g, 255), atol=0.02 * 255))
    return np.array(gains), exact


def test_off_by_default_and_the_batches_are_unchanged(prepared):
    files = load_images(prepared / "train")
    assert TrainConfig().highlight_prob == 0.0
    np.testing.assert_array_equal(Batches(files, _cfg())(5), Batches(files, _cfg(highlight_prob=0.0, highlight_gain=3.0))(5))


def test_every_crop_brightened_and_clipped_when_asked(prepared):
    files = load_images(prepared / "train")
    plain = Batches(files, _cfg())(7)
    bright = Batches(files, _cfg(highlight_prob=1.0, highlight_gain=2.0))(7)
    gains, exact = _gain_per_crop(plain, bright)
    assert all(exact)
    assert np.all((gains >= 1.0) & (gains <= 2.0)) and gains.std() > 0.05  # drawn, not fixed
    assert bright.max() == 255.0 and (bright == 255).mean() > (plain == 255).mean()  # new saturated areas


def test_a_share_of_crops_is_brightened_and_the_rest_untouched(prepared):
    files = load_images(prepared / "train")
    cfg = _cfg(highlight_prob=0.5, highlight_gain=1.8)
    plain, bright = Batches(files, _cfg())(11), Batches(files, cfg)(11)
    same = [np.array_equal(p, b) for p, b in zip(plain, bright)]
    assert 0 < sum(same) < len(same)  # 8 crops at p = 0.5: some of each (seeded)
    np.testing.assert_array_equal(bright, Batches(files, cfg)(11))  # a resumed run draws the same batch


@pytest.mark.parametrize("key,value", [("highlight_prob", 1.5), ("highlight_prob", -0.1), ("highlight_gain", 0.5)])
def test_out_of_range_settings_name_the_key(key, value):
    with pytest.raises(LivestyleError, match=f"train.{key}"):
        TrainConfig.from_params({key: value})


@pytest.mark.skipif(not ON_JAX, reason="needs jax as the Keras backend (KERAS_BACKEND=jax)")
def test_device_batches_brighten_the_same_crops_they_draw(prepared):
    import jax.numpy as jnp

    from livestyle.model.fastloop import load_crops, random_batch

    data = jnp.asarray(load_crops(load_images(prepared / "train"), 32))
    plain = np.asarray(random_batch(data, 4, seed=3, batch=8, size=24))
    bright = np.asarray(random_batch(data, 4, seed=3, batch=8, size=24, highlight_prob=1.0, highlight_gain=2.0))
    gains, exact = _gain_per_crop(plain, bright)
    assert all(exact) and np.all((gains >= 1.0) & (gains <= 2.0))
