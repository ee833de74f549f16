"""How good a filter is, judged by measures its training does not optimise.

A filter scored by its own loss network flatters itself (measured here with the HED
loss network: ours beat a peer's published outputs on the training Gram loss while
losing to them by eye). So the headline figures here use nothing the training sees:

- texture_distance: Gram statistics of a fixed *random-filter* CNN (Ustyuzhaninov et
  al. 2017: Gram matrices of random shallow CNNs capture texture well enough to
  synthesise it). No model trains against these filters.
- colour_distance: sliced Wasserstein distance between the Lab pixel distributions.
- content_distance: how much of the photo's structure (SSIM's structure term) is lost.
- flat_area: the share of the frame in large flat patches. Filters fail by painting
  a flat white or cream blob over a bright sky, which the three distances above hardly
  see (docs/ABLATIONS.md sections 8-10); a painting has none.
- lossnet_distances: the training loss itself, for comparison only.

Every figure is a distance: 0 is best, and `score` adds the unstylized photo's figures
as the baseline, so a reader sees how far the filter moved toward the painting.

Pure numpy + scipy at module level (no TensorFlow, no Pillow): it runs on a GPU machine
that has neither. All inputs are RGB arrays (H, W, 3), uint8 or float 0..255.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Mapping

import numpy as np
from scipy import ndimage

# texture: conv 3x3 widths of the four stages of the random network
TEXTURE_WIDTHS = (64, 128, 256, 256)
# the raw sum of per-layer mean squared Gram differences is ~1e-4..1e-3 for a photo
# against a painting (chicago.jpg: 1.2e-3 vs The Scream, 1.5e-4 vs Udnie) and
# ~4e-6..3e-5 for a peer's published filters of them: x1e5 reads 0.4..120
# (0 = the same texture statistics)
TEXTURE_SCALE = 1e5
# smallest short side the valid-padded random network gives a feature map for
TEXTURE_MIN_SIDE = 38
# im2col rows per matmul: bounds memory (~64 MB of float32 columns) on large images
_IM2COL_BYTES = 64 << 20
# SSIM constants for 0..255 luminance (Wang et al. 2004): c3 = c2 / 2, c2 = (0.03 L)^2
_SSIM_C3 = (0.03 * 255.0) ** 2 / 2
_SSIM_SIGMA = 1.5
CONTENT_SCALES = 3
COLOUR_QUANTILES = 256
# colour: pixels kept per image (a regular grid subsample above this): 256 quantiles
# of 65536 samples are exact to well under a Lab unit, and sorting stays fast
COLOUR_MAX_PIXELS = 1 << 16
METRICS = ("texture", "colour", "content")
# flat_area: a pixel is flat where its luminance's std over a FLAT_WINDOW square is under
# FLAT_STD (0..255; JPEG noise alone is above it), counted in 4-connected patches of at
# least FLAT_MIN_PATCH of the frame. Measured on chicago.jpg at 712x474: the peer's
# outputs 0, our blob-free filters 0, the white and cream blobs 0.023-0.043.
FLAT_METRIC = "flat_area"
FLAT_WINDOW = 9
FLAT_STD = 1.0
FLAT_MIN_PATCH = 0.005
LOSSNET_METRICS = ("lossnet_content", "lossnet_style")


def _rgb(image) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] < 3:
        raise ValueError(f"expected an RGB image (H, W, 3), got shape {a.shape}")
    return a if a.shape[2] == 3 and a.dtype == np.float32 else a[..., :3].astype(np.float32)


def flat_area(image) -> float:
    """Share of the image (0..1) in flat patches of at least FLAT_MIN_PATCH of it: a
    blob a filter painted, or a photo's own flat sky left unpainted."""
    rgb = _rgb(image)
    y = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    mean = ndimage.uniform_filter(y, FLAT_WINDOW, mode="reflect")
    var = ndimage.uniform_filter(y * y, FLAT_WINDOW, mode="reflect") - mean * mean
    labels, n = ndimage.label(var < FLAT_STD**2)  # 4-connected by default
    if n == 0:
        return 0.0
    areas = np.bincount(labels.ravel())[1:] / y.size
    return float(areas[areas >= FLAT_MIN_PATCH].sum())


# ---------------------------------------------------------------- resampling


