import numpy as np
import pytest

from livestyle.config import NetworkConfig
from livestyle.model.network import build_transformer, padding_for

OPTIONS = [
    {},
    {"res_blocks": 1, "width": 8},
    {"res_blocks": 5, "width": 8},
    {"separable": True, "width": 8},
    {"norm": "instance", "width": 8},
    {"upsample": "transpose", "width": 8},
    {"padding": "zero", "width": 8},
    {"antialias": 3, "width": 8},
    {"antialias": 5, "width": 8, "padding": "zero"},
]


@pytest.mark.parametrize("kw", OPTIONS, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "default")
@pytest.mark.parametrize("size", [(32, 32), (53, 30), (37, 41)])
def test_output_has_input_size_and_pixel_range(kw, size):
    # sizes not divisible by 4 must come out at the input size (853 is such a size)
    model = build_transformer(NetworkConfig(**kw), *size)
    x = np.random.default_rng(0).uniform(0, 255, (2, *size, 3)).astype(np.float32)
    y = np.asarray(model(x, training=False))
    assert y.shape == x.shape
    assert np.isfinite(y).all() and y.min() >= 0 and y.max() <= 255


def test_full_size_frame_keeps_853():
    model = build_transformer(NetworkConfig(width=4, res_blocks=1), 853, 480)
    assert model.output_shape == (None, 853, 480, 3)


def test_weights_do_not_depend_on_size():
    a = build_transformer(NetworkConfig(width=8), 64, 64)
    b = build_transformer(NetworkConfig(width=8), 853, 480)
    b.set_weights(a.get_weights())  # raises on any shape mismatch
    assert a.count_params() == b.count_params()


def test_separable_blocks_have_fewer_parameters():
    full = build_transformer(NetworkConfig(separable=False), 64, 64).count_params()
    sep = build_transformer(NetworkConfig(separable=True), 64, 64).count_params()
    assert sep < full * 0.5


@pytest.mark.parametrize("size,expected", [(853, (1, 2)), (480, (0, 0)), (854, (1, 1)), (1, (1, 2))])
def test_padding_for_multiple_of_4(size, expected):
    assert padding_for(size) == expected
    assert (size + sum(expected)) % 4 == 0


def test_bad_network_option_names_the_key():
    from livestyle.errors import LivestyleError

    with pytest.raises(LivestyleError, match="network.norm"):
        NetworkConfig(norm="layer")


@pytest.mark.parametrize("kw", [{"width": 8}, {"width": 8, "separable": True}, {"width": 8, "upsample": "transpose"}])
def test_initial_weights_are_a_function_of_the_seed_alone(kw):
    # Keras' unseeded initializers draw from Python's global `random`; another thread
    # consuming it made a resumed run start from other weights than the full run (CI)
    import random

    random.seed(1)
    a = build_transformer(NetworkConfig(**kw), 32, 32, seed=5).get_weights()
    random.seed(2)
    random.random()
    b = build_transformer(NetworkConfig(**kw), 40, 36, seed=5).get_weights()
    c = build_transformer(NetworkConfig(**kw), 32, 32, seed=6).get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    kernels = [i for i, w in enumerate(a) if w.ndim == 4]
    assert kernels and not any(np.array_equal(a[i], c[i]) for i in kernels)
    # each layer has its own draw: no two same-shaped kernels are equal
    assert not np.array_equal(a[kernels[1]].ravel()[:50], a[kernels[2]].ravel()[:50])


def test_input_levels_map_pixels_before_the_network(tmp_path):
    # the inference model (load_transformer) at levels [16, 235] answers a frame as the
    # trained network answers the frame mapped to 16..235; training builds stay 0..255
    from livestyle.convert.export import load_transformer

    net = NetworkConfig(width=8, res_blocks=1)
    trained = build_transformer(net, 24, 24)
    weights = tmp_path / "t.weights.h5"
    trained.save_weights(weights)
    x = np.random.default_rng(1).uniform(0, 255, (1, 24, 24, 3)).astype(np.float32)
    leveled = load_transformer(weights, NetworkConfig(width=8, res_blocks=1, input_levels=(16, 235)), 24, 24)
    expected = np.asarray(trained(16 + x * (235 - 16) / 255, training=False))
    np.testing.assert_allclose(np.asarray(leveled(x, training=False)), expected, atol=1e-3)
    plain = load_transformer(weights, net, 24, 24)
    np.testing.assert_allclose(np.asarray(plain(x, training=False)), np.asarray(trained(x, training=False)), atol=1e-4)


@pytest.mark.parametrize("size,margin,expected", [(853, 3, (0, 3)), (480, 3, (0, 4)), (474, 3, (1, 5)),
                                                   (712, 3, (0, 4)), (853, 0, (1, 2)), (480, 8, (0, 8)), (475, 8, (0, 9))])
