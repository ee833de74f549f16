"""Export a trained transformer: Core ML (mlprogram and neuralnetwork), TFLite, ONNX.

Core ML goes through coremltools' unified converter (tfcoreml is its retired
predecessor) from a fixed-shape Keras Functional model: flexible shapes plus a
fixed-size resize do not convert, so one model per size.
Every spec patch is a named function below, each tested on its own.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from livestyle.atomic import atomic_path
from livestyle.config import NetworkConfig, _build

# file suffix of each export format: the one place the two are paired
MODEL_SUFFIX = {"mlprogram": ".mlpackage", "neuralnetwork": ".mlmodel", "tflite": ".tflite", "onnx": ".onnx"}
INPUT_NAME = "image"
OUTPUT_NAME = "stylized"
_DATE_KEY = "com.github.apple.coremltools.conversion_date"


@dataclass(frozen=True)
class ExportConfig:
    sizes: tuple = ((853, 480),)  # model input sizes, [height, width]; one model per size
    display: tuple = (1920, 1080)  # output image [height, width]: upscaled inside the model
    formats: tuple = ("mlprogram", "neuralnetwork", "tflite", "onnx")
    author: str = "livestyle"
    license: str = "MIT (model); see the painting's credit"
    onnx_opset: int = 17

    @classmethod
    def from_params(cls, d):
        return _build(cls, d, "export")

    def display_for(self, height: int, width: int) -> tuple[int, int]:
        """The display size in the orientation of the model size."""
        big, small = max(self.display), min(self.display)
        return (big, small) if height >= width else (small, big)


def load_transformer(weights: Path, net: NetworkConfig, height: int, width: int):
    from livestyle.model.network import build_transformer
    from livestyle.model.palette import blended, load_palette

    # the inference model: input levels, the edge margin and the style's palette map (when
    # its train stage fitted one next to the weights) apply here, never in training
    palette = load_palette(weights) if net.palette_strength > 0 else None
    colour_map = blended(palette["matrix"], palette["offset"], net.palette_strength) if palette else None
    model = build_transformer(net, height, width, input_levels=net.input_levels, edge_margin=net.edge_margin,
                              colour_map=colour_map)
    model.load_weights(weights)
    return model


def stylizer(weights: Path, net: NetworkConfig):
    """The trained transformer as batch (N, H, W, 3) 0..255 -> float32 batch, at any
    frame size: the network is built for each new size once (Keras models have fixed
    shapes here) with the same weights."""
    models = {}

    def stylize(batch) -> np.ndarray:
        size = tuple(np.shape(batch)[1:3])
        if size not in models:
            models[size] = load_transformer(weights, net, *size)
        return np.asarray(models[size](np.asarray(batch, np.float32), training=False))

    return stylize


def display_model(transformer, display_hw: tuple[int, int]):
    """Transformer + bilinear upscale to the display size + NHWC->NCHW, batch 1.

    Core ML wants an image output as (1, 3, H, W) float 0..255 with no scale/bias, so
    the transpose lives inside the model (the article patched this by hand).
    """
    import keras
    from keras import layers

    h, w = transformer.input_shape[1:3]
    inp = keras.Input((h, w, 3), batch_size=1, name=INPUT_NAME)
    x = transformer(inp)
    x = layers.Resizing(*display_hw, interpolation="bilinear", name="upscale")(x)
    x = layers.Permute((3, 1, 2), name="to_nchw")(x)
    return keras.Model(inp, x, name="livestyle_display")


# -- Core ML spec patches ------------------------------------------------------


def rename_output(spec, new_name: str = OUTPUT_NAME):
    """Friendly output name: the graph's is `Identity`."""
    import coremltools as ct

    old = spec.description.output[0].name
    if old != new_name:
        ct.utils.rename_feature(spec, old, new_name)
    return spec


