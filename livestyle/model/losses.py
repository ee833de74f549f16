"""Perceptual loss terms (Johnson et al. 2016), in keras.ops only so every backend trains."""

from __future__ import annotations

from keras import ops


def gram(features):
    """Channel correlations normalised by the number of elements, so layers and
    image sizes of different extent weigh alike (Johnson et al., eq. 3)."""
    shape = ops.shape(features)
    n, h, w, c = shape[0], shape[1], shape[2], shape[3]
    flat = ops.reshape(features, (n, h * w, c))
    return ops.matmul(ops.transpose(flat, (0, 2, 1)), flat) / ops.cast(h * w * c, features.dtype)


NORMALISATIONS = ("relative", "johnson")


def content_loss(stylized_feats, content_feats, normalisation="relative"):
    """Feature distance per content layer.

    relative: divided by the content features' energy, so weights mean the same for any
    loss network and layer. johnson: plain mean squared distance (Johnson et al.; the
    form of the peer project lengstrom/fast-style-transfer, weights 7.5/100/200)."""
    return sum(
        ops.mean(ops.square(a - b)) / (_energy(b) if normalisation == "relative" else 1.0)
        for a, b in zip(stylized_feats, content_feats)
    )


def style_loss(stylized_feats, style_grams, normalisation="relative", layer_weights=None):
    """Sum over layers of the squared Gram distance, each times its layer weight (all 1
    when None).

    relative: each layer divided by the painting's Gram energy. With the HED VGG16,
    un-normalised, block1_conv2's distance was ~1e3x block2's and ~2e7x block4's and
    only colours were learned. johnson: un-normalised, which suits ImageNet VGG
    features, whose layers' Gram scales are close enough for every layer to count."""
    weights = layer_weights or [1.0] * len(style_grams)
    return sum(
        w * ops.mean(ops.square(gram(f) - g)) / (_energy(g, 1e-12) if normalisation == "relative" else 1.0)
        for f, g, w in zip(stylized_feats, style_grams, weights)
    )


def colour_moments(images):
    """Mean (3,) and covariance (3, 3) of all the pixels of a batch of 0..255 RGB
    images, on 0..1."""
    x = ops.reshape(ops.cast(images, "float32"), (-1, 3)) / 255.0
    mean = ops.mean(x, axis=0)
    d = x - mean
    return mean, ops.matmul(ops.transpose(d), d) / ops.cast(ops.shape(x)[0], "float32")


def colour_loss(images, target_mean, target_cov):
    """How far the batch's colours sit from the painting's as two Gaussians: the squared
    distance of the means over the painting's total variance, plus the squared distance
    of the covariances over the painting's covariance energy. Both relative, so 1 means
    off by the painting's own spread. The palette map (livestyle.model.palette) moves a
    trained filter's colours onto these same moments after training; here the network
    finds them itself, where the content and style terms can still have their say
    (docs/ABLATIONS.md section 20). It is not the colour judge of livestyle.measure
    (a sliced Wasserstein distance on Lab pixels, blind to nothing but order)."""
    mean, cov = colour_moments(images)
    return (ops.sum(ops.square(mean - target_mean)) / (ops.trace(target_cov) + 1e-6)
            + ops.sum(ops.square(cov - target_cov)) / (ops.sum(ops.square(target_cov)) + 1e-8))


def _energy(t, eps=1e-6):
    return ops.mean(ops.square(t)) + eps


def total_variation(images, normalisation="relative"):
    """Neighbour differences: suppresses high-frequency noise.

    relative: mean absolute difference on 0..1 pixels; johnson: mean squared difference
    on 0..255 pixels, as the peer project's weights expect."""
    dh = images[:, 1:, :, :] - images[:, :-1, :, :]
    dw = images[:, :, 1:, :] - images[:, :, :-1, :]
    if normalisation == "johnson":
        return ops.mean(ops.square(dh)) + ops.mean(ops.square(dw))
    return (ops.mean(ops.abs(dh)) + ops.mean(ops.abs(dw))) / 255.0
