import filecmp
import json
from pathlib import Path

import numpy as np
import pytest

from livestyle.config import NetworkConfig, StyleConfig
from livestyle.convert.export import ExportConfig, export_style, load_transformer, model_metadata
from livestyle.convert.runners import keras_reference
from livestyle.convert.verify import VerifyConfig, verify_models
from livestyle.model.network import build_transformer

# as deployed: an edge margin and a palette map (written next to the weights below)
NET = NetworkConfig(res_blocks=1, width=4, edge_margin=3, palette_strength=1.0)
SIZE = (37, 20)  # height not divisible by 4, like 853
CFG = ExportConfig(sizes=(SIZE,), display=(74, 40))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    import keras

    keras.utils.set_random_seed(0)
    model = build_transformer(NET, 32, 32)  # initial weights: a real, untrained network
    weights = root / "t.weights.h5"
    model.save_weights(weights)
    from livestyle.model.palette import PALETTE_FILE, save_palette

    save_palette(root / PALETTE_FILE, {"matrix": [[1.3, 0.1, 0.0], [0.1, 1.1, -0.05], [0.0, -0.05, 1.4]],
                                       "offset": [-20.0, -5.0, 10.0]})
    meta = model_metadata(StyleConfig(name="demo", image="x.png", credit="A. Painter, 1893", license="CC0", network=NET), CFG, "1.2.3")
    written = {}
    for run in ("a", "b"):
        written[run] = export_style(weights, NET, CFG, "demo", meta, root / run)
    return root, weights, written


def _spec(path):
    import coremltools as ct

    return ct.utils.load_spec(str(path))


@pytest.mark.parametrize("name", ["demo.mlpackage", "demo.mlmodel"])
def test_core_ml_image_io_names_sizes_and_metadata(exported, name):
    root, _, _ = exported
    spec = _spec(root / "a" / name)
    (inp,), (out,) = spec.description.input, spec.description.output
    assert (inp.name, out.name) == ("image", "stylized")
    assert inp.type.WhichOneof("Type") == out.type.WhichOneof("Type") == "imageType"
    assert (inp.type.imageType.height, inp.type.imageType.width) == SIZE
    assert (out.type.imageType.height, out.type.imageType.width) == (74, 40)  # upscaled inside the model
    md = spec.description.metadata
    assert md.versionString == "1.2.3" and md.author and "CC0" in md.license and md.shortDescription
    user = dict(md.userDefined)
    assert user["style"] == "demo" and user["credit"] == "A. Painter, 1893"
    assert json.loads(user["network"])["res_blocks"] == 1
    assert "com.github.apple.coremltools.conversion_date" not in user


def test_exports_are_byte_identical(exported):
    root, _, written = exported
    assert written["a"] == written["b"]
    cmp = filecmp.dircmp(root / "a", root / "b")
    assert not cmp.diff_files and not cmp.left_only and not cmp.right_only
    pkg = filecmp.dircmp(root / "a" / "demo.mlpackage", root / "b" / "demo.mlpackage")
    assert not pkg.diff_files
    for sub in ("Data/com.apple.CoreML", "Data/com.apple.CoreML/weights"):
        assert not filecmp.dircmp(root / "a" / "demo.mlpackage" / sub, root / "b" / "demo.mlpackage" / sub).diff_files


_EXPORT_IN_A_PROCESS = (
    "import sys; from pathlib import Path; "
    "from livestyle.config import NetworkConfig, StyleConfig; "
    "from livestyle.convert.export import ExportConfig, export_style, model_metadata; "
    "net = NetworkConfig(res_blocks=1, width=4); cfg = ExportConfig(sizes=((37, 20),), display=(74, 40)); "
    "meta = model_metadata(StyleConfig(name='demo', image='x.png', network=net), cfg, '1.2.3'); "
    "export_style(Path(sys.argv[1]), net, cfg, 'demo', meta, Path(sys.argv[2]))"
)


