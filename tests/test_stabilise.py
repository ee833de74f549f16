"""The temporal blend of `--stabilise` on tiny synthetic scenes: it steadies a static
scene, follows motion without ghosts, starts afresh on a cut, and is off at 0."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from livestyle.media.stabilise import TemporalBlend, stylize_frame

H, W = 64, 96


def texture(h: int, w: int, seed: int) -> np.ndarray:
    """Smooth random colour blobs: structure the flow can lock on to."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (h // 8 + 2, w // 8 + 2, 3)).astype(np.float32)
    big = cv2.resize(small, (w + 16, h + 16), interpolation=cv2.INTER_CUBIC)[8 : 8 + h, 8 : 8 + w]
    return np.clip(big, 0, 255).astype(np.uint8)


def paint(frame: np.ndarray) -> np.ndarray:
    """A stand-in filter that depends on the frame only: inverted and channel-swapped."""
    return np.ascontiguousarray(255 - frame[..., ::-1])


def noisy(styled: np.ndarray, rng, sd: float = 20.0) -> np.ndarray:
    return np.clip(styled + rng.normal(0, sd, styled.shape), 0, 255).astype(np.uint8)


def test_first_frame_comes_out_unchanged():
    frame = texture(H, W, 0)
    styled = noisy(paint(frame), np.random.default_rng(0))
    out = TemporalBlend()(frame, styled)
    assert out.dtype == np.uint8 and np.array_equal(out, styled)


def test_strength_zero_is_the_stylized_frame_exactly():
    blend, rng, frame = TemporalBlend(0.0), np.random.default_rng(1), texture(H, W, 1)
    for _ in range(3):
        styled = noisy(paint(frame), rng)
        assert np.array_equal(blend(frame, styled), styled)


def test_static_scene_noise_is_steadied():
    blend, rng, frame = TemporalBlend(), np.random.default_rng(2), texture(H, W, 2)
    styled = [noisy(paint(frame), rng) for _ in range(12)]
    out = [blend(frame, s) for s in styled]
    step_in = np.mean([np.abs(b.astype(int) - a).mean() for a, b in zip(styled[4:], styled[5:])])
    step_out = np.mean([np.abs(b.astype(int) - a).mean() for a, b in zip(out[4:], out[5:])])
    # a recursive 0.7 blend of independent noise: about a quarter of its frame-to-frame change
    assert step_out < 0.4 * step_in
    # and it stays on the picture: no drift away from the filter's own output
    assert np.abs(out[-1].astype(int) - paint(frame)).mean() < 0.6 * np.abs(styled[-1].astype(int) - paint(frame)).mean()


def _moving_square(step: int, x0: int = 20, y0: int = 20, size: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """A textured square moving right by 3 px a frame over a static textured background;
    the filter paints the square pure white."""
    frame = texture(H, W, 3)
    x = x0 + 3 * step
    frame[y0 : y0 + size, x : x + size] = texture(size, size, 4)
    styled = paint(frame)
    styled[y0 : y0 + size, x : x + size] = 255
    return frame, styled


def test_motion_is_followed_without_a_ghost():
    blend = TemporalBlend()
    for step in range(6):
        frame, styled = _moving_square(step)
        out = blend(frame, styled).astype(int)
    # the square is where it is now, and the background it left behind is the background
    assert out[22:38, 37:53].min() > 230
    diff = np.abs(out - styled)
    assert np.percentile(diff, 99) < 40 and diff.mean() < 3
    left_behind = diff[20:40, 20:35]  # where the square was in the earlier frames
    assert left_behind.mean() < 8, left_behind.mean()


def test_a_camera_pan_keeps_the_painting_on_the_scene():
    scene, rng = texture(H + 20, W + 40, 5), np.random.default_rng(5)
    base = paint(scene)
    blend = TemporalBlend()
    for step in range(6):
        x = 4 * step  # the camera pans 4 px a frame
        frame = scene[10 : 10 + H, x : x + W]
        out = blend(frame, noisy(base[10 : 10 + H, x : x + W], rng))
    inner = np.abs(out[8:-8, 8:-8].astype(int) - base[10 : 10 + H, x : x + W][8:-8, 8:-8])
    assert inner.mean() < 12  # noise of 20 (mean |.| about 16) averaged down, on the moved picture


def test_a_scene_cut_starts_afresh():
    blend, rng = TemporalBlend(), np.random.default_rng(6)
    a, b = texture(H, W, 6), texture(H, W, 7)
    for _ in range(3):
        blend(a, noisy(paint(a), rng))
    styled = noisy(paint(b), rng)
    assert np.array_equal(blend(b, styled), styled)
    # and so does a new frame size
    small = texture(H // 2, W // 2, 8)
    styled = paint(small)
    assert np.array_equal(blend(small, styled), styled)


def test_reset_forgets_the_previous_frame():
    blend, rng, frame = TemporalBlend(), np.random.default_rng(9), texture(H, W, 9)
    blend(frame, noisy(paint(frame), rng))
    blend.reset()
    styled = noisy(paint(frame), rng)
    assert np.array_equal(blend(frame, styled), styled)


@pytest.mark.parametrize("kwargs, match", [
    ({"strength": 1.0}, "strength"), ({"strength": -0.1}, "strength"), ({"sigma": 0.0}, "sigma"),
    ({"flow_scale": 0.0}, "flow_scale"), ({"flow_scale": 1.5}, "flow_scale"), ({"cut": -1.0}, "cut"),
])  # fmt: skip
def test_invalid_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TemporalBlend(**kwargs)


def test_frames_of_different_sizes_raise():
    with pytest.raises(ValueError, match="same"):
        TemporalBlend()(texture(H, W, 0), texture(H, W + 1, 0))


def test_blend_goes_before_the_strength_mix():
    """At half strength the photo's share is the current frame itself, never a warped one."""
    rng, frame = np.random.default_rng(10), texture(H, W, 10)
    blend, plain = TemporalBlend(), TemporalBlend()
    styled = [noisy(paint(frame), rng) for _ in range(4)]
    for s in styled:
        mixed = stylize_frame(lambda _, s=s: s, frame, 0.5, blend)
        alone = plain(frame, s)
    expected = np.clip(np.rint(0.5 * alone.astype(np.float32) + 0.5 * frame), 0, 255)
    assert np.abs(mixed.astype(int) - expected).max() <= 1
    # strength 0 is the photo, and the blend starts afresh after it
    assert np.array_equal(stylize_frame(lambda _: styled[0], frame, 0.0, blend), frame)
    assert np.array_equal(stylize_frame(lambda _: styled[1], frame, 1.0, blend), styled[1])


def test_flicker_compare_blends_batches_frame_by_frame():
    """scripts/flicker_compare.py --stabilise: a batch of frames comes out as the same
    frames blended one at a time, as `stylize --stabilise` blends them."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "flicker_compare.py"
    spec = importlib.util.spec_from_file_location("flicker_compare", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    rng = np.random.default_rng(11)
    frames = np.stack([texture(H + 8, W, 11)[i : i + H] for i in range(4)])  # a slow tilt
    styled = np.stack([noisy(paint(f), rng) for f in frames]).astype(np.float32) + 0.3  # float, as the network's
    outputs = iter([styled[:3], styled[3:]])
    run = script.stabilised(lambda batch: next(outputs), 0.7)
    got = np.concatenate([run(frames[:3]), run(frames[3:])])
    blend = TemporalBlend(0.7)
    expected = [blend(f, np.clip(np.rint(s), 0, 255).astype(np.uint8)) for f, s in zip(frames, styled)]
    assert got.dtype == np.uint8 and np.array_equal(got, np.stack(expected))
