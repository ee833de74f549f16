"""The training model: transformer + frozen loss network + perceptual loss.

A keras.Model whose compute_loss holds the loss, so Keras' own compiled train step
(train_on_batch) drives it on TensorFlow, JAX and PyTorch alike.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from livestyle.config import LossConfig
from livestyle.model.losses import colour_loss, colour_moments, content_loss, gram, style_loss, total_variation
from livestyle.model.temporal import temporal_term

TERMS = ("loss", "content", "style", "tv", "colour", "temporal")


class StyleTrainer(keras.Model):
    def __init__(self, transformer: keras.Model, lossnet: keras.Model, style_grams, cfg: LossConfig,
                 update_norm_stats: bool = True, colour_target=None, **kwargs):
        super().__init__(**kwargs)
        self.transformer = transformer
        # False (train.norm_stats: frozen): batch norm runs on its moving statistics in
        # training too, so training sees what the exported model computes
        self.update_norm_stats = update_norm_stats
        self.lossnet = lossnet
        self.cfg = cfg
        self.n_content = len(cfg.content_layers)
        # content images need only the content layers: stopping there skips the deep,
        # costly blocks for half of the loss network's forward passes
        self.content_net = keras.Model(lossnet.input, lossnet.outputs[: self.n_content], name="content_features")
        self.style_grams = [ops.convert_to_tensor(g) for g in style_grams]
        # the painting's colour mean and covariance (colour_target()); None: no colour term
        self.colour_target = None if colour_target is None else tuple(ops.convert_to_tensor(t) for t in colour_target)
        self.trackers = {k: keras.metrics.Mean(name=k) for k in TERMS}

    def call(self, x, training=False):
        return self.transformer(x, training=training and self.update_norm_stats)

    def loss_terms(self, content, stylized):
        """Unweighted content, style and TV terms for a batch, and colour where it is on."""
        stylized_f = _float32(self.lossnet(stylized))
        content_f = _float32(self.content_net(content))
        norm = self.cfg.normalisation
        terms = {
            "content": content_loss(stylized_f[: self.n_content], content_f, norm),
            "style": style_loss(stylized_f[self.n_content :], self.style_grams, norm, self.cfg.style_layer_weights),
            "tv": total_variation(stylized, norm),
        }
        if self.colour_target is not None:
            terms["colour"] = colour_loss(stylized, *self.colour_target)
        return terms

    def total_loss(self, x, y_pred, offset=None):
        """Weighted loss and its unweighted terms, in float32: the math of Keras' step
        (compute_loss) and of livestyle.model.fastloop's.

        With `offset` (the temporal loss on) x and y_pred hold frames then next frames
        (livestyle.model.temporal.next_frames) and offset their motion."""
        x, y_pred = ops.cast(x, "float32"), ops.cast(y_pred, "float32")
        c = self.cfg
        temporal = ops.zeros((), "float32")
        if offset is not None:
            n = ops.shape(x)[0] // 2
            # rigid moves: one offset for the batch; warp moves: each image's field
            motion = offset if c.temporal_moves == "warp" else offset[0]
            temporal = temporal_term(y_pred[:n], y_pred[n:], motion, c.temporal_shift, c.temporal_moves, c.temporal_warp,
                                     c.temporal_normalise)
            x, y_pred = x[:n], y_pred[:n]
        terms = {"colour": ops.zeros((), "float32"), **self.loss_terms(x, y_pred), "temporal": temporal}
        total = (c.content_weight * terms["content"] + c.style_weight * terms["style"] + c.tv_weight * terms["tv"]
                 + c.colour_weight * terms["colour"])
        return total + c.temporal_weight * temporal, terms

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        # y: the next frames' offsets when the temporal loss is on (train_on_batch(x, offsets))
        total, terms = self.total_loss(x, y_pred, y)
        for k, v in {**terms, "loss": total}.items():
            self.trackers[k].update_state(v)
        return total

    @property
    def metrics(self):
        return list(self.trackers.values())


def style_grams(lossnet: keras.Model, style_image: np.ndarray, cfg: LossConfig) -> list[np.ndarray]:
    """Gram matrices of the painting at the style layers (the lossnet's later outputs)."""
    feats = lossnet(np.asarray(style_image, np.float32)[None])
    return [np.asarray(ops.convert_to_numpy(gram(f))) for f in _float32(feats)[len(cfg.content_layers) :]]


def colour_target(style_image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The painting's colour mean and covariance on 0..1 (livestyle.model.losses.colour_loss)."""
    mean, cov = colour_moments(np.asarray(style_image, np.float32)[None])
    return np.asarray(ops.convert_to_numpy(mean)), np.asarray(ops.convert_to_numpy(cov))


def _float32(features) -> list:
    """Loss-network features as float32 (a list even for one layer): under a mixed
    policy the network runs in bf16/fp16, but Gram matrices sum h*w products, which
    lose their precision there (and overflow fp16)."""
    if not isinstance(features, (list, tuple)):
        features = [features]
    return [ops.cast(f, "float32") for f in features]
