"""Temporal stability in training: a filter must move with the video, not flicker.

Per-frame stylization flickers because a stride-4 network is not shift-equivariant and
amplifies sensor noise: a sub-pixel camera move or a little noise repaints the strokes.
No video is needed to train against that (in the spirit of ReCoNet's output-level
temporal loss and of Gupta et al. 2017's noise stability): each batch gets a "next
frame" of itself, the same crops moved by a known offset (one per step, up to `shift`
px in each direction, resampled as loss.temporal_moves says: bilinearly, in whole
pixels, or with Lanczos-3; borders reflected) plus Gaussian noise (white or correlated)
and a small change of each channel's gain, and the loss asks that the stylized next frame
equal the stylized frame moved by the same offset, away from the borders. The motion
is known, so no optical flow enters training.

Moves of kind "warp" are not rigid: each image gets its own translation and a smooth
local displacement field (a coarse random grid upsampled), resampled bicubically, as
a fox's fur or a face deforms between frames; the term then asks the output to follow
the same field (synthetic flows, in the spirit of Wang et al. 2020's compound
regularization). The field takes the place of the offset rows.

The pair is drawn on the host here (the Keras loop) and on the device in
livestyle.model.fastloop (the JAX loop), both as a function of (seed, step); both move
pixels with `moved_window`.
"""

from __future__ import annotations

import numpy as np
from keras import ops

# pixels of the frame's border left out of the comparison beyond the shift (at most an
# eighth of the side): the network's padding sees different surroundings there
BORDER = 16


def start_step(weight: float, start_fraction: float, steps: int) -> int | None:
    """The first step that trains with the temporal term; None when it is off."""
    return round(start_fraction * steps) if weight else None


# the kinds of move (loss.temporal_moves): subpixel resamples bilinearly, which also
# blurs (the filter is asked to commute with a blur); whole rounds the move to whole
# pixels (exact); lanczos resamples sub-pixel with a 3-lobe Lanczos kernel, whose
# passband is nearly flat, so the move barely blurs. Values: pixels the resampling reads
# beyond the move itself
_REACH = {"subpixel": 1, "whole": 1, "lanczos": 3, "warp": 2}

# warp moves: the local field's control points lie on a grid of WARP_CELLS x WARP_CELLS
# cells over the crop (64 px apart at 256 px: deformations of a limb or a fur patch,
# not of single strokes), each drawn N(0, warp) px and clipped to 2 warp
WARP_CELLS = 4


def reach(moves: str) -> int:
    """Pixels of margin a move of this kind reads beyond the offset."""
    return _REACH[moves]


def _taps(frac, moves: str):
    """(first tap relative to floor(offset), weights) of the 1-D resampling at fraction frac."""
    if moves != "lanczos":
        return 0, [1 - frac, frac]
    t = [ops.cast(k, "float32") - frac for k in range(-2, 4)]

    def sinc(v):
        safe = ops.where(ops.abs(v) < 1e-6, 1.0, v)
        return ops.where(ops.abs(v) < 1e-6, 1.0, ops.sin(np.pi * safe) / (np.pi * safe))

    w = [sinc(v) * sinc(v / 3) for v in t]
    total = sum(w)
    return -2, [v / total for v in w]


def max_move(shift: float, warp: float, moves: str) -> float:
    """The largest displacement a move of this kind makes, in px."""
    return shift + (2 * warp if moves == "warp" else 0.0)


def field_from(controls, translation, height: int, width: int, warp: float):
    """A smooth displacement field (n, height, width, 2) as (dy, dx): the control grid
    (n, G, G, 2) upsampled bicubically and held within 2 warp (the upsampling
    overshoots a little), plus each image's translation (n, 2)."""
    up = ops.image.resize(ops.cast(controls, "float32"), (height, width), interpolation="bicubic")
    up = ops.clip(up, -2 * warp, 2 * warp)
    return up + ops.reshape(ops.cast(translation, "float32"), (-1, 1, 1, 2))


def _keys(t):
    """The 4 weights of Keys' cubic convolution (a = -0.5) at taps -1..2 of fraction t."""
    t2, t3 = t * t, t * t * t
    return [-0.5 * t3 + t2 - 0.5 * t, 1.5 * t3 - 2.5 * t2 + 1, -1.5 * t3 + 2 * t2 + 0.5 * t, 0.5 * t3 - 0.5 * t2]


