"""The residual super-resolution network of Rivenson et al., *Deep Learning Microscopy* (2017)."""

from __future__ import annotations

import itertools
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from model.config import NetworkConfig

#: Scale of the last convolution of each residual branch at initialisation.
RESIDUAL_INIT_SCALE = 0.1


def _icnr_(weight: torch.Tensor, factor: int) -> None:
    """ICNR: one He-normal kernel per output channel, repeated over its ``factor**2`` sub-pixels.

    PixelShuffle maps output channel ``c * f**2 + k`` to sub-pixel ``k`` of channel ``c``.
    """
    out_ch, in_ch, kh, kw = weight.shape
    base = torch.empty(out_ch // factor**2, in_ch, kh, kw)
    nn.init.kaiming_normal_(base, nonlinearity="linear")
    weight.copy_(base.repeat_interleave(factor**2, dim=0))


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with ReLUs; the input is zero-padded in channels for the sum."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.pad = out_ch - in_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``pad_channels(x) + relu(conv2(relu(conv1(x))))``."""
        y = F.relu(self.conv2(F.relu(self.conv1(x))))
        skip = F.pad(x, (0, 0, 0, 0, 0, self.pad)) if self.pad else x
        return skip + y


class DeepMicroscopyNet(nn.Module):
    """Input conv, K residual blocks, output conv + pixel shuffle, stride-q conv for scale p/q.

    For the default scale 2.5 (= 5/2), a ``P x Q`` input gives a ``ceil(2.5P) x ceil(2.5Q)``
    output. Inputs and outputs are ``(n, c, y, x)`` normalised intensities.
    """

    def __init__(self, config: NetworkConfig | None = None) -> None:
        super().__init__()
        self.config = config or NetworkConfig()
        c = self.config.channels
        widths = self.config.channel_pyramid()
        frac = self.config.scale_fraction
        self.shuffle_factor = frac.numerator
        self.stride = frac.denominator
        self.input_conv = nn.Conv2d(c, widths[0], 3, padding=1)
        self.blocks = nn.Sequential(*(ResidualBlock(a, b) for a, b in itertools.pairwise(widths)))
        self.output_conv = nn.Conv2d(widths[-1], c * self.shuffle_factor**2, 3, padding=1)
        self.shuffle = nn.PixelShuffle(self.shuffle_factor)
        self.down = (
            nn.Conv2d(c, c, 3, stride=self.stride, padding=1) if self.stride > 1 else nn.Identity()
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise so that the untrained network is a smooth, stable upsampler.

        The paper's truncated-normal kernels (std 0.05) make the exact network (no global skip)
        start near black with a checkerboard from the pixel shuffle, and Adam then stalls
        there. Instead: He (fan-in) normal kernels for the convolutions that feed a ReLU; the
        second convolution of each residual block scaled by ``RESIDUAL_INIT_SCALE`` so every
        block starts close to the identity; ICNR for the sub-pixel convolution (all ``p x p``
        sub-pixels share a kernel: a nearest-neighbour upsample, no checkerboard, Aitken et
        al. 2017); the stride-q convolution starts as a per-channel 3x3 mean; zero biases.
        With ``global_skip`` the output convolution starts at zero instead, so the untrained
        network is exactly the bicubic upsample and training learns only the correction.
        """
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        with torch.no_grad():
            for block in self.modules():
                if isinstance(block, ResidualBlock):
                    block.conv2.weight.mul_(RESIDUAL_INIT_SCALE)
            if self.config.global_skip:
                nn.init.zeros_(self.output_conv.weight)
            else:
                _icnr_(self.output_conv.weight, self.shuffle_factor)
            if isinstance(self.down, nn.Conv2d):
                self.down.weight.zero_()
                for c in range(self.config.channels):
                    self.down.weight[c, c] = 1.0 / 9.0

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Output ``(y, x)`` size for an input of ``height x width``."""

        def one(n: int) -> int:
            up = n * self.shuffle_factor
            return (up - 1) // self.stride + 1 if self.stride > 1 else up

        return one(height), one(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Enhance a batch ``(n, c, y, x)`` -> ``(n, c, Y, X)``."""
        if x.ndim != 4 or x.shape[1] != self.config.channels:
            raise ValueError(
                f"input of shape {tuple(x.shape)} is not (n, {self.config.channels}, y, x)"
            )
        h = self.input_conv(x)
        h = self.blocks(h)
        y = self.down(self.shuffle(self.output_conv(h)))
        if self.config.global_skip:
            y = y + bicubic_upsample(x, self.config.scale, y.shape[-2:])
        return y


def bicubic_upsample(x: torch.Tensor, scale: float, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic upsample of ``(n, c, y, x)`` by exactly *scale*, cropped to *size*.

    Output pixel ``i`` samples input position ``(i + 0.5) / scale - 0.5`` whatever the input
    size, so a tile of the frame gives the same values as the frame (resizing to
    ``ceil(scale * n)`` would stretch odd-sized inputs slightly). One replicated row and column
    make room for the ``ceil`` output size; bicubic clamps at the border, so no value changes.
    """
    padded = F.pad(x, (0, 1, 0, 1), mode="replicate")
    up = F.interpolate(
        padded,
        scale_factor=scale,
        mode="bicubic",
        align_corners=False,
        recompute_scale_factor=False,
    )
    return up[..., : size[0], : size[1]]


def network_from_settings(**settings: Any) -> DeepMicroscopyNet:
    """Build the network from :class:`NetworkConfig` fields given as keywords.

    The architecture entry of exported bioimage.io packages: their ``kwargs`` are plain JSON.
    """
    return DeepMicroscopyNet(NetworkConfig(**settings))