def test_padding_for_leaves_the_end_margin(size, margin, expected):
    # the least padding to a multiple of 4 with at least `margin` px after the last row/column
    assert padding_for(size, end_margin=margin) == expected
    assert (size + sum(expected)) % 4 == 0 and expected[1] >= margin


def test_edge_margin_reflects_past_the_last_row_and_column(tmp_path):
    # the inference model (load_transformer) at edge_margin 3 answers a frame as the trained
    # network answers the frame reflected by the margin's padding, cropped back: the frame's
    # last columns are painted as the network paints the inside of a frame
    from livestyle.convert.export import load_transformer

    h, w = 37, 50  # padded to (0, 3) rows and (1, 5) columns
    net = NetworkConfig(width=8, res_blocks=1)
    trained = build_transformer(net, 40, 56)
    weights = tmp_path / "t.weights.h5"
    trained.save_weights(weights)
    x = np.random.default_rng(2).uniform(0, 255, (1, h, w, 3)).astype(np.float32)
    margined = load_transformer(weights, NetworkConfig(width=8, res_blocks=1, edge_margin=3), h, w)
    padded = np.pad(x, ((0, 0), (0, 3), (1, 5), (0, 0)), mode="reflect")
    expected = np.asarray(trained(padded, training=False))[:, :h, 1:1 + w]
    np.testing.assert_allclose(np.asarray(margined(x, training=False)), expected, atol=1e-3)
    # training builds (build_transformer's default) see the frame's own edges
    plain = build_transformer(net, h, w)
    plain.set_weights(trained.get_weights())
    assert np.abs(np.asarray(plain(x, training=False)) - expected).max() > 1


@pytest.mark.parametrize("size", [(7, 8), (8, 9), (9, 10), (10, 13)])
def test_edge_margin_on_small_frames(size):
    # the smallest frames the network takes (7 px: its quarter-size layers reflect 1 px)
    # still go through with the margin: one too small to reflect all of it goes without
    model = build_transformer(NetworkConfig(width=4, res_blocks=1), *size, edge_margin=3)
    x = np.random.default_rng(0).uniform(0, 255, (1, *size, 3)).astype(np.float32)
    assert np.asarray(model(x, training=False)).shape == x.shape


@pytest.mark.parametrize("margin", [-1, 17, 2.5])
def test_bad_edge_margin_names_the_key(margin):
    from livestyle.errors import LivestyleError

    with pytest.raises(LivestyleError, match="network.edge_margin"):
        NetworkConfig.from_params({"edge_margin": margin})


@pytest.mark.parametrize("levels", [(16,), (235, 16), (0, 300), ("a", 3)])
def test_bad_input_levels_name_the_key(levels):
    from livestyle.errors import LivestyleError

    with pytest.raises(LivestyleError, match="network.input_levels"):
        NetworkConfig.from_params({"input_levels": list(levels)})


def _moved_by(model, frame, d):
    """RMS (0..255) between the output of the frame moved left by d px and the output
    moved the same way, away from the borders."""
    h, w = frame.shape[0], frame.shape[1] - 8
    a = np.asarray(model(frame[None, :, :w], training=False))[0]
    b = np.asarray(model(frame[None, :, d : d + w], training=False))[0]
    return float(np.sqrt(np.mean((a[12:-12, d + 12 : -12] - b[12:-12, 12 : -12 - d]) ** 2)))


def test_antialiased_network_follows_one_pixel_moves():
    # a stride-4 network paints on its grid: a 4 px move is followed, a 1 px move is not
    # (the video flickers); the blur before each stride and after each upsample makes the
    # 1 px move nearly as well followed with the very same weights
    frame = np.random.default_rng(0).uniform(0, 255, (64, 96, 3)).astype(np.float32)
    frame = (frame + np.roll(frame, 1, 0) + np.roll(frame, 1, 1)) / 3  # some spatial structure
    plain = build_transformer(NetworkConfig(width=8), 64, 88, seed=3)
    blurred = build_transformer(NetworkConfig(width=8, antialias=3), 64, 88, seed=3)
    blurred.set_weights(plain.get_weights())  # the blur has no weights
    assert _moved_by(plain, frame, 4) < 0.2 * _moved_by(plain, frame, 1)
    assert _moved_by(blurred, frame, 1) < 0.2 * _moved_by(plain, frame, 1)


def test_antialias_accepts_only_its_tap_counts():
    from livestyle.errors import LivestyleError

    with pytest.raises(LivestyleError, match="network.antialias"):
        NetworkConfig(antialias=4)
