"""ONNX and TorchScript graphs of a model, each checked against torch before it is kept.

Every graph takes ``(n, c, y, x)`` float32 of any batch size and any height and width (the
network needs no padding: an input of ``P x Q`` gives ``ceil(sP) x ceil(sQ)``). A graph is
run on :func:`example_input` of two shapes and compared with the torch module it came from;
differences are in normalised units (a raw difference divided by the channel's
``target_scale``, i.e. relative to the intensity range that the model's normalisation maps to
[0, 1]) and must stay within :data:`TOLERANCE`.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deepscope.atomic import atomic_path
from deepscope.errors import DeepscopeError, InputError
from model.config import ModelConfig, Normalisation
from model.network import DeepMicroscopyNet

#: ONNX operator set of exported graphs.
ONNX_OPSET = 18
#: Largest accepted difference between an exported graph and torch, in normalised units.
TOLERANCE = 1e-3
#: ``(n, y, x)`` of the inputs every graph is checked on: two batch sizes, odd and even sides.
CHECK_SHAPES: tuple[tuple[int, int, int], ...] = ((1, 48, 40), (2, 23, 31))

Runner = Callable[[np.ndarray], np.ndarray]


class RawIntensityNet(nn.Module):
    """The network with the model's normalisation baked in: raw intensities in and out."""

    input_offset: torch.Tensor
    input_scale: torch.Tensor
    target_offset: torch.Tensor
    target_scale: torch.Tensor

    def __init__(self, net: DeepMicroscopyNet, normalisation: Normalisation) -> None:
        super().__init__()
        self.net = net
        c = net.config.channels
        for name in ("input_offset", "input_scale", "target_offset", "target_scale"):
            values = getattr(normalisation, name)
            if len(values) != c:
                raise InputError(
                    f"normalisation {name} has {len(values)} values; the model has {c} channels"
                )
            self.register_buffer(name, torch.tensor(values, dtype=torch.float32).view(1, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw ``(n, c, y, x)`` -> raw ``(n, c, Y, X)``."""
        y = self.net((x - self.input_offset) / self.input_scale)
        return y * self.target_scale + self.target_offset


def example_input(config: ModelConfig, shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """A deterministic specimen-like image ``(n, c, y, x)`` in raw intensities (float32).

    Smooth texture with a few dark, sharp-edged discs, between 5 % and 85 % of the range that
    the model's normalisation maps to [0, 1], with a slightly different gain per channel.
    """
    n, h, w = shape
    c = config.network.channels
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    norm = config.normalisation
    offset = np.asarray(norm.input_offset, np.float64).reshape(c, 1, 1)
    scale = np.asarray(norm.input_scale, np.float64).reshape(c, 1, 1)
    out = np.empty((n, c, h, w), np.float32)
    for i in range(n):
        tex = np.zeros((h, w))
        for fy, fx, phase in rng.uniform((-0.2, -0.2, 0.0), (0.2, 0.2, 2 * np.pi), (6, 3)):
            tex += np.sin(2 * np.pi * (fy * yy + fx * xx) + phase)
        value = 0.6 + 0.12 * tex / (np.abs(tex).max() + 1e-9)
        for cy, cx, r in rng.uniform((0, 0, 2), (h, w, max(3, min(h, w) / 6)), (4, 3)):
            value -= 0.3 * (np.hypot(yy - cy, xx - cx) < r)
        gains = rng.uniform(0.85, 1.0, c).reshape(c, 1, 1)
        out[i] = offset + scale * np.clip(value * gains, 0.05, 0.85)
    return out


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' advice (tracer, deprecation, optimiser messages) on stderr."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _trace_input(channels: int) -> torch.Tensor:
    """An input to export with: batch 2 and sides above 1, so that no size is specialised."""
    return torch.rand(2, channels, 24, 20)


def write_onnx(module: nn.Module, channels: int, path: Path) -> None:
    """Write *module* (evaluation mode) as ONNX with dynamic batch, height and width."""
    dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("y"), 3: torch.export.Dim("x")}
    with _quiet(), torch.no_grad():
        program = torch.onnx.export(
            module.eval(),
            (_trace_input(channels),),
            dynamo=True,
            opset_version=ONNX_OPSET,
            input_names=["input"],
            output_names=["output"],
            dynamic_shapes=(dims,),
            verbose=False,
        )
        if program is None:  # only the legacy exporter returns nothing
            raise RuntimeError("torch.onnx.export returned no program")
        program.save(str(path))


def write_torchscript(module: nn.Module, channels: int, path: Path) -> None:
    """Write *module* (evaluation mode) as a traced TorchScript archive."""
    with _quiet(), torch.no_grad():
        traced = torch.jit.trace(module.eval(), _trace_input(channels), check_trace=False)
        traced.save(str(path))


def onnx_runner(path: Path) -> Runner:
    """Run the ONNX graph at *path* in onnxruntime on the CPU."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(None, {"input": x})[0])

    return run


def torchscript_runner(path: Path) -> Runner:
    """Run the TorchScript archive at *path* (one this process just wrote) with torch.jit."""
    module = torch.jit.load(str(path), map_location="cpu")

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return np.asarray(module(torch.from_numpy(x)).numpy())

    return run


def max_difference(
    run: Runner, reference: nn.Module, inputs: Sequence[np.ndarray], unit: Sequence[float]
) -> float:
    """Largest ``|run(x) - reference(x)| / unit`` over *inputs* (unit: one value per channel)."""
    per_channel = np.asarray(unit, np.float64).reshape(1, -1, 1, 1)
    worst = 0.0
    for x in inputs:
        with torch.no_grad():
            want = reference.eval()(torch.from_numpy(x)).numpy()
        got = run(x)
        if got.shape != want.shape:
            raise DeepscopeError(
                f"the exported graph gives shape {got.shape} for input {x.shape}; torch gives "
                f"{want.shape}; nothing was written"
            )
        worst = max(worst, float((np.abs(got.astype(np.float64) - want) / per_channel).max()))
    return worst


def check_inputs(config: ModelConfig, *, raw: bool) -> list[np.ndarray]:
    """The inputs of :data:`CHECK_SHAPES`: raw intensities, or normalised ones (*raw* False)."""
    inputs = [example_input(config, shape, seed=i) for i, shape in enumerate(CHECK_SHAPES)]
    if raw:
        return inputs
    return [normalise(config, x) for x in inputs]


def normalise(config: ModelConfig, x: np.ndarray) -> np.ndarray:
    """Raw ``(n, c, y, x)`` -> what the bare network takes, ``(x - input_offset) / input_scale``."""
    c = config.network.channels
    offset = np.asarray(config.normalisation.input_offset, np.float32).reshape(1, c, 1, 1)
    scale = np.asarray(config.normalisation.input_scale, np.float32).reshape(1, c, 1, 1)
    return ((x - offset) / scale).astype(np.float32)


def check_graph(
    what: str,
    run: Runner,
    reference: nn.Module,
    inputs: Sequence[np.ndarray],
    unit: Sequence[float],
) -> float:
    """Compare a graph with torch on *inputs*; return the difference in units of *unit*.

    Raises :class:`DeepscopeError` when it exceeds :data:`TOLERANCE`.
    """
    diff = max_difference(run, reference, inputs, unit)
    if not diff <= TOLERANCE:
        raise DeepscopeError(
            f"the exported {what} differs from torch by {diff:.3g} of the input range "
            f"(more than {TOLERANCE:g}); nothing was written"
        )
    return diff


def export_graph(
    net: DeepMicroscopyNet, config: ModelConfig, fmt: str, out: Path
) -> dict[str, Any]:
    """Write the raw-intensity graph (``onnx`` or ``torchscript``) of a model to *out*.

    The graph is checked against torch (:func:`check_graph`) before it is moved into place;
    returns its difference from torch and its size in bytes.
    """
    formats = {
        "onnx": (write_onnx, onnx_runner, "ONNX graph"),
        "torchscript": (write_torchscript, torchscript_runner, "TorchScript graph"),
    }
    write, runner, what = formats[fmt]
    raw = RawIntensityNet(net, config.normalisation).eval()
    with atomic_path(out) as part:
        write(raw, config.network.channels, part)
        inputs = check_inputs(config, raw=True)
        diff = check_graph(what, runner(part), raw, inputs, config.normalisation.target_scale)
    return {"max_difference": {fmt: diff}, "bytes": out.stat().st_size}
