"""The NumPy Core ML executors against the Keras models they were converted from."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

from coreml_fixtures import convert, display_model, frames, tiny_core, transformer_display_model
from livestyle.convert import mil_exec, nn_exec
from livestyle.convert.verify import psnr
from livestyle.errors import LivestyleError

H, W = 18, 14  # odd sizes on purpose: fractional upscale, network pads to a multiple of 4
OH, OW = 40, 30  # "display" size: 40/18 is not an integer scale


def _reference(model, frame):
    """Keras display model output as HWC RGB, clipped like an 8-bit pixel buffer."""
    out = np.asarray(model(frame[None].astype(np.float32)))[0].transpose(1, 2, 0)
    return np.clip(out, 0, 255)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Tiny conv/BN/residual/upsample model, converted once per precision and format."""
    root = tmp_path_factory.mktemp("coreml")
    model = display_model(tiny_core(H, W), OH, OW)
    paths = {}
    for key, kwargs in {
        "fp32": dict(precision="fp32"),
        "fp16": dict(precision="fp16"),
        "bgr": dict(precision="fp32", color="BGR"),
        "nn": dict(fmt="neuralnetwork"),
    }.items():
        suffix = ".mlmodel" if key == "nn" else ".mlpackage"
        paths[key] = root / f"{key}{suffix}"
        convert(model, H, W, **kwargs).save(str(paths[key]))
    return model, paths, frames(2, H, W, seed=1)


@pytest.mark.parametrize("precision,bound", [("fp32", 60.0), ("fp16", 40.0)])
def test_mlprogram_matches_keras(tiny, precision, bound):
    model, paths, frs = tiny
    prog = mil_exec.MilProgram.load(paths[precision])
    for frame in frs:
        out = prog.run_image(frame)
        assert out.shape == (OH, OW, 3) and out.dtype == np.float32
        assert psnr(out, _reference(model, frame)) > bound


def test_fp16_emulation_rounds_activations(tiny):
    """fp16 storage must change the numbers (else the fp16 check checks nothing)."""
    _, paths, frs = tiny
    prog = mil_exec.MilProgram.load(paths["fp16"])
    exact = prog.run_image(frs[0], emulate_fp16=False)
    rounded = prog.run_image(frs[0], emulate_fp16=True)
    assert 0 < np.abs(exact - rounded).max() < 2.0


def test_uint8_output_is_rounded_float(tiny):
    _, paths, frs = tiny
    prog = mil_exec.MilProgram.load(paths["fp32"])
    f = prog.run_image(frs[0], output="float")
    u = prog.run_image(frs[0], output="uint8")
    assert u.dtype == np.uint8 and np.array_equal(u, np.rint(f).astype(np.uint8))


def test_neuralnetwork_matches_keras(tiny):
    model, paths, frs = tiny
    net = nn_exec.NNModel.load(paths["nn"])
    for frame in frs:
        ref = _reference(model, frame)
        assert psnr(net.run_image(frame, emulate_fp16=False), ref) > 60
        assert psnr(net.run_image(frame, emulate_fp16=True), ref) > 40


def test_bgr_input_is_fed_as_bgr(tiny):
    """A model exported as BGR gets its channels swapped by Core ML: the executor must
    reproduce that, so the planted layout bug shows up as a mismatch."""
    model, paths, frs = tiny
    out = mil_exec.run_mlpackage(paths["bgr"], frs[0])
    ref = _reference(model, frs[0])
    assert psnr(out, ref) < 40
    swapped = _reference(model, frs[0][:, :, ::-1].copy())
    assert psnr(out, swapped) > 60


@pytest.mark.parametrize(
    "net",
    [
        dict(res_blocks=1, width=4),
        dict(res_blocks=1, width=4, norm="instance", separable=True, upsample="transpose", padding="zero"),
    ],
    ids=["batchnorm-reflect-resizeconv", "instancenorm-separable-transposeconv"],
)
def test_project_network_mlprogram(tmp_path, net):
    """The project's own network (reflect pads, crop, instance norm, conv_transpose)."""
    _, model = transformer_display_model(H, W, OH, OW, **net)
    path = tmp_path / "net.mlpackage"
    convert(model, H, W, precision="fp16").save(str(path))
    prog = mil_exec.MilProgram.load(path)
    assert prog.unsupported_ops() == []
    frame = frames(1, H, W, seed=2)[0]
    assert psnr(prog.run_image(frame), _reference(model, frame)) > 40


def test_unknown_op_names_type_and_op(tmp_path):
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 3, 4, 4))])
    def prog(x):
        return mb.cumsum(x=x, axis=1, name="my_cumsum")

    path = tmp_path / "cumsum.mlpackage"
    ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16).save(str(path))
    program = mil_exec.MilProgram.load(path)
    assert "cumsum" in program.unsupported_ops()
    with pytest.raises(mil_exec.UnsupportedOpError, match=r"cumsum.*my_cumsum"):
        program.run({"x": np.zeros((1, 3, 4, 4), np.float32)})