def set_metadata(spec, meta: dict):
    """Author, license, description, and user-defined keys (style, version, params)."""
    md = spec.description.metadata
    md.author = meta.get("author", "")
    md.license = meta.get("license", "")
    md.shortDescription = meta.get("description", "")
    md.versionString = meta.get("version", "")
    for key, value in meta.get("user", {}).items():
        md.userDefined[key] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    # the conversion date changes bytes every day: DVC would rerun downstream for nothing
    if _DATE_KEY in md.userDefined:
        del md.userDefined[_DATE_KEY]
    spec.description.input[0].shortDescription = "camera frame, RGB 0..255"
    spec.description.output[0].shortDescription = "stylized frame at display size, RGB 0..255"
    return spec


def normalize_mlpackage(pkg: Path) -> None:
    """Replace the manifest's random UUIDs by ones derived from the item paths."""
    manifest = pkg / "Manifest.json"
    data = json.loads(manifest.read_text())
    mapping = {}
    for old, item in data["itemInfoEntries"].items():
        mapping[old] = str(uuid.uuid5(uuid.NAMESPACE_URL, "livestyle:" + item["path"])).upper()
    data["itemInfoEntries"] = {mapping[k]: v for k, v in data["itemInfoEntries"].items()}
    data["rootModelIdentifier"] = mapping[data["rootModelIdentifier"]]
    # sorted keys: the entries were ordered by their random UUIDs
    manifest.write_text(json.dumps(data, indent=4, sort_keys=True) + "\n")


def convert_coreml(keras_model, fmt: str, height: int, width: int):
    import coremltools as ct

    common = dict(
        source="tensorflow",
        inputs=[ct.ImageType(name=INPUT_NAME, shape=(1, height, width, 3), color_layout=ct.colorlayout.RGB)],
        outputs=[ct.ImageType(color_layout=ct.colorlayout.RGB)],
    )
    if fmt == "mlprogram":
        return ct.convert(
            keras_model, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
            compute_precision=ct.precision.FLOAT16, **common,
        )
    if fmt == "neuralnetwork":
        # iOS14: the first target whose resize supports half-pixel centres
        model = ct.convert(keras_model, convert_to="neuralnetwork", minimum_deployment_target=ct.target.iOS14, **common)
        from coremltools.models.neural_network import quantization_utils

        return quantization_utils.quantize_weights(model, nbits=16)
    raise ValueError(f"unknown Core ML format {fmt!r}")


def export_coreml(keras_model, fmt: str, out_path: Path, meta: dict) -> Path:
    import coremltools as ct

    h, w = keras_model.input_shape[1:3]
    mlmodel = convert_coreml(keras_model, fmt, h, w)
    spec = set_metadata(rename_output(mlmodel.get_spec()), meta)
    with atomic_path(out_path) as tmp:
        if fmt == "mlprogram":
            ct.models.MLModel(spec, weights_dir=mlmodel.weights_dir, skip_model_load=True).save(str(tmp))
            normalize_mlpackage(tmp)
            canonical_spec_bytes(tmp / "Data" / "com.apple.CoreML" / "model.mlmodel")
        else:
            ct.utils.save_spec(spec, str(tmp))
            canonical_spec_bytes(tmp)
    return out_path


def canonical_spec_bytes(path: Path) -> None:
    """Rewrite a Core ML spec file with its map fields in sorted order.

    protobuf writes map entries (the metadata, the MIL program's attributes) in the
    order of a hash table seeded per process, so two exports of the same weights in two
    processes gave different bytes for the same model.
    """
    from coremltools.proto import Model_pb2

    spec = Model_pb2.Model()
    spec.ParseFromString(path.read_bytes())
    path.write_bytes(spec.SerializeToString(deterministic=True))


# -- other runtimes --------------------------------------------------------------


def _concrete_function(transformer):
    import tensorflow as tf

    h, w = transformer.input_shape[1:3]
    fn = tf.function(lambda x: transformer(x, training=False), input_signature=[tf.TensorSpec((1, h, w, 3), tf.float32, name=INPUT_NAME)])
    return fn, fn.get_concrete_function()


