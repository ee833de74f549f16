import json

import numpy as np
import pytest

from livestyle.config import NetworkConfig
from livestyle.errors import LivestyleError
from livestyle.model.palette import (PALETTE_FILE, apply_map, blended, fit_palette, load_palette, save_palette,
                                     training_photos, transport_map)


def _gaussian_pixels(rng, mean, n=20000):
    a = rng.normal(size=(3, 3)) * 20
    return rng.normal(size=(n, 3)) @ a.T + mean


def test_transport_map_moves_mean_and_covariance_onto_the_target():
    rng = np.random.default_rng(0)
    source = _gaussian_pixels(rng, [120, 90, 60])
    target = _gaussian_pixels(rng, [100, 70, 90])
    a, b = transport_map(source, target)
    moved = source @ a.T + b
    np.testing.assert_allclose(moved.mean(0), target.mean(0), atol=1e-6)
    # the map's ridge (1 unit on each variance) is all that separates the covariances
    np.testing.assert_allclose(np.cov(moved.T), np.cov(target.T), rtol=0.03, atol=2.0)
    np.testing.assert_allclose(a, a.T, atol=1e-9)  # the optimal linear map is symmetric...
    assert np.linalg.eigvalsh(a).min() > 0  # ...and positive definite: no colour is flipped


def test_fit_palette_undoes_a_pale_filter():
    # a filter that halves contrast and lifts the blacks, on photos whose colours are the
    # painting's: the palette map is its inverse, so the photo's colours come back
    rng = np.random.default_rng(1)
    photos = [rng.uniform(0, 255, (24, 32, 3)) for _ in range(6)]
    painting = np.concatenate([p.reshape(-1, 3) for p in photos]).reshape(-1, 64, 3)
    pale = lambda batch: 0.5 * batch + 60  # noqa: E731
    record = fit_palette(pale, photos, painting, pixels=500)
    a, b = np.asarray(record["matrix"]), np.asarray(record["offset"])
    np.testing.assert_allclose(a, 2 * np.eye(3), atol=0.15)
    restored = apply_map(pale(photos[0][None])[0], a, b)
    assert np.abs(restored - photos[0]).mean() < 6
    assert record["photos"] == 6


def test_flat_painting_and_flat_filter_give_a_finite_map():
    # a one-colour painting (or a filter that paints one colour) has a singular covariance:
    # the map stays finite, and a flat painting pulls every colour to near its own
    rng = np.random.default_rng(4)
    photos = [rng.uniform(0, 255, (16, 16, 3)) for _ in range(3)]
    painting = np.full((32, 32, 3), (200.0, 40.0, 30.0))
    record = fit_palette(lambda b: b, photos, painting, pixels=300)
    a, b = np.asarray(record["matrix"]), np.asarray(record["offset"])
    assert np.isfinite(a).all() and np.isfinite(b).all()
    assert np.abs(apply_map(photos[0], a, b).reshape(-1, 3).mean(0) - (200, 40, 30)).max() < 5
    flat = fit_palette(lambda batch: np.full_like(batch, 128.0), photos, photos[0], pixels=300)
    assert np.isfinite(flat["matrix"]).all() and np.isfinite(flat["offset"]).all()


def test_blended_strength_runs_from_identity_to_the_map():
    a, b = np.diag([2.0, 1.5, 1.2]), np.array([-10.0, 4.0, 7.0])
    m0, o0 = blended(a, b, 0.0)
    np.testing.assert_allclose(m0, np.eye(3))
    np.testing.assert_allclose(o0, 0)
    m1, o1 = blended(a, b, 1.0)
    np.testing.assert_allclose(m1, a)
    np.testing.assert_allclose(o1, b)
    mh, oh = blended(a, b, 0.5)
    np.testing.assert_allclose(mh, (a + np.eye(3)) / 2)


def _trained(tmp_path, size=(24, 28)):
    from livestyle.model.network import build_transformer

    net = NetworkConfig(width=8, res_blocks=1)
    model = build_transformer(net, *size)
    weights = tmp_path / "transformer.weights.h5"
    model.save_weights(weights)
    return model, weights


def test_inference_model_applies_the_palette_next_to_its_weights(tmp_path):
    from livestyle.convert.export import load_transformer

    model, weights = _trained(tmp_path)
    x = np.random.default_rng(2).uniform(0, 255, (1, 24, 28, 3)).astype(np.float32)
    plain = np.asarray(model(x, training=False))
    a, b = np.array([[1.4, 0.1, 0.0], [0.1, 1.2, -0.1], [0.0, -0.1, 1.3]]), np.array([-30.0, -10.0, 5.0])
    save_palette(weights.with_name(PALETTE_FILE), {"matrix": a.tolist(), "offset": b.tolist()})
    full = load_transformer(weights, NetworkConfig(width=8, res_blocks=1, palette_strength=1.0), 24, 28)
    np.testing.assert_allclose(np.asarray(full(x, training=False)), apply_map(plain, a, b), atol=1e-3)
    half = load_transformer(weights, NetworkConfig(width=8, res_blocks=1, palette_strength=0.5), 24, 28)
    np.testing.assert_allclose(np.asarray(half(x, training=False)), apply_map(plain, *blended(a, b, 0.5)), atol=1e-3)
    off = load_transformer(weights, NetworkConfig(width=8, res_blocks=1, palette_strength=0.0), 24, 28)
    np.testing.assert_allclose(np.asarray(off(x, training=False)), plain, atol=1e-4)


def test_weights_without_a_palette_load_as_trained(tmp_path):
    from livestyle.convert.export import load_transformer

    model, weights = _trained(tmp_path)
    x = np.random.default_rng(3).uniform(0, 255, (1, 24, 28, 3)).astype(np.float32)
    loaded = load_transformer(weights, NetworkConfig(width=8, res_blocks=1, palette_strength=1.0), 24, 28)
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), np.asarray(model(x, training=False)), atol=1e-4)


@pytest.mark.parametrize("content", ["{not json", json.dumps({"matrix": [[1, 0], [0, 1]], "offset": [0, 0, 0]}),
                                     json.dumps({"offset": [0, 0, 0]})])
def test_bad_palette_file_names_the_file(tmp_path, content):
    weights = tmp_path / "transformer.weights.h5"
    (tmp_path / PALETTE_FILE).write_text(content)
    with pytest.raises(LivestyleError, match=PALETTE_FILE):
        load_palette(weights)


def test_training_photos_spread_over_the_set(tmp_path):
    for i in range(10):
        (tmp_path / f"{i:06d}.png").write_bytes(b"")
    picked = [p.name for p in training_photos(tmp_path, 4)]
    assert picked == ["000000.png", "000002.png", "000004.png", "000006.png"]
    with pytest.raises(LivestyleError, match="no training photos"):
        training_photos(tmp_path / "missing", 4)


@pytest.mark.parametrize("strength", [-0.1, 1.5])
def test_bad_palette_strength_names_the_key(strength):
    with pytest.raises(LivestyleError, match="network.palette_strength"):
        NetworkConfig.from_params({"palette_strength": strength})