def test_run_program_tensor_ops_against_tensorflow(tmp_path):
    """Low-level runner on ops the image models do not cover, checked against TF."""
    import coremltools as ct
    import tensorflow as tf
    from coremltools.converters.mil import Builder as mb

    rng = np.random.default_rng(0)
    w = rng.normal(size=(6, 2, 3, 3)).astype(np.float32)  # groups=2 over 4 input channels
    wt = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)  # conv_transpose (C_in, C_out, k, k)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4, 9, 7))])
    def prog(x):
        c = mb.conv(x=x, weight=w, strides=[2, 2], pad_type="same", groups=2, name="c")
        t = mb.conv_transpose(x=x, weight=wt, strides=[2, 2], pad_type="same", output_shape=[1, 3, 18, 14], name="t")
        r = mb.resize_bilinear(x=x, target_size_height=13, target_size_width=5, sampling_mode="STRICT_ALIGN_CORNERS", name="r")
        p = mb.pad(x=x, pad=[1, 2, 3, 0], mode="replicate", name="p")
        n = mb.instance_norm(x=x, epsilon=1e-3, name="n")
        m = mb.reduce_mean(x=mb.sigmoid(x=x), axes=[2, 3], keep_dims=False, name="m")
        return c, t, r, p, n, m

    path = tmp_path / "ops.mlpackage"
    ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
               compute_precision=ct.precision.FLOAT32).save(str(path))
    x = rng.normal(size=(1, 4, 9, 7)).astype(np.float32)
    outs = mil_exec.run_program(path, {"x": x})
    got = [outs[name] for name in ("c", "t", "r", "p", "n", "m")]

    nhwc = x.transpose(0, 2, 3, 1)
    groups = [tf.nn.conv2d(nhwc[..., 2 * g : 2 * g + 2], w[3 * g : 3 * g + 3].transpose(2, 3, 1, 0), 2, "SAME") for g in range(2)]
    want_c = tf.concat(groups, -1).numpy().transpose(0, 3, 1, 2)
    want_t = tf.nn.conv2d_transpose(nhwc, wt.transpose(2, 3, 1, 0), [1, 18, 14, 3], 2, "SAME").numpy().transpose(0, 3, 1, 2)
    want_r = tf.compat.v1.image.resize_bilinear(nhwc, (13, 5), align_corners=True).numpy().transpose(0, 3, 1, 2)
    want_p = np.pad(x, ((0, 0), (0, 0), (1, 2), (3, 0)), mode="edge")
    mu, var = x.mean((2, 3), keepdims=True), x.var((2, 3), keepdims=True)
    want_n = (x - mu) / np.sqrt(var + 1e-3)
    want_m = (1 / (1 + np.exp(-x))).mean((2, 3))
    for name, g, want in zip("ctrpnm", got, (want_c, want_t, want_r, want_p, want_n, want_m)):
        assert g.shape == want.shape, name
        np.testing.assert_allclose(g, want, atol=1e-4, err_msg=name)


def test_grid_points_match_coremltools_docs():
    """The sampling grids quoted in coremltools' upsample/resize_bilinear docstrings."""
    g = mil_exec.grid_points
    np.testing.assert_allclose(g(2, 5, "half_pixel"), [0, 0.1, 0.5, 0.9, 1], atol=1e-6)
    np.testing.assert_allclose(g(2, 5, "align_corners"), [0, 0.25, 0.5, 0.75, 1], atol=1e-6)
    np.testing.assert_allclose(g(2, 6, "half_pixel"), [0, 0, 1 / 3, 2 / 3, 1, 1], atol=1e-6)
    np.testing.assert_allclose(g(2, 5, "default"), [0, 0.4, 0.8, 1, 1], atol=1e-6)
    np.testing.assert_allclose(g(2, 5, "offset_corners"), [0.1, 0.3, 0.5, 0.7, 0.9], atol=1e-6)


@pytest.mark.parametrize("mode,np_mode", [("constant", "constant"), ("reflect", "reflect"), ("replicate", "edge")])
def test_pad_matches_numpy(mode, np_mode):
    x = np.arange(2 * 3 * 5 * 6, dtype=np.float32).reshape(2, 3, 5, 6)
    got = mil_exec.pad_nd(x, [(2, 1), (0, 3)], mode)
    np.testing.assert_array_equal(got, np.pad(x, ((0, 0), (0, 0), (2, 1), (0, 3)), mode=np_mode))


def test_wrong_frame_size_and_missing_file_are_clear(tiny, tmp_path):
    _, paths, _ = tiny
    with pytest.raises(LivestyleError, match="18x14"):
        mil_exec.run_mlpackage(paths["fp32"], np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(LivestyleError, match="no such"):
        mil_exec.MilProgram.load(tmp_path / "absent.mlpackage")
    with pytest.raises(LivestyleError, match="not an mlprogram"):
        mil_exec.MilProgram.load(paths["nn"])
