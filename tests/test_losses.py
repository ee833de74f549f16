import numpy as np
import pytest

from livestyle.errors import LivestyleError
from livestyle.model.losses import colour_loss, colour_moments, content_loss, gram, style_loss, total_variation
from livestyle.model.lossnet import build_lossnet

LAYERS = ["block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3"]


def test_gram_is_normalised_and_symmetric():
    f = np.random.default_rng(0).normal(size=(2, 8, 6, 5)).astype(np.float32)
    g = np.asarray(gram(f))
    assert g.shape == (2, 5, 5)
    np.testing.assert_allclose(g, np.transpose(g, (0, 2, 1)), rtol=1e-5)
    flat = f[0].reshape(-1, 5)
    np.testing.assert_allclose(g[0], flat.T @ flat / (8 * 6 * 5), rtol=1e-4)


def test_losses_are_zero_at_the_target_and_positive_elsewhere():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(1, 8, 8, 4)).astype(np.float32), rng.normal(size=(1, 8, 8, 4)).astype(np.float32)
    assert float(content_loss([a], [a])) == pytest.approx(0.0, abs=1e-7)
    assert float(content_loss([a], [b])) > 0.5
    assert float(style_loss([a], [np.asarray(gram(a))])) == pytest.approx(0.0, abs=1e-7)
    assert float(style_loss([a], [np.asarray(gram(b))])) > 0


def test_total_variation_prefers_smooth_images():
    smooth = np.tile(np.linspace(0, 255, 16, dtype=np.float32)[None, :, None, None], (1, 1, 16, 3))
    noisy = np.random.default_rng(2).uniform(0, 255, (1, 16, 16, 3)).astype(np.float32)
    assert float(total_variation(smooth)) < float(total_variation(noisy)) / 5


def _painting(seed=3, size=(24, 32)):
    """A two-colour painting with grain: red-orange strokes over blue-black."""
    rng = np.random.default_rng(seed)
    img = np.where(rng.random(size + (1,)) < 0.4, [[[220.0, 90.0, 30.0]]], [[[25.0, 35.0, 70.0]]])
    return np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.float32)[None]


def test_colour_moments_are_the_pixels_mean_and_covariance_on_unit_scale():
    batch = np.concatenate([_painting(1), _painting(2)])
    mean, cov = (np.asarray(t) for t in colour_moments(batch))
    flat = batch.reshape(-1, 3) / 255.0
    np.testing.assert_allclose(mean, flat.mean(0), rtol=1e-5)
    np.testing.assert_allclose(cov, np.cov(flat.T, bias=True), rtol=1e-3, atol=1e-7)


def test_colour_loss_sees_the_palette_not_the_layout():
    painting = _painting()
    target = tuple(np.asarray(t) for t in colour_moments(painting))
    shuffled = np.random.default_rng(0).permutation(painting.reshape(-1, 3)).reshape(painting.shape)
    assert float(colour_loss(shuffled, *target)) == pytest.approx(0.0, abs=1e-6)
    # a filter's typical miss: the painting's colours at 60 % contrast, and tinted green
    mean = painting.reshape(-1, 3).mean(0)
    pale = mean + 0.6 * (painting - mean)
    tinted = np.clip(painting + [0.0, 40.0, 0.0], 0, 255)
    assert float(colour_loss(pale, *target)) > 0.2
    assert float(colour_loss(tinted, *target)) > 0.05
    # closer colours score lower: halfway back from the pale version
    assert float(colour_loss(mean + 0.8 * (painting - mean), *target)) < float(colour_loss(pale, *target)) / 2


@pytest.fixture(scope="module")
def hed():
    return build_lossnet("hed_vgg16", LAYERS)


def test_hed_lossnet_loads_offline_and_sees_texture(hed):
    flat = np.full((1, 64, 64, 3), 128, np.float32)
    stripes = flat.copy()
    stripes[:, :, ::4] = 0
    f_flat, f_stripes = hed(flat), hed(stripes)
    assert [tuple(f.shape[-1:]) for f in f_flat] == [(64,), (128,), (256,), (512,)]
    # pretrained filters respond to edges: a striped image lights up far more
    assert float(np.mean(f_stripes[1])) > 2 * float(np.mean(f_flat[1]))


def test_per_layer_style_terms_are_comparable(hed):
    # the relative normalisation keeps deep layers from vanishing next to block1
    rng = np.random.default_rng(3)
    a = rng.uniform(0, 255, (1, 64, 64, 3)).astype(np.float32)
    b = np.full((1, 64, 64, 3), 90, np.float32) + rng.normal(0, 5, (1, 64, 64, 3)).astype(np.float32)
    fa, fb = hed(a), hed(b)
    terms = [float(style_loss([x], [np.asarray(gram(y))])) for x, y in zip(fa, fb)]
    assert max(terms) / min(terms) < 1e3


def test_unknown_layer_and_network_are_clear_errors():
    with pytest.raises(LivestyleError, match="block9_conv1"):
        build_lossnet("hed_vgg16", ["block9_conv1"])
    with pytest.raises(LivestyleError, match="not one of"):
        build_lossnet("resnet", LAYERS)


def test_johnson_normalisation_is_plain_mse():
    rng = np.random.default_rng(4)
    a, b = rng.normal(0, 3, (1, 8, 8, 4)).astype(np.float32), rng.normal(0, 3, (1, 8, 8, 4)).astype(np.float32)
    np.testing.assert_allclose(float(content_loss([a], [b], "johnson")), np.mean((a - b) ** 2), rtol=1e-5)
    # relative divides by the target's energy: scale-free
    assert float(content_loss([10 * a], [10 * b])) == pytest.approx(float(content_loss([a], [b])), rel=1e-4)
    g = np.asarray(gram(b))
    np.testing.assert_allclose(float(style_loss([a], [g], "johnson")), np.mean((np.asarray(gram(a)) - g) ** 2), rtol=1e-4)
    img = rng.uniform(0, 255, (1, 8, 8, 3)).astype(np.float32)
    dh, dw = np.diff(img, axis=1), np.diff(img, axis=2)
    np.testing.assert_allclose(float(total_variation(img, "johnson")), np.mean(dh**2) + np.mean(dw**2), rtol=1e-5)


def test_style_layer_weights_scale_each_layer_term():
    rng = np.random.default_rng(0)
    feats = [rng.normal(size=(1, 8, 8, 4)).astype("float32") for _ in range(2)]
    targets = [np.asarray(gram(rng.normal(size=(1, 8, 8, 4)).astype("float32"))) for _ in range(2)]
    first = float(style_loss(feats[:1], targets[:1]))
    second = float(style_loss(feats[1:], targets[1:]))
    assert float(style_loss(feats, targets, layer_weights=[3.0, 1.0])) == pytest.approx(3 * first + second, rel=1e-5)
    assert float(style_loss(feats, targets, layer_weights=None)) == pytest.approx(first + second, rel=1e-5)


def test_style_layer_weights_must_match_the_layers():
    from livestyle.config import LossConfig

    with pytest.raises(LivestyleError, match="style_layer_weights has 2 values for 4"):
        LossConfig(style_layer_weights=(1.0, 2.0))
    with pytest.raises(LivestyleError, match=">= 0"):
        LossConfig(style_layer_weights=(1.0, -1.0, 1.0, 1.0))