def warped_window(images, field, margin: int, height: int, width: int):
    """images (n, H, W, C) sampled bicubically at (i + margin + dy, j + margin + dx) for
    i < height, j < width, with (dy, dx) = field[:, i, j] (n, height, width, 2); taps
    beyond the image clamp to its edge. Keys' kernel: exact at whole offsets and far
    sharper than bilinear between them (bilinear would ask the filter to blur)."""
    shape = ops.shape(images)
    rows_in, cols_in, c = shape[1], shape[2], shape[3]
    y = ops.reshape(ops.arange(height, dtype="float32"), (1, height, 1)) + margin + field[..., 0]
    x = ops.reshape(ops.arange(width, dtype="float32"), (1, 1, width)) + margin + field[..., 1]
    y0, x0 = ops.floor(y), ops.floor(x)
    wy, wx = _keys(y - y0), _keys(x - x0)
    y0, x0 = ops.cast(y0, "int32"), ops.cast(x0, "int32")
    flat = ops.reshape(images, (-1, rows_in * cols_in, c))
    out = None
    for a in range(4):
        row = ops.clip(y0 + (a - 1), 0, rows_in - 1) * cols_in
        for b in range(4):
            index = ops.reshape(row + ops.clip(x0 + (b - 1), 0, cols_in - 1), (-1, height * width, 1))
            taps = ops.take_along_axis(flat, ops.repeat(index, c, axis=-1), axis=1)
            term = ops.expand_dims(wy[a] * wx[b], -1) * ops.reshape(taps, (-1, height, width, c))
            out = term if out is None else out + term
    return out


def moved_window(images, offset, margin: int, height: int, width: int, moves: str = "subpixel"):
    """images sampled at (i + margin + dy, j + margin + dx) for i < height, j < width
    (offset = (dy, dx), real values with |d| + reach(moves) <= margin), resampled
    bilinearly or with Lanczos-3 (moves; whole offsets are exact either way)."""
    offset = ops.cast(offset, "float32")
    whole = ops.floor(offset)
    top, left = ops.cast(whole[0], "int32") + margin, ops.cast(whole[1], "int32") + margin
    y0, wy = _taps(offset[0] - whole[0], moves)
    x0, wx = _taps(offset[1] - whole[1], moves)
    return separable_filter(images, wy, wx, top + y0, left + x0, height, width)


def separable_filter(images, wy, wx, top, left, height: int, width: int):
    """sum over k, l of wy[k] * wx[l] * images[top + k + i, left + l + j], for i < height
    and j < width: rows first, over the columns the second pass needs; then columns."""
    n, c = ops.shape(images)[0], ops.shape(images)[3]
    cols = width + len(wx) - 1
    rows = sum(wk * ops.slice(images, [0, top + k, left, 0], [n, height, cols, c]) for k, wk in enumerate(wy))
    return sum(wk * ops.slice(rows, [0, 0, k, 0], [n, height, width, c]) for k, wk in enumerate(wx))


def gaussian_taps(sigma: float) -> np.ndarray:
    """A normalised 1-D Gaussian of std sigma px, out to 3 sigma."""
    r = max(1, int(np.ceil(3 * sigma)))
    k = np.exp(-np.arange(-r, r + 1) ** 2 / (2 * sigma**2))
    return (k / k.sum()).astype(np.float32)


def correlated_noise(white, sigma: float):
    """White noise (N, H, W, C) blurred by a Gaussian of std sigma px (reflected borders)
    and scaled back to its own std: grain the size of a few pixels, as a camera's
    demosaicing and a codec leave it, where white noise is mostly removed by the
    network's first 9x9 filter. sigma 0 returns it unchanged."""
    if sigma <= 0:
        return white
    taps = [float(t) for t in gaussian_taps(sigma)]
    r = len(taps) // 2
    # a separable blur scales the std of white noise by sum(taps**2)
    scale = 1.0 / sum(t * t for t in taps)
    _, h, w, _ = ops.shape(white)
    padded = ops.pad(white, [[0, 0], [r, r], [r, r], [0, 0]], mode="reflect")
    return scale * separable_filter(padded, taps, taps, 0, 0, h, w)