@pytest.mark.slow
def test_exports_in_two_processes_are_byte_identical(exported, tmp_path):
    # as two `dvc repro` runs do: protobuf orders a spec's map fields by a per-process
    # hash seed, so the Core ML files differed between processes (not within one)
    import subprocess
    import sys

    _, weights, _ = exported
    for run in ("a", "b"):
        subprocess.run([sys.executable, "-c", _EXPORT_IN_A_PROCESS, str(weights), str(tmp_path / run)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert Path("demo.mlmodel") in files and Path("demo.mlpackage/Data/com.apple.CoreML/model.mlmodel") in files
    assert [(tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files] == [True] * len(files)


def test_every_format_agrees_with_keras(exported):
    root, weights, _ = exported
    models = {"mlprogram": root / "a/demo.mlpackage", "neuralnetwork": root / "a/demo.mlmodel",
              "tflite": root / "a/demo.tflite", "onnx": root / "a/demo.onnx"}
    reference = keras_reference(load_transformer(weights, NET, *SIZE))
    frames = [np.random.default_rng(i).integers(0, 256, (*SIZE, 3), dtype=np.uint8) for i in range(2)]
    res = verify_models(models, reference, frames, VerifyConfig(frames=2), input_hw=SIZE, display_hw=(74, 40), style="demo",
                        progress=False)
    assert res["passed"], res
    assert res["tflite"]["psnr_db"]["min"] > 50 and res["onnx"]["psnr_db"]["min"] > 50
    assert res["mlprogram"]["psnr_db"]["min"] > 40


def test_planted_channel_swap_fails_verify(exported, tmp_path):
    import coremltools as ct

    root, weights, _ = exported
    spec = _spec(root / "a" / "demo.mlmodel")
    spec.description.input[0].type.imageType.colorSpace = ct.proto.FeatureTypes_pb2.ImageFeatureType.BGR
    bad = tmp_path / "bad.mlmodel"
    ct.utils.save_spec(spec, str(bad))
    reference = keras_reference(load_transformer(weights, NET, *SIZE))
    frames = [np.random.default_rng(5).integers(0, 256, (*SIZE, 3), dtype=np.uint8)]
    res = verify_models({"neuralnetwork": bad}, reference, frames, VerifyConfig(frames=1), input_hw=SIZE, display_hw=(74, 40),
                        style="demo", progress=False)
    assert not res["passed"]


def test_display_follows_model_orientation():
    cfg = ExportConfig(display=(1920, 1080))
    assert cfg.display_for(853, 480) == (1920, 1080)
    assert cfg.display_for(480, 853) == (1080, 1920)


@pytest.mark.parametrize("net", [NetworkConfig(res_blocks=1, width=4), NetworkConfig(res_blocks=1, width=4, padding="zero"),
                                 NetworkConfig(res_blocks=1, width=4, antialias=3)])
def test_tflite_runs_in_one_xnnpack_partition_with_the_keras_output(tmp_path, net):
    """Reflection pads and nearest upsamples exported in ops XNNPACK takes: the shipped
    graph fell into 17 partitions; the output must not change."""
    import keras

    from livestyle.convert.export import export_tflite, for_xnnpack, xnnpack_partitions
    from livestyle.convert.runners import tflite_runner
    from livestyle.convert.verify import psnr

    keras.utils.set_random_seed(0)
    model = build_transformer(net, 30, 41)  # odd sizes: the pad-to-4 and crop are rewritten too
    frame = np.random.default_rng(0).uniform(0, 255, (30, 41, 3)).astype(np.float32)
    rewritten = for_xnnpack(model)
    assert not any(type(layer).__name__ in ("ReflectPad", "UpSampling2D") for layer in rewritten.layers)
    np.testing.assert_allclose(np.asarray(rewritten(frame[None])), np.asarray(model(frame[None])), atol=1e-4)
    path = export_tflite(model, tmp_path / "m.tflite")
    assert xnnpack_partitions(path) == 1
    assert psnr(np.clip(tflite_runner(path)(frame), 0, 255), np.clip(keras_reference(model)(frame), 0, 255)) > 50
