"""Temporal warping error: identity adds no flicker, per-frame noise clearly does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from livestyle.measure.flicker import FlickerMeter, consistency_mask, warp_error
from livestyle.media.synth_clip import SynthConfig, synth_frames
from livestyle.media.video import fit, read_frames

FOX = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "fox.mp4"


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    # 15 fps like the filter, portrait, small
    cfg = SynthConfig(width=144, height=256, fps=15, seconds=2.0, seed=1)
    return list(synth_frames(cfg))


def _noisy(frames, sigma, seed=0):
    rng = np.random.default_rng(seed)
    return [np.clip(f + rng.normal(0, sigma, f.shape), 0, 255).astype(np.uint8) for f in frames]


@pytest.mark.parametrize("flow_scale", [1.0, 0.5])
def test_identity_stylizer_has_the_originals_flicker(frames, flow_scale):
    m = warp_error(frames, frames, flow_scale=flow_scale)
    assert m["pairs"] == len(frames) - 1
    assert m["warp_error_stylized"] == pytest.approx(m["warp_error_original"])
    assert m["warp_error_ratio"] == pytest.approx(1.0)
    # the flow explains the motion: warping leaves a tenth of the plain frame difference
    plain = np.mean([((a / 255.0 - b / 255.0) ** 2).mean() for a, b in zip(frames, frames[1:])])
    assert 0 < m["warp_error_original"] < 0.1 * plain


# half-resolution flow is coarser at 144x256, so the original's residual is larger
@pytest.mark.parametrize("flow_scale, min_ratio", [(1.0, 2.0), (0.5, 1.4)])
def test_per_frame_noise_is_clearly_more_flicker(frames, flow_scale, min_ratio):
    m = warp_error(frames, _noisy(frames, 10), flow_scale=flow_scale)
    assert m["warp_error_ratio"] > min_ratio
    # and more noise, more flicker
    assert warp_error(frames, _noisy(frames, 25), flow_scale=flow_scale)["warp_error_stylized"] > m["warp_error_stylized"]


def test_a_static_colour_change_adds_no_flicker(frames):
    # a style that is the same function of every frame (here a colour map) moves with the content
    posterized = [(f // 64) * 64 + 32 for f in frames]
    inverted = [255 - f for f in frames]
    assert warp_error(frames, inverted)["warp_error_ratio"] == pytest.approx(1.0, rel=1e-3)
    assert warp_error(frames, posterized)["warp_error_ratio"] < warp_error(frames, _noisy(frames, 10))["warp_error_ratio"]


def test_contrast_alone_moves_the_ratio_but_not_the_normalised_one(frames):
    # a filter that only changes contrast (about mid-grey) adds no flicker of its own: the
    # squared error scales the plain ratio by the gain squared, the normalised one stays at 1
    def contrast(f, gain):
        return np.clip(np.rint(128 + gain * (f.astype(np.float32) - 128)), 0, 255).astype(np.uint8)

    pale = warp_error(frames, [contrast(f, 0.5) for f in frames])
    assert pale["warp_error_ratio"] == pytest.approx(0.25, rel=0.1)
    assert pale["contrast_normalised_ratio"] == pytest.approx(1.0, rel=0.1)
    # flicker the filter invents raises both
    noisy = warp_error(frames, _noisy(frames, 10))
    assert noisy["contrast_normalised_ratio"] > 1.5 and noisy["warp_error_ratio"] > 1.5


def test_consistency_mask_marks_out_of_frame_pixels():
    h, w = 20, 30
    # a pure shift right by 3 px: pixels of frame t in columns < 3 came from outside
    flow_b = np.zeros((h, w, 2), np.float32)
    flow_b[..., 0] = -3
    flow_f = -flow_b
    mask, mx, my = consistency_mask(flow_b, flow_f)
    assert not mask[:, :3].any() and mask[:, 3:].all()
    assert np.allclose(mx[:, 3:], np.arange(w)[3:] - 3)
    # where forward and backward disagree (occlusion), the pixel is dropped
    flow_f2 = flow_f.copy()
    flow_f2[:, 10:15] = 5
    mask2, _, _ = consistency_mask(flow_b, flow_f2)
    assert not mask2[:, 13:18].any() and mask2[:, 20:].all()


def test_meter_is_streaming_and_checks_sizes(frames):
    meter = FlickerMeter(flow_scale=0.5)
    assert meter.summary() == {"pairs": 0}
    for f in frames[:3]:
        meter.update(f, f)
    assert len(meter.stylized) == 2
    with pytest.raises(ValueError):
        meter.update(frames[0], frames[0][:10])


@pytest.mark.skipif(not FOX.exists(), reason="shared fox clip not present")
def test_fox_identity_vs_noise():
    orig = [fit(f.rgb, 213, 120) for f in read_frames(FOX, 15, max_seconds=1.0)]
    ident = warp_error(orig, orig)
    noisy = warp_error(orig, _noisy(orig, 10))
    assert ident["warp_error_ratio"] == pytest.approx(1.0)
    assert noisy["warp_error_ratio"] > 2
