"""Tiny Keras models and their Core ML conversions, shared by the executor/verify tests.

Built here (not from livestyle.model.network) so the executor tests cover the op patterns the
task names (batch norm, residual add, nearest upsample, bilinear resize, NCHW permute)
independently of the network code; `transformer_display_model` adds the real network.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np


def _randomize_batchnorm(model, seed: int) -> None:
    """Non-trivial moving statistics, so folding BN into the convs is really tested."""
    rng = np.random.default_rng(seed)
    from keras import layers

    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([
                rng.uniform(0.5, 1.5, gamma.shape).astype("float32"),
                rng.normal(0, 0.2, beta.shape).astype("float32"),
                rng.normal(0, 0.2, mean.shape).astype("float32"),
                rng.uniform(0.5, 2.0, var.shape).astype("float32"),
            ])


def tiny_core(height: int, width: int, width_mult: int = 4, seed: int = 0):
    """NHWC RGB 0..255 -> NHWC RGB 0..255 at the same size (a Johnson-style miniature)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inp = keras.Input((height, width, 3), batch_size=1, name="image")
    x = layers.Rescaling(1 / 127.5, offset=-1.0)(inp)
    x = layers.Conv2D(width_mult, 3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.Conv2D(2 * width_mult, 3, strides=2, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    y = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    y = layers.Conv2D(2 * width_mult, 1, use_bias=False)(y)
    y = layers.BatchNormalization()(y)
    x = layers.Add()([x, y])
    x = layers.UpSampling2D(2, interpolation="nearest")(x)
    x = layers.Conv2D(3, 5, padding="same")(x)
    x = layers.Activation("tanh")(x)
    x = layers.Rescaling(127.5, offset=127.5)(x)
    model = keras.Model(inp, x, name="tiny_core")
    _randomize_batchnorm(model, seed)
    return model


def display_model(core, out_h: int, out_w: int):
    """core + bilinear upscale to the display size + NCHW transpose (the export patches)."""
    import keras
    from keras import layers

    h, w = core.input_shape[1:3]
    inp = keras.Input((h, w, 3), batch_size=1, name="image")
    x = core(inp)
    x = layers.Resizing(out_h, out_w, "bilinear")(x)
    x = layers.Permute((3, 1, 2))(x)
    return keras.Model(inp, x)


def transformer_display_model(in_h, in_w, out_h, out_w, seed=0, **net):
    """The project's real network (livestyle.model.network) wrapped for export."""
    import keras

    from livestyle.config import NetworkConfig
    from livestyle.model.network import build_transformer

    keras.utils.set_random_seed(seed)
    core = build_transformer(NetworkConfig(**net), in_h, in_w)
    _randomize_batchnorm(core, seed)
    return core, display_model(core, out_h, out_w)


def convert(model, height, width, fmt="mlprogram", precision="fp16", color="RGB",
            out_color="RGB", out_name="stylized", metadata=None):
    """Keras display model -> MLModel with image input "image" and image output `out_name`."""
    import coremltools as ct

    layout = getattr(ct.colorlayout, color)
    kwargs = dict(
        source="tensorflow",
        inputs=[ct.ImageType(name="image", shape=(1, height, width, 3), color_layout=layout)],
        outputs=[ct.ImageType(color_layout=getattr(ct.colorlayout, out_color))],
    )
    if fmt == "mlprogram":
        kwargs.update(convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
                      compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32)
    else:
        kwargs.update(convert_to="neuralnetwork", minimum_deployment_target=ct.target.iOS14)
    ml = ct.convert(model, **kwargs)
    spec = ml.get_spec()
    old = spec.description.output[0].name
    ct.utils.rename_feature(spec, old, out_name)
    for key, value in (metadata or {}).items():
        if key in ("author", "license", "shortDescription", "versionString"):
            setattr(spec.description.metadata, key, value)
        else:
            spec.description.metadata.userDefined[key] = value
    weights = ml.weights_dir if fmt == "mlprogram" else None
    return ct.models.MLModel(spec, weights_dir=weights)


def frames(n, height, width, seed=0):
    """Smooth-ish random RGB uint8 frames (gradients + noise, like photos, not pure noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    out = []
    for _ in range(n):
        base = np.stack([
            127 + 100 * np.sin(xx / rng.uniform(2, 8) + rng.uniform(0, 6)),
            127 + 100 * np.cos(yy / rng.uniform(2, 8) + rng.uniform(0, 6)),
            rng.uniform(40, 220) + 0 * xx,
        ], axis=-1)
        out.append(np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8))
    return out