def next_frames(batch: np.ndarray, rng: np.random.Generator, shift: float, noise: float,
                moves: str = "subpixel", noise_blur: float = 0.0, gain: float = 0.0,
                warp: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(frames and next frames stacked, 2B x H x W x 3; the motion): next[i, j] =
    gains * (batch[i + dy, j + dx] + noise), resampled as `moves` says (whole: the
    offset rounded to whole pixels, an exact move); the noise blurred by
    correlated_noise(noise_blur), the gains drawn per image and channel in 1 +- gain (a
    camera's exposure scales its noise too). The motion is the offset rows (B, 2), one
    offset for the batch; for warp moves, each image's field (B, H, W, 2) (translation
    up to shift px plus a local field of std `warp` px)."""
    n, h, w, _ = batch.shape
    pad = int(np.ceil(max_move(shift, warp, moves))) + reach(moves)
    padded = np.pad(batch.astype(np.float32), ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    if moves == "warp":
        translation = rng.uniform(-shift, shift, (n, 2))
        controls = np.clip(rng.normal(0.0, warp, (n, WARP_CELLS + 1, WARP_CELLS + 1, 2)), -2 * warp, 2 * warp)
        motion = np.asarray(ops.convert_to_numpy(field_from(controls, translation, h, w, warp)))
        moved = np.asarray(ops.convert_to_numpy(warped_window(padded, motion, pad, h, w)))
    else:
        offset = rng.uniform(-shift, shift, 2).astype(np.float32)
        if moves == "whole":
            offset = np.round(offset)
        moved = np.asarray(ops.convert_to_numpy(moved_window(padded, offset, pad, h, w, moves)))
        motion = np.tile(offset[None], (n, 1))
    grain = rng.normal(0.0, noise, moved.shape)
    if noise_blur:
        grain = np.asarray(ops.convert_to_numpy(correlated_noise(grain.astype(np.float32), noise_blur)))
    moved = moved + grain
    if gain:  # drawn after the noise: a run without it draws what it drew before
        moved = moved * rng.uniform(1 - gain, 1 + gain, (n, 1, 1, 3))
    return np.concatenate([batch.astype(np.float32), np.clip(moved, 0, 255).astype(np.float32)]), motion.astype(np.float32)


# normalised terms: a floor under each frame's energy (0..1 units), so a flat output
# does not divide by zero
ENERGY_FLOOR = 1e-5
# "detail" energy: what a Gaussian of this std in px removes (strokes, not the scene's layout)
DETAIL_SIGMA = 2.0


def output_energy(window, normalise: str):
    """Each image's energy (B,) that a normalised term divides by: its variance
    ("contrast", channels' own means removed) or the variance of its detail, the image
    less its Gaussian blur ("detail": the strokes; the sky-against-city layout, which a
    filter can darken cheaply, stays out of it)."""
    if normalise == "detail":
        taps = [float(t) for t in gaussian_taps(DETAIL_SIGMA)]
        r = len(taps) // 2
        _, h, w, _ = ops.shape(window)
        padded = ops.pad(window, [[0, 0], [r, r], [r, r], [0, 0]], mode="reflect")
        window = window - separable_filter(padded, taps, taps, 0, 0, h, w)
        return ops.mean(ops.square(window), axis=(1, 2, 3)) + ENERGY_FLOOR
    return ops.mean(ops.var(window, axis=(1, 2)), axis=-1) + ENERGY_FLOOR


def temporal_term(stylized, stylized_next, offset, shift: float, moves: str = "subpixel", warp: float = 0.0,
                  normalise: str = "none"):
    """Mean squared distance (0..1 pixels) between the stylized next frame and the
    stylized frame moved by `offset` (dy, dx; for warp moves each image's field,
    (B, H, W, 2)), inside a margin of the largest move + BORDER.

    normalise "contrast" or "detail": each image's distance divided by its stylized
    frame's energy (output_energy, over the window) and scaled by the batch's mean energy,
    held constant. The plain distance scales with the output's contrast, so it rewards a
    paler, flatter filter (docs/ABLATIONS.md section 17); the ratio does not change when
    the output's contrast is scaled, while its size stays that of the plain term."""
    shape = ops.shape(stylized)
    m = int(np.ceil(max_move(shift, warp, moves))) + reach(moves) + min(BORDER, shape[1] // 8, shape[2] // 8)
    h, w = shape[1] - 2 * m, shape[2] - 2 * m
    if moves == "warp":
        moved = warped_window(stylized, offset[:, m : m + h, m : m + w], m, h, w)
    else:
        moved = moved_window(stylized, offset, m, h, w, moves)
    squared = ops.square((stylized_next[:, m : m + h, m : m + w] - moved) / 255.0)
    if normalise == "none":
        return ops.mean(squared)
    energy = output_energy(stylized[:, m : m + h, m : m + w] / 255.0, normalise)
    per_image = ops.mean(squared, axis=(1, 2, 3))
    return ops.mean(per_image / energy) * ops.stop_gradient(ops.mean(energy))
