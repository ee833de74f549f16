"""FlickerWhereMeter splits the preview's warping error by how flat the original frame is."""

import numpy as np
import pytest

from livestyle.measure.flicker_where import FlickerWhereMeter, local_contrast


def _clip(n=6, h=64, w=96, seed=0):
    """A scene moving 1 px a frame: detailed texture on the left, a flat wall on the right."""
    rng = np.random.default_rng(seed)
    scene = np.full((h, w + n, 3), 128, np.uint8)
    scene[:, : (w + n) // 2] = rng.integers(0, 256, (h, (w + n) // 2, 1), dtype=np.uint8).repeat(3, axis=2)
    return [np.ascontiguousarray(scene[:, n - i : n - i + w]) for i in range(n)]


def _measure(frames, stylize):
    meter = FlickerWhereMeter()
    for f in frames:
        meter.update(f, stylize(f))
    return meter


def test_local_contrast_is_zero_on_a_flat_wall_and_high_on_texture():
    frame = _clip()[0].astype(np.float32) / 255
    c = local_contrast(frame)
    assert np.allclose(c[:, -30:], 0, atol=1e-4)
    assert c[:, 5:40].mean() > 0.2


def test_a_filter_that_adds_nothing_has_the_input_s_error_in_every_bin():
    meter = _measure(_clip(), lambda f: f)
    rows = meter.by_contrast()
    assert sum(r["pixel_share"] for r in rows) == pytest.approx(1.0)
    for r in rows:
        if r["pixel_share"] > 0 and r["warp_error_original"] > 0:
            assert r["ratio"] == pytest.approx(1.0)


def test_strokes_invented_on_a_flat_wall_show_up_in_the_flat_bin_and_the_heat_map():
    rng = np.random.default_rng(1)
    frames = _clip()

    def noisy_where_flat(f):
        out = f.astype(np.int16)
        flat = local_contrast(f.astype(np.float32) / 255) < 0.01
        out[flat] += rng.integers(-40, 41, (int(flat.sum()), 1), dtype=np.int16)
        return np.clip(out, 0, 255).astype(np.uint8)

    meter = _measure(frames, noisy_where_flat)
    rows = meter.by_contrast()
    flat, detailed = rows[0], rows[-1]
    # the wall adds flicker the input has not (its own error is 0); the texture, left alone
    # by this filter, keeps the input's error (DIS on white noise is not exact)
    assert flat["warp_error_original"] == 0 and flat["warp_error_stylized"] > 0.01
    assert detailed["ratio"] == pytest.approx(1.0, rel=0.05)  # the window leaks a little across the border
    assert flat["warp_error_stylized"] > 3 * detailed["warp_error_stylized"]
    assert flat["stylized_error_share"] > 0.6
    heat = meter.heat_map()
    assert heat.shape == (*frames[0].shape[:2], 3) and heat.dtype == np.uint8
    # the flat wall (right) glows, the moving texture (left, well inside its half) stays dark
    assert heat[:, -30:].mean() > 2 * heat[:, 8:30].mean()
    # one scale for several filters: a higher top draws the same error darker
    assert meter.heat_map(top=1.0).mean() < heat.mean()
    rms = meter.rms_map()
    assert rms.dtype == np.float32 and rms[:, -30:].mean() > 3 * rms[:, 8:30].mean()
    assert meter.summary()["pairs"] == len(frames) - 1


def test_no_pairs_no_heat_map():
    meter = FlickerWhereMeter()
    meter.update(_clip()[0], _clip()[0])
    with pytest.raises(ValueError, match="no frame pairs"):
        meter.heat_map()
