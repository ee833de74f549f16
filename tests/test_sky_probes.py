import numpy as np
import pytest

from livestyle.measure.quality import flat_area, luminance
from livestyle.measure.sky_probes import PROBE_SIZE, probe_flat_areas, sky_probe


def test_a_probe_is_a_reproducible_rgb_sky_of_the_comparison_photos_size():
    a, b = sky_probe(3), sky_probe(3)
    assert a.shape == (*PROBE_SIZE, 3) and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 255
    np.testing.assert_array_equal(a, b)
    assert np.abs(sky_probe(4) - a).mean() > 5  # another seed, another sky
    assert sky_probe(0, (60, 90)).shape == (60, 90, 3)


def test_probes_hold_dark_clouds_bright_clouds_and_blue_sky():
    lum = np.concatenate([luminance(sky_probe(s)).ravel() for s in range(12)])
    blue = np.concatenate([(p[..., 2] - p[..., 0]).ravel() for p in (sky_probe(s) for s in range(12))])
    assert np.quantile(lum, 0.01) < 70 and np.quantile(lum, 0.99) > 200  # near-black to white clouds
    assert np.quantile(blue, 0.5) > 30  # mostly blue sky


@pytest.mark.parametrize("seed", range(4))
def test_a_probe_itself_is_not_flat(seed):
    # its sensor noise: a filter that passes the sky through is not blamed for a blob
    assert flat_area(sky_probe(seed)) == 0.0


def test_a_filter_that_paints_dark_clouds_flat_is_caught_and_the_identity_is_not():
    def blot(batch):  # a filter's black blob: every dark region one flat colour
        lum = batch @ np.array([0.299, 0.587, 0.114], np.float32)
        return np.where((lum < 110)[..., None], 10.0, batch)

    blots = probe_flat_areas(blot, 12)
    assert len(blots) == 12 and sum(a > 0 for a in blots) >= 3 and max(blots) < 0.5
    assert probe_flat_areas(lambda b: b, 12) == [0.0] * 12
