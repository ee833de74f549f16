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


def content_loss(stylized_feats, content_feats):
    """Feature distance relative to the content features' energy.

    Relative, like style_loss, so the weights in params mean the same for any loss
    network and layer choice."""
    return sum(
        ops.mean(ops.square(a - b)) / (ops.mean(ops.square(b)) + 1e-6) for a, b in zip(stylized_feats, content_feats)
    )


def style_loss(stylized_feats, style_grams):
    """Sum over layers of the squared Gram distance relative to the painting's Gram energy.

    Without the per-layer normalisation the first layer dominates: with the HED VGG16
    the Gram distance of block1_conv2 is ~1e3x block2's and ~2e7x block4's, so only
    colours were learned, no strokes (measured on The Scream vs a photo)."""
    return sum(
        ops.mean(ops.square(gram(f) - g)) / (ops.mean(ops.square(g)) + 1e-12) for f, g in zip(stylized_feats, style_grams)
    )


def total_variation(images):
    """Mean absolute neighbour difference, on 0..1 pixels: suppresses high-frequency noise."""
    images = images / 255.0
    dh = ops.abs(images[:, 1:, :, :] - images[:, :-1, :, :])
    dw = ops.abs(images[:, :, 1:, :] - images[:, :, :-1, :])
    return ops.mean(dh) + ops.mean(dw)
