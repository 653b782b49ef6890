"""FLOPs and memory traffic of one frame through the network, for roofline statements."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from model.network import DeepMicroscopyNet

#: NVIDIA H100 SXM: dense bf16 tensor-core peak and HBM3 bandwidth (datasheet figures).
H100_BF16_FLOPS = 990e12
H100_HBM_BYTES_PER_S = 3.35e12
#: Dense bf16 peak and memory bandwidth per GPU name fragment (datasheet figures, SXM parts).
DEVICE_PEAKS = {"H200": (990e12, 4.8e12), "H100": (H100_BF16_FLOPS, H100_HBM_BYTES_PER_S)}


def device_peaks(name: str) -> tuple[float, float] | None:
    """``(bf16 FLOP/s, bytes/s)`` of a GPU named like ``"NVIDIA H200"``; None when unknown."""
    for key, peaks in DEVICE_PEAKS.items():
        if key in name:
            return peaks
    return None


@dataclass(frozen=True)
class FrameCost:
    """Work for one ``height x width`` frame; bytes at ``element_bytes`` per value.

    ``min_bytes`` is input + output + weights (perfect fusion); ``layer_bytes`` adds every
    layer's activations read and written once (layer-by-layer execution, what eager runs);
    ``peak_bytes`` is the largest input + output of one layer (the activations that must be in
    memory at once, without the residual inputs kept alive across a block).
    """

    height: int
    width: int
    flops: int
    min_bytes: int
    layer_bytes: int
    peak_bytes: int
    element_bytes: int

    def floor_s(self, peak_flops: float, bytes_per_s: float, *, fused: bool = False) -> float:
        """Roofline lower bound on the time per frame for a device with these peaks."""
        moved = self.min_bytes if fused else self.layer_bytes
        return max(self.flops / peak_flops, moved / bytes_per_s)

    def as_dict(self) -> dict[str, float | int]:
        """JSON-ready dict, with the H100 bf16 floors."""
        return {
            **asdict(self),
            "h100_floor_ms_layerwise": 1e3 * self.floor_s(H100_BF16_FLOPS, H100_HBM_BYTES_PER_S),
            "h100_floor_ms_fused": 1e3
            * self.floor_s(H100_BF16_FLOPS, H100_HBM_BYTES_PER_S, fused=True),
        }


def frame_cost(
    net: DeepMicroscopyNet, height: int, width: int, *, element_bytes: int = 2
) -> FrameCost:
    """Count FLOPs (``FlopCounterMode``) and bytes for one frame, on the meta device (no compute).

    Parameters
    ----------
    net
        The network; it is copied, never modified.
    height, width
        Input frame size in pixels.
    element_bytes
        Bytes per activation/weight value: 2 for bf16/fp16, 4 for fp32.
    """
    meta_net = copy.deepcopy(net).to("meta").eval()
    layer_values = 0
    peak_values = 0

    def count(_m: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal layer_values, peak_values
        values = sum(int(t.numel()) for t in inputs) + int(output.numel())
        layer_values += values
        peak_values = max(peak_values, values)

    leaves = [m for m in meta_net.modules() if not list(m.children())]
    handles = [m.register_forward_hook(count) for m in leaves]
    c = net.config.channels
    x = torch.empty(1, c, height, width, device="meta")
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            y = meta_net(x)
    finally:
        for h in handles:
            h.remove()
    weights = sum(int(p.numel()) for p in net.parameters())
    io = int(x.numel()) + int(y.numel())
    return FrameCost(
        height=height,
        width=width,
        flops=int(counter.get_total_flops()),
        min_bytes=(io + weights) * element_bytes,
        layer_bytes=(layer_values + weights) * element_bytes,
        peak_bytes=peak_values * element_bytes,
        element_bytes=element_bytes,
    )