def export_tflite(transformer, out_path: Path) -> Path:
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    # same output, but pads and upsamples in ops XNNPACK delegates: one partition, not 17
    _, concrete = _concrete_function(for_xnnpack(transformer))
    # Keras 3 variables are not frozen by the converter itself: the file came out
    # without weights and predicted NaN. Freeze them into constants first.
    converter = tf.lite.TFLiteConverter.from_concrete_functions([convert_variables_to_constants_v2(concrete)])
    with atomic_path(out_path) as tmp:
        tmp.write_bytes(converter.convert())
    return out_path


def for_xnnpack(model):
    """A copy of the transformer, same weights and output, in ops TFLite's XNNPACK delegate
    takes. It takes neither MIRROR_PAD nor TILE (Keras' nearest UpSampling2D), so the
    network ran in 17 partitions with those ops on TFLite's reference kernels between
    them (docs/CPU_INFERENCE.md): reflection becomes slices and concats of at most 4
    tensors (wider ones are not delegated either), a 2x nearest upsample concats and
    reshapes. Only the TFLite export uses it; training and other formats keep the network."""
    import keras
    from keras import layers

    from livestyle.model.network import ReflectPad

    slice_pad, upsample = _xnnpack_layers()

    def clone(layer):
        if isinstance(layer, ReflectPad):
            return slice_pad(layer.pad, name=layer.name)
        if isinstance(layer, layers.UpSampling2D) and tuple(layer.size) == (2, 2) and layer.interpolation == "nearest":
            return upsample(name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def xnnpack_partitions(path: Path) -> int:
    """Delegate nodes in a TFLite model's execution plan: each op XNNPACK cannot take
    splits the graph, and runs between the partitions on TFLite's own kernels."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=1)
    interp.allocate_tensors()
    return sum(op["op_name"] == "DELEGATE" for op in interp._get_ops_details())


_XNNPACK_LAYERS: tuple = ()


def _xnnpack_layers():
    """The two layers for_xnnpack swaps in (made on first use: keras loads only when needed)."""
    global _XNNPACK_LAYERS
    if _XNNPACK_LAYERS:
        return _XNNPACK_LAYERS
    from keras import layers, ops

    def concat(parts, axis):
        while len(parts) > 1:
            parts = [g[0] if len(g) == 1 else ops.concatenate(g, axis=axis) for g in (parts[i : i + 4] for i in range(0, len(parts), 4))]
        return parts[0]

    def mirror(x, axis, lo, hi):
        n = x.shape[axis]
        row = (lambda i: x[:, i : i + 1]) if axis == 1 else (lambda i: x[:, :, i : i + 1])
        parts = ([concat([row(i) for i in range(lo, 0, -1)], axis)] if lo else []) + [x]
        return concat(parts + ([concat([row(n - 2 - i) for i in range(hi)], axis)] if hi else []), axis)

    from livestyle.model.network import ReflectPad

    class SliceReflectPad(ReflectPad):
        def call(self, x):
            (t, b), (l, r) = self.pad
            return mirror(mirror(x, 1, t, b), 2, l, r)

    class ConcatUpsample2x(layers.Layer):
        def call(self, x):
            _, h, w, c = x.shape
            x = ops.reshape(ops.concatenate([x, x], axis=-1), (-1, h, 2 * w, c))  # each pixel twice along width
            return ops.reshape(ops.concatenate([x, x], axis=2), (-1, 2 * h, 2 * w, c))  # each row twice

    _XNNPACK_LAYERS = (SliceReflectPad, ConcatUpsample2x)
    return _XNNPACK_LAYERS


def export_onnx(transformer, out_path: Path, opset: int = 17) -> Path:
    import onnx
    import tensorflow as tf
    import tf2onnx

    fn, _ = _concrete_function(transformer)
    h, w = transformer.input_shape[1:3]
    model_proto, _ = tf2onnx.convert.from_function(
        fn, input_signature=[tf.TensorSpec((1, h, w, 3), tf.float32, name=INPUT_NAME)], opset=opset,
        output_path=None,
    )
    model_proto.graph.output[0].name = _rename_onnx_output(model_proto, OUTPUT_NAME)
    _canonical_onnx_names(model_proto)
    onnx.checker.check_model(model_proto)
    with atomic_path(out_path) as tmp:
        tmp.write_bytes(model_proto.SerializeToString())
    return out_path


def _canonical_onnx_names(model_proto) -> None:
    """Name nodes and tensors by position: TF's graph names carry per-process counters
    (transformer_1, transformer_2, ...), so two exports of the same weights differed."""
    graph = model_proto.graph
    keep = {v.name for v in graph.input} | {v.name for v in graph.output}
    graph.doc_string = "livestyle transformer (tf2onnx)"  # the default embeds the conversion's temp paths
    inits = {init.name for init in graph.initializer}
    mapping: dict[str, str] = {}
    # by first use in node order: the initializer list order itself varies between runs
    for node in graph.node:
        for name in node.input:
            if name in inits:
                mapping.setdefault(name, f"w{len(mapping)}")
        for out in node.output:
            if out and out not in keep:
                mapping.setdefault(out, f"t{len(mapping)}")
    for init in graph.initializer:
        init.name = mapping.get(init.name, init.name)
    ordered = sorted(graph.initializer, key=lambda t: int(t.name[1:]) if t.name[1:].isdigit() else 1 << 30)
    copies = [type(t)() for t in ordered]
    for c, t in zip(copies, ordered):
        c.CopyFrom(t)
    del graph.initializer[:]
    graph.initializer.extend(copies)
    for i, node in enumerate(graph.node):
        node.name = f"{node.op_type}_{i}"
        node.input[:] = [mapping.get(n, n) for n in node.input]
        node.output[:] = [mapping.get(n, n) for n in node.output]
    for vi in graph.value_info:
        vi.name = mapping.get(vi.name, vi.name)


def _rename_onnx_output(model_proto, new: str) -> str:
    old = model_proto.graph.output[0].name
    for node in model_proto.graph.node:
        node.output[:] = [new if o == old else o for o in node.output]
    return new


def model_filename(style: str, fmt: str, height: int, width: int, multiple_sizes: bool) -> str:
    tag = f"_{width}x{height}" if multiple_sizes else ""
    return f"{style}{tag}{MODEL_SUFFIX[fmt]}"


def export_style(weights: Path, net: NetworkConfig, cfg: ExportConfig, style: str, meta: dict, out_dir: Path) -> dict:
    """Every format at every size; returns a manifest of what was written."""
    from tqdm import tqdm

    written = {}
    jobs = [(tuple(size), fmt) for size in cfg.sizes for fmt in cfg.formats]
    for (h, w), fmt in tqdm(jobs, desc=f"export {style}", unit="model"):
        transformer = load_transformer(weights, net, h, w)
        name = model_filename(style, fmt, h, w, len(cfg.sizes) > 1)
        path = out_dir / name
        if fmt in ("mlprogram", "neuralnetwork"):
            export_coreml(display_model(transformer, cfg.display_for(h, w)), fmt, path, meta)
        elif fmt == "tflite":
            export_tflite(transformer, path)
        elif fmt == "onnx":
            export_onnx(transformer, path, cfg.onnx_opset)
        else:
            raise ValueError(f"export.formats: unknown format {fmt!r}")
        written[name] = {"format": fmt, "height": h, "width": w, "display": list(cfg.display_for(h, w)) if fmt in ("mlprogram", "neuralnetwork") else [h, w]}
    return written


def model_metadata(style, cfg: ExportConfig, version: str) -> dict:
    """Metadata shown in Xcode's model view and read by the app (style, version, params)."""
    import dataclasses

    return {
        "author": cfg.author,
        "license": f"{cfg.license}; painting: {style.license or 'see credit'}",
        "description": f"livestyle '{style.name}' filter: stylizes a camera frame and upscales it to the display size.",
        "version": version,
        "user": {
            "style": style.name,
            "credit": style.credit,
            "version": version,
            "network": dataclasses.asdict(style.network),
            "loss": dataclasses.asdict(style.loss),
            "train": dataclasses.asdict(style.train),
        },
    }