def _resample_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights: an area average when shrinking, bilinear when enlarging.

    Each output pixel of a reduction is the mean of the input area it covers (OpenCV's
    INTER_AREA), so fine strokes neither alias into patterns the texture measure would
    count nor get blurred more than the reduction itself blurs them.
    """
    scale = n_in / n_out
    j = np.arange(n_in)[None, :]
    if scale > 1:
        lo = (np.arange(n_out) * scale)[:, None]
        w = np.clip(np.minimum(lo + scale, j + 1) - np.maximum(lo, j), 0.0, None)
    else:
        centres = ((np.arange(n_out) + 0.5) * scale - 0.5)[:, None]
        w = np.maximum(0.0, 1.0 - np.abs(j - np.clip(centres, 0, n_in - 1)))
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def resample(image, height: int, width: int) -> np.ndarray:
    """Antialiased (area) resize of an (H, W, C) image to (height, width), float32."""
    a = np.asarray(image, np.float32)
    if a.shape[:2] == (height, width):
        return a
    rows = np.tensordot(_resample_matrix(a.shape[0], height), a, axes=(1, 0))  # (height, W, C)
    return np.tensordot(rows, _resample_matrix(a.shape[1], width), axes=(1, 1)).transpose(0, 2, 1)


def resample_short_side(image, size: int) -> np.ndarray:
    """Resize keeping the aspect ratio so the short side is `size` pixels."""
    h, w = np.shape(image)[:2]
    scale = size / min(h, w)
    return resample(image, max(size, round(h * scale)), max(size, round(w * scale)))


# ---------------------------------------------------------------- texture


@functools.lru_cache(maxsize=4)
def texture_filters(seed: int = 0) -> tuple[np.ndarray, ...]:
    """The random network's 3x3 filters, (3, 3, C_in, C_out) float32 per stage.

    Gaussian with He scaling sqrt(2 / fan_in), so ReLU activations keep their scale
    through the stages and no layer's Gram dominates the sum by construction. Each
    filter's mean is removed: a zero-mean filter does not respond to a flat patch, so
    the texture figure is about structure and leaves overall colour to colour_distance.
    """
    rng = np.random.default_rng(seed)
    filters, c_in = [], 3
    for c_out in TEXTURE_WIDTHS:
        fan_in = 9 * c_in
        w = rng.standard_normal((9 * c_in, c_out))
        w -= w.mean(axis=0, keepdims=True)
        filters.append((w * np.sqrt(2.0 / fan_in)).astype(np.float32).reshape(3, 3, c_in, c_out))
        c_in = c_out
    return tuple(filters)


def _conv3x3_relu(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """'valid' 3x3 convolution + ReLU by im2col and one matmul per band of rows."""
    h, wd, c = x.shape
    oh, ow = h - 2, wd - 2
    kernel = w.reshape(9 * c, -1)
    out = np.empty((oh, ow, kernel.shape[1]), np.float32)
    band = max(1, _IM2COL_BYTES // (ow * 9 * c * 4))
    for top in range(0, oh, band):
        rows = min(band, oh - top)
        cols = np.concatenate([x[top + dy : top + dy + rows, dx : dx + ow] for dy in range(3) for dx in range(3)], axis=-1)
        np.matmul(cols.reshape(rows * ow, 9 * c), kernel, out=out[top : top + rows].reshape(rows * ow, -1))
    return np.maximum(out, 0.0, out=out)


def _avgpool2(x: np.ndarray) -> np.ndarray:
    h, w, c = x.shape
    return x[: h // 2 * 2, : w // 2 * 2].reshape(h // 2, 2, w // 2, 2, c).mean(axis=(1, 3))


@contextlib.contextmanager
def _one_blas_thread():
    """One BLAS thread for the matmuls here (threadpoolctl, where installed).

    OpenBLAS threads busy-wait: on a 2-core machine with anything else running
    (another job, TensorFlow's own pool) scoring a 712x474 image took 28 s with two
    BLAS threads and 4 s with one (measured); idle, one thread costs little.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(1, user_api="blas"):
        yield


def texture_grams(image, seed: int = 0) -> list[np.ndarray]:
    """Gram matrix F^T F / (H W) of each stage of the random network, float64.

    Input RGB/255 - 0.5. 'valid' convolutions, not padded ones: padding (zeros or a
    mirror) invents border pixels whose statistics would enter the Gram; valid
    convolutions count only real pixels and cost a few border pixels per stage.
    """
    x = _rgb(image) / 255.0 - 0.5
    if min(x.shape[:2]) < TEXTURE_MIN_SIDE:
        raise ValueError(f"texture: image {x.shape[1]}x{x.shape[0]} is under {TEXTURE_MIN_SIDE} px on its short side")
    grams = []
    with _one_blas_thread():
        for i, w in enumerate(texture_filters(seed)):
            if i:
                x = _avgpool2(x)
            x = _conv3x3_relu(x, w)
            f = x.reshape(-1, x.shape[-1])
            grams.append((f.T @ f).astype(np.float64) / f.shape[0])
    return grams


def gram_distance(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """Sum over layers of the mean squared Gram difference, times TEXTURE_SCALE."""
    return float(TEXTURE_SCALE * sum(np.mean((ga - gb) ** 2) for ga, gb in zip(a, b)))


def painting_at(painting, short_side: int) -> np.ndarray:
    """The painting with its short side at `short_side`.

    Texture is scale dependent: a stroke 20 px wide in a 3000 px scan is 3 px wide in
    a 474 px photo. Both sides are compared at the stylized image's short side, as
    training compares the painting with crops at the same short side (style_scale 1).
    """
    return resample_short_side(painting, short_side)


def texture_distance(stylized, painting, seed: int = 0) -> float:
    """Distance between the texture statistics of the stylized image and the painting
    (the painting first resized to the stylized image's short side, see painting_at).

    0 means identical Gram statistics at every stage of the random network; a flat or
    photographic image against a painting scores tens to hundreds.
    """
    stylized = _rgb(stylized)
    reference = painting_at(painting, min(stylized.shape[:2]))
    return gram_distance(texture_grams(stylized, seed), texture_grams(reference, seed))


# ---------------------------------------------------------------- colour


def srgb_to_lab(image) -> np.ndarray:
    """CIE Lab (D65 white) of sRGB 0..255 pixels, float64 (..., 3)."""
    c = np.asarray(image, np.float64)[..., :3] / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = linear @ np.array([[0.4124564, 0.2126729, 0.0193339],
                             [0.3575761, 0.7151522, 0.1191920],
                             [0.1804375, 0.0721750, 0.9503041]])
    t = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def colour_distance(stylized, painting, seed: int = 0, projections: int = 64, quantiles: int = COLOUR_QUANTILES) -> float:
    """Sliced Wasserstein-1 distance between the two Lab pixel distributions, in Lab units.

    Lab, so that equal distances are roughly equal perceived differences. Each of
    `projections` random unit directions (fixed by seed) projects both pixel sets to
    1-D, where W1 is the mean gap between their quantile functions, read at
    `quantiles` mid-points: independent of the image sizes and of pixel order, and
    exact for identical distributions. Averaged over directions and multiplied by 2,
    because a random unit direction sees on average half of a shift (E|u.d| = |d|/2
    on the sphere): a uniform shift by dE Lab units scores about dE. Images over
    COLOUR_MAX_PIXELS are read on a regular grid of pixels (deterministic, no seed).
    """
    rng = np.random.default_rng(seed)
    dirs = rng.standard_normal((3, projections))
    dirs /= np.linalg.norm(dirs, axis=0, keepdims=True)
    levels = (np.arange(quantiles) + 0.5) / quantiles

    def quantile_functions(image):
        image = np.asarray(image)
        step = int(np.ceil(np.sqrt(image.shape[0] * image.shape[1] / COLOUR_MAX_PIXELS)))
        proj = np.sort((srgb_to_lab(image[::step, ::step]).reshape(-1, 3) @ dirs).T, axis=1)  # (P, N), rows sorted
        return proj[:, (levels * proj.shape[1]).astype(int)]

    return float(2.0 * np.mean(np.abs(quantile_functions(stylized) - quantile_functions(painting))))


# ---------------------------------------------------------------- content


def luminance(image) -> np.ndarray:
    """Luma 0..255 (ITU-R BT.601 weights, as SSIM's reference implementation)."""
    return np.asarray(image, np.float64)[..., :3] @ np.array([0.299, 0.587, 0.114])


def structure_similarity(x: np.ndarray, y: np.ndarray, sigma: float = _SSIM_SIGMA) -> float:
    """Mean of SSIM's structure term (sigma_xy + c3) / (sigma_x sigma_y + c3) over a
    Gaussian window (Wang et al. 2004: sigma 1.5): the local correlation of the two
    luminance patterns, blind to brightness and contrast. c3 keeps flat patches, where
    both sigmas vanish, at 1 instead of 0/0."""
    blur = functools.partial(ndimage.gaussian_filter, sigma=sigma, mode="reflect")
    mx, my = blur(x), blur(y)
    vx = np.maximum(blur(x * x) - mx * mx, 0.0)
    vy = np.maximum(blur(y * y) - my * my, 0.0)
    cov = blur(x * y) - mx * my
    return float(np.mean((cov + _SSIM_C3) / (np.sqrt(vx * vy) + _SSIM_C3)))


def content_distance(stylized, photo, scales: int = CONTENT_SCALES) -> float:
    """How much of the photo's structure the stylized image lost: 1 - mean over
    `scales` dyadic scales of the SSIM structure term on luminance.

    Structure only (not SSIM's luminance and contrast terms) so new colours and
    contrast, which a style is meant to bring, do not count as lost content. Several
    scales (each a 2x2 average of the previous), so that fine edges replaced by brush
    strokes cost less than the scene's larger shapes disappearing, which every scale
    sees. 0 = the same structure, ~1 = unrelated, up to 2 = inverted.
    The stylized image is resized to the photo's size when they differ.
    """
    photo = _rgb(photo)
    stylized = resample(_rgb(stylized), *photo.shape[:2])
    x, y = luminance(stylized), luminance(photo)
    values = []
    for s in range(scales):
        if s:
            x, y = (_avgpool2(v[..., None])[..., 0] for v in (x, y))
        values.append(structure_similarity(x, y))
    return float(1.0 - np.mean(values))


# ---------------------------------------------------------------- training loss network


@functools.lru_cache(maxsize=2)
def _lossnet(network: str, layers: tuple[str, ...]):
    from livestyle.model.lossnet import build_lossnet

    return build_lossnet(network, layers)


def _loss_config(loss_cfg):
    from livestyle.config import LossConfig

    return loss_cfg if isinstance(loss_cfg, LossConfig) else LossConfig.from_params(dict(loss_cfg or {}))


def _lossnet_figures(candidates: Mapping[str, np.ndarray], photo: np.ndarray, painting: np.ndarray, loss_cfg) -> dict[str, dict[str, float]]:
    """{name: {lossnet_content, lossnet_style}} for several images of the same photo;
    the photo's features and the painting's Grams are computed once."""
    import keras

    from livestyle.model.losses import content_loss, gram, style_loss

    cfg = _loss_config(loss_cfg)
    n = len(cfg.content_layers)
    net = _lossnet(cfg.network, tuple(cfg.content_layers) + tuple(cfg.style_layers))

    def features(image):
        return [keras.ops.convert_to_tensor(f) for f in net(np.asarray(image, np.float32)[None])]

    photo = _rgb(photo)
    # the painting at the scale training shows it: short side of the content times style_scale
    reference = painting_at(painting, max(16, round(min(photo.shape[:2]) * cfg.style_scale)))
    grams = [gram(f) for f in features(reference)[n:]]
    photo_f = features(photo)
    content_f = photo_f[:n]
    out = {}
    for name, image in candidates.items():
        f = photo_f if image is photo else features(resample(_rgb(image), *photo.shape[:2]))
        out[name] = {
            "lossnet_content": float(keras.ops.convert_to_numpy(content_loss(f[:n], content_f, cfg.normalisation))),
            "lossnet_style": float(keras.ops.convert_to_numpy(style_loss(f[n:], grams, cfg.normalisation, cfg.style_layer_weights))),
        }
    return out


def lossnet_distances(stylized, photo, painting, loss_cfg) -> dict[str, float]:
    """Content and style terms of the *training* loss (livestyle.model.losses, unweighted)
    under its loss network (loss.network, loss.content_layers, loss.style_layers):
    content vs the photo, style vs the painting's Grams. `loss_cfg` is a LossConfig or
    a params `loss:` mapping. Reported for comparison, never as the judge: it is what
    training minimised. Keras is imported here only."""
    return _lossnet_figures({"stylized": stylized}, photo, painting, loss_cfg)["stylized"]


# ---------------------------------------------------------------- score


def score(stylized, photo, painting, loss_cfg=None, seed: int = 0, references: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every figure for a stylized photo, plus the same for the unstylized photo
    under "photo" (its content distance is 0 by definition): the photo is where a
    filter starts, so stylized/photo says how far it moved toward the painting.

    {"texture", "colour", "content", "flat_area", ["lossnet_content", "lossnet_style"],
     "texture_flat", "photo": {same keys}, [name: {same keys} for each of `references`]}

    texture_flat is what any flat (textureless) image scores on texture: the Gram
    MSE rewards low feature energy, so a filter that paints flat fields can look
    closer to the painting than a photo; this figure tells a reader where that floor is.

    `references`: other stylized versions of the same photo (e.g. a peer's published
    output), scored alike. The lossnet figures need `loss_cfg` (keras is then imported).
    The painting is compared at each image's short side (painting_at), for texture and
    colour alike, so both see the painting at the scale of the filter's strokes.
    """
    photo = _rgb(photo)
    painting = _rgb(painting)
    candidates = {"stylized": _rgb(stylized), "photo": photo}
    candidates.update({name: _rgb(img) for name, img in (references or {}).items()})
    reference_grams: dict[int, list[np.ndarray]] = {}
    figures: dict[str, dict[str, float]] = {}
    for name, image in candidates.items():
        side = min(image.shape[:2])
        reference = painting_at(painting, side)
        if side not in reference_grams:
            reference_grams[side] = texture_grams(reference, seed)
        figures[name] = {
            "texture": gram_distance(texture_grams(image, seed), reference_grams[side]),
            "colour": colour_distance(image, reference, seed=seed),
            "content": 0.0 if name == "photo" else content_distance(image, photo),
            FLAT_METRIC: flat_area(image),
        }
    if loss_cfg is not None:
        for name, values in _lossnet_figures(candidates, photo, painting, loss_cfg).items():
            figures[name].update(values)
    out: dict[str, Any] = dict(figures.pop("stylized"))
    # any flat image scores the painting's own Gram energy (zero-mean filters: no
    # response): a texture figure above this adds texture that is not the painting's
    grams = reference_grams[min(candidates["stylized"].shape[:2])]
    out["texture_flat"] = gram_distance([np.zeros_like(g) for g in grams], grams)
    out.update(figures)
    return out


def filter_figures(stylize, photos, painting, keys=("texture", "colour", "content")) -> dict[str, float]:
    """Mean figures of one filter (`stylize`: a (1, H, W, 3) float batch -> same) over
    photos, each scored as the quality stage scores it."""
    scores = [score(np.clip(np.asarray(stylize(np.asarray(p, np.float32)[None]))[0], 0, 255), p, painting) for p in photos]
    if not scores:
        raise ValueError("filter_figures: no photos")
    mean = mean_scores(scores)
    return {k: round(mean[k], 5) for k in keys}


def mean_scores(scores: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean of every numeric figure over photos, nested keys alike (a key missing in
    some photos, e.g. a reference, is averaged over those that have it)."""
    out: dict[str, Any] = {}
    keys = sorted({k for s in scores for k in s})
    for k in keys:
        values = [s[k] for s in scores if k in s]
        if all(isinstance(v, Mapping) for v in values):
            out[k] = mean_scores(values)
        elif all(isinstance(v, (int, float)) for v in values):
            out[k] = float(np.mean(values))
    return out


def format_table(figures: Mapping[str, Any], columns: tuple[str, ...] = ()) -> str:
    """A small text table: one row per measure; stylized, each extra column (e.g. a
    reference), the photo baseline and stylized/photo."""
    labels = {
        "texture": "texture (random CNN Gram)",
        "colour": "colour (Lab sliced W1)",
        "content": "content (1 - MS structure)",
        FLAT_METRIC: "flat area (blobs, share)",
        "lossnet_content": "lossnet content (training)",
        "lossnet_style": "lossnet style (training)",
    }
    names = ["stylized", *columns, "photo"]
    rows = [["measure (0 = best)", *names, "stylized/photo"]]
    photo = figures.get("photo", {})
    for key in (*METRICS, FLAT_METRIC, *LOSSNET_METRICS):
        if key not in figures:
            continue
        values = [figures[key], *(figures[c].get(key) for c in columns), photo.get(key)]
        ratio = figures[key] / photo[key] if photo.get(key) else None
        rows.append([labels[key], *(fmt_figure(v) for v in values), fmt_figure(ratio)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    if "texture_flat" in figures:
        lines.append(f"(any flat image scores texture {fmt_figure(figures['texture_flat'])}: the painting's own texture energy)")
    return "\n".join(lines)


def fmt_figure(v) -> str:
    """A figure for people: 3 significant digits, whole numbers from 1000 up."""
    if v is None:
        return "-"
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
