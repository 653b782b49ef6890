"""The Deep Learning Microscopy network: shapes, channel pyramid, parameters, gradients."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from model.config import NetworkConfig
from model.network import DeepMicroscopyNet


def _param_count(cfg: NetworkConfig) -> int:
    """Count from the architecture: 3x3 convs with biases, as described in the paper."""
    c = cfg.channels
    frac = cfg.scale_fraction
    widths = cfg.channel_pyramid()
    total = 9 * c * widths[0] + widths[0]
    for a, b in itertools.pairwise(widths):
        total += 9 * a * b + b + 9 * b * b + b
    out = c * frac.numerator**2
    total += 9 * widths[-1] * out + out
    if frac.denominator > 1:
        total += 9 * c * c + c
    return total


def test_channel_pyramid_matches_paper() -> None:
    assert NetworkConfig().channel_pyramid() == [32, 34, 38, 44, 52, 62]
    net = DeepMicroscopyNet()
    assert [blk.conv2.out_channels for blk in net.blocks] == [34, 38, 44, 52, 62]
    assert net.output_conv.out_channels == 3 * 25
    assert net.shuffle_factor == 5
    assert net.stride == 2


@pytest.mark.parametrize(
    "cfg",
    [NetworkConfig(), NetworkConfig(scale=2, channels=1), NetworkConfig(global_skip=False)],
    ids=["rgb-2.5", "mono-2", "paper"],
)
def test_parameter_count(cfg: NetworkConfig) -> None:
    net = DeepMicroscopyNet(cfg)
    assert sum(p.numel() for p in net.parameters()) == _param_count(cfg)


@pytest.mark.parametrize(
    ("cfg", "size", "expected"),
    [
        (NetworkConfig(), (60, 60), (150, 150)),
        (NetworkConfig(), (555, 333), (1388, 833)),
        (NetworkConfig(), (7, 5), (18, 13)),
        (NetworkConfig(scale=2), (31, 20), (62, 40)),
        (NetworkConfig(channels=1), (21, 10), (53, 25)),
    ],
    ids=["60", "555x333", "7x5", "int-scale-2", "mono"],
)
def test_output_shape(cfg: NetworkConfig, size: tuple[int, int], expected: tuple[int, int]) -> None:
    net = DeepMicroscopyNet(cfg).eval()
    assert net.output_size(*size) == expected
    small = size if size[0] * size[1] < 10_000 else (11, 7)
    with torch.no_grad():
        out = net(torch.rand(2, cfg.channels, *small))
    assert out.shape == (2, cfg.channels, *net.output_size(*small))
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_large_odd_input_runs() -> None:
    cfg = NetworkConfig(base_channels=4, num_blocks=1, alpha=0)
    net = DeepMicroscopyNet(cfg).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 555, 333))
    assert out.shape == (1, 3, 1388, 833)


def test_wrong_input_raises() -> None:
    net = DeepMicroscopyNet()
    with pytest.raises(ValueError, match=r"\(n, 3, y, x\)"):
        net(torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="not"):
        net(torch.rand(3, 8, 8))


def test_paper_network_starts_without_checkerboard() -> None:
    torch.manual_seed(0)
    net = DeepMicroscopyNet().eval()  # the exact paper network, no global skip
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(float(m.bias.detach().abs().max()) == 0.0 for m in convs)
    # ICNR: the 25 sub-pixels of each output channel share one kernel
    w = net.output_conv.weight.detach().reshape(3, 25, *net.output_conv.weight.shape[1:])
    torch.testing.assert_close(w, w[:, :1].expand_as(w))
    with torch.no_grad():
        # beyond the receptive field (12 3x3 layers on the 40x grid) of the zero padding
        flat = net(torch.full((1, 3, 64, 64), 0.6))[..., 40:-40, 40:-40]
        textured = net(torch.rand(1, 3, 24, 24))
    # a flat input gives a flat output (a checkerboard would vary with the sub-pixel phase)
    per_channel_std = flat.std(dim=(-2, -1))
    assert float(per_channel_std.max()) < 1e-4 * float(flat.abs().mean() + 1e-3)
    assert torch.isfinite(textured).all()
    assert float(textured.std()) > 0


def test_global_skip_starts_as_bicubic() -> None:
    net = DeepMicroscopyNet(NetworkConfig(global_skip=True)).eval()
    x = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        out = net(x)
    bicubic = F.interpolate(x, size=out.shape[-2:], mode="bicubic", align_corners=False)
    torch.testing.assert_close(out, bicubic)


def test_gradcheck_tiny() -> None:
    cfg = NetworkConfig(channels=1, base_channels=2, num_blocks=2, alpha=2)
    torch.manual_seed(0)
    net = DeepMicroscopyNet(cfg).double()
    x = torch.rand(1, 1, 4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(net, (x,), eps=1e-6, atol=1e-4)


def test_backward_reaches_every_parameter() -> None:
    # the paper network: with the global skip the output convolution starts at zero
    net = DeepMicroscopyNet(NetworkConfig(base_channels=4, num_blocks=2, global_skip=False))
    net(torch.rand(2, 3, 6, 6)).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
