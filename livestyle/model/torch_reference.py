"""The classic Johnson et al. network in PyTorch, as a speed reference.

A faithful copy of pytorch/examples `fast_neural_style/neural_style/transformer_net.py`
(5 residual blocks, instance norm, reflection padding, nearest upsample + conv, pixels
in 0..255 in and out), with the number of residual blocks as a knob so the shipped
3-block shape can be compared like for like. Untrained weights: only speed matters.
PyTorch is an optional dependency; importing this module without it raises
ImportError, which callers turn into a recorded skip.
"""

from __future__ import annotations

import torch
from torch import nn


class ConvLayer(nn.Module):
    def __init__(self, c_in, c_out, kernel_size, stride):
        super().__init__()
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(c_in, c_out, kernel_size, stride)

    def forward(self, x):
        return self.conv2d(self.reflection_pad(x))


class ResidualBlock(nn.Module):
    """Two 3x3 convs with instance norm; identity skip (He et al. 2016)."""

    def __init__(self, channels):
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3, 1)
        self.in1 = nn.InstanceNorm2d(channels, affine=True)
        self.conv2 = ConvLayer(channels, channels, 3, 1)
        self.in2 = nn.InstanceNorm2d(channels, affine=True)
        self.relu = nn.ReLU()

    def forward(self, x):
        out = self.relu(self.in1(self.conv1(x)))
        return self.in2(self.conv2(out)) + x


class UpsampleConvLayer(nn.Module):
    """Nearest upsample then conv: no checkerboard artifacts, unlike transposed conv."""

    def __init__(self, c_in, c_out, kernel_size, stride, upsample=None):
        super().__init__()
        self.upsample = upsample
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(c_in, c_out, kernel_size, stride)

    def forward(self, x):
        if self.upsample:
            x = nn.functional.interpolate(x, mode="nearest", scale_factor=self.upsample)
        return self.conv2d(self.reflection_pad(x))


class TransformerNet(nn.Module):
    def __init__(self, res_blocks: int = 5):
        super().__init__()
        self.conv1 = ConvLayer(3, 32, 9, 1)
        self.in1 = nn.InstanceNorm2d(32, affine=True)
        self.conv2 = ConvLayer(32, 64, 3, 2)
        self.in2 = nn.InstanceNorm2d(64, affine=True)
        self.conv3 = ConvLayer(64, 128, 3, 2)
        self.in3 = nn.InstanceNorm2d(128, affine=True)
        self.res = nn.Sequential(*[ResidualBlock(128) for _ in range(res_blocks)])
        self.deconv1 = UpsampleConvLayer(128, 64, 3, 1, upsample=2)
        self.in4 = nn.InstanceNorm2d(64, affine=True)
        self.deconv2 = UpsampleConvLayer(64, 32, 3, 1, upsample=2)
        self.in5 = nn.InstanceNorm2d(32, affine=True)
        self.deconv3 = ConvLayer(32, 3, 9, 1)
        self.relu = nn.ReLU()

    def forward(self, x):
        y = self.relu(self.in1(self.conv1(x)))
        y = self.relu(self.in2(self.conv2(y)))
        y = self.relu(self.in3(self.conv3(y)))
        y = self.res(y)
        y = self.relu(self.in4(self.deconv1(y)))
        y = self.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)


def torch_runner(res_blocks: int, height: int, width: int, threads: int, seed: int = 0):
    """A zero-argument callable running one eager inference (torch.inference_mode)."""
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    net = TransformerNet(res_blocks).eval()
    x = torch.rand(1, 3, height, width) * 255.0

    def run():
        with torch.inference_mode():
            return net(x)

    return run
