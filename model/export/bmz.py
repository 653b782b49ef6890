"""bioimage.io model packages (format 0.5), tested with ``bioimageio.core`` before they are kept.

A package holds the bare network on normalised intensities in three weight formats: the
``pytorch_state_dict`` (a plain state dict saved by ``torch.save``, for the ecosystem: deepscope
itself only ever loads safetensors) with the architecture
:func:`model.network.network_from_settings` of this package, and TorchScript and ONNX graphs
derived from it. The model's normalisation is the package's own pre- and postprocessing,
which every bioimage.io consumer applies: ``fixed_zero_mean_unit_variance`` with
``mean = input_offset`` and ``std = input_scale`` on the input, ``scale_linear`` with
``gain = target_scale`` and ``offset = target_offset`` on the output. Test tensors are raw
intensities (``(batch, channel, y, x)`` float32), with a cover image made from them.

Inputs take any batch size and sides of ``min + n * q`` pixels for a scale ``p/q`` (so that
the output, ``p/q`` times larger, is a whole number of pixels); outputs declare a halo of the
network's receptive field for tiled prediction.
"""

from __future__ import annotations

import contextlib
import gc
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

import deepscope
from deepscope.atomic import atomic_path
from deepscope.errors import DeepscopeError
from model.config import ModelConfig
from model.export import graphs
from model.inference.tiling import halo_pixels
from model.network import DeepMicroscopyNet, network_from_settings

#: Side of the square test input in input pixels (rounded up to an accepted size).
TEST_SIDE = 64
#: The paper the network is from.
PAPER = (
    "Rivenson Y, Göröcs Z, Günaydin H, Zhang Y, Wang H, Ozcan A. Deep learning microscopy. "
    "Optica 4(11), 1437-1443 (2017)",
    "10.1364/OPTICA.4.001437",
)
#: Characters bioimage.io allows in a model name.
NAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+- ()")


@contextlib.contextmanager
def collecting_open_files() -> Iterator[None]:
    """Around bioimageio calls: the files they leave open are collected here, silently.

    bioimageio.spec 0.5.12 leaves zip and sha256 readers open until garbage collection, each
    then a ``ResourceWarning``.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            yield
        finally:
            gc.collect()


def input_sizes(net: DeepMicroscopyNet) -> tuple[int, int, int]:
    """``(min, step, halo)`` of an input side: sizes ``min + n * step``, halo in input pixels."""
    q = net.stride
    halo = halo_pixels(net)  # a multiple of q, so the output halo is whole
    smallest = 2 * halo + 16
    return smallest + (-smallest) % q, q, halo


def _cover(config: ModelConfig, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """RGB uint8 image: the test input (nearest-upsampled to the output size) beside the output."""
    norm = config.normalisation
    c = config.network.channels

    def view(img: np.ndarray, offset: tuple[float, ...], scale: tuple[float, ...]) -> np.ndarray:
        o = np.asarray(offset).reshape(c, 1, 1)
        s = np.asarray(scale).reshape(c, 1, 1)
        rgb = np.clip((img - o) / s, 0.0, 1.0).transpose(1, 2, 0)
        rgb = np.repeat(rgb, 3, axis=2) if c == 1 else rgb
        return np.asarray(np.rint(rgb * 255), np.uint8)

    out = view(y[0], norm.target_offset, norm.target_scale)
    src = view(x[0], norm.input_offset, norm.input_scale)
    src = cv2.resize(src, (out.shape[1], out.shape[0]), interpolation=cv2.INTER_NEAREST)
    return np.concatenate([src, out], axis=1)


def _readme(config: ModelConfig, model_dir: Path, sizes: tuple[int, int, int]) -> str:
    net = config.network
    norm = config.normalisation
    smallest, step, _ = sizes
    pixels = ""
    if config.input_pixel_size_um and config.output_pixel_size_um:
        pixels = (
            f" Trained for input pixels of {config.input_pixel_size_um:g} um; output pixels are "
            f"{config.output_pixel_size_um:g} um."
        )
    metrics = ", ".join(f"{k} {v:.4g}" for k, v in config.metrics.items() if isinstance(v, float))
    return (
        f"# {model_dir.resolve().name}\n\n"
        f"Deep Learning Microscopy network (Rivenson et al., Optica 2017) trained with "
        f"deepscope {deepscope.__version__}: it enhances a {net.channels}-channel "
        f"low-magnification brightfield image to {net.scale:g}x the pixel density.{pixels}\n\n"
        "## Input and output\n\n"
        "Raw intensities, float32, axes (batch, channel, y, x). Sides of "
        f"{smallest} + n * {step} pixels; the output is {net.scale:g} times larger.\n\n"
        "The weights work on normalised intensities; the normalisation of the deepscope model "
        "is this package's preprocessing, x_norm = (x - mean) / std with "
        f"mean = {list(norm.input_offset)} and std = {list(norm.input_scale)}, and "
        "postprocessing, y = y_norm * gain + offset with "
        f"gain = {list(norm.target_scale)} and offset = {list(norm.target_offset)}.\n\n"
        "## Weights\n\n"
        "pytorch_state_dict (architecture `model.network.network_from_settings` of the "
        "deepscope package, which must be installed), torchscript and onnx.\n\n"
        + (f"## Validation metrics (deepscope)\n\n{metrics}\n" if metrics else "")
    )


def _preprocessing(config: ModelConfig) -> list[Any]:
    from bioimageio.spec.model import v0_5

    norm = config.normalisation
    return [
        v0_5.FixedZeroMeanUnitVarianceDescr(
            kwargs=v0_5.FixedZeroMeanUnitVarianceAlongAxisKwargs(
                mean=list(norm.input_offset),
                std=list(norm.input_scale),
                axis=v0_5.AxisId("channel"),
            )
        )
    ]


def _postprocessing(config: ModelConfig) -> list[Any]:
    from bioimageio.spec.model import v0_5

    norm = config.normalisation
    if all(s == 1.0 for s in norm.target_scale) and not any(norm.target_offset):
        return []  # bioimage.io refuses an identity scale_linear
    return [
        v0_5.ScaleLinearDescr(
            kwargs=v0_5.ScaleLinearAlongAxisKwargs(
                gain=list(norm.target_scale),
                offset=list(norm.target_offset),
                axis=v0_5.AxisId("channel"),
            )
        )
    ]


def _axes(net: DeepMicroscopyNet, sizes: tuple[int, int, int]) -> tuple[list[Any], list[Any]]:
    """Input and output axes: batch, channel, y, x."""
    from bioimageio.spec.model import v0_5

    smallest, step, halo = sizes
    p, q = net.shuffle_factor, net.stride
    names = ["mono"] if net.config.channels == 1 else ["red", "green", "blue"]
    inputs: list[Any] = [v0_5.BatchAxis(), v0_5.ChannelAxis(channel_names=names)]
    outputs: list[Any] = [v0_5.BatchAxis(), v0_5.ChannelAxis(channel_names=names)]
    for axis in ("y", "x"):
        # pixel widths in the same arbitrary unit, p for input and q for output pixels: the
        # output side (size * p / q) is then computed exactly, with no floating-point rounding
        inputs.append(
            v0_5.SpaceInputAxis(
                id=v0_5.AxisId(axis),
                size=v0_5.ParameterizedSize(min=smallest, step=step),
                scale=float(p),
            )
        )
        outputs.append(
            v0_5.SpaceOutputAxisWithHalo(
                id=v0_5.AxisId(axis),
                size=v0_5.SizeReference(
                    tensor_id=v0_5.TensorId("input"), axis_id=v0_5.AxisId(axis)
                ),
                scale=float(q),
                halo=halo * p // q,
            )
        )
    return inputs, outputs


def _failure(summary: Any) -> str:
    """The first error of a failed bioimage.io validation summary, on one line."""
    for detail in summary.details:
        for err in detail.errors:
            loc = ".".join(str(x) for x in err.loc)
            return f"{detail.name}: {loc + ': ' if loc else ''}{err.msg}"
    return f"status {summary.status}"


def write_package(
    model_dir: Path,
    net: DeepMicroscopyNet,
    config: ModelConfig,
    out: Path,
    *,
    name: str,
    authors: list[str],
    license: str | None,
) -> dict[str, Any]:
    """Build, test and write the bioimage.io package of a model to *out* (a zip file).

    Returns a summary with the graphs' differences from torch (normalised units). Raises
    :class:`DeepscopeError` when a graph or ``bioimageio.core``'s test fails; then nothing is
    written.
    """
    from bioimageio.core import test_model
    from bioimageio.spec import save_bioimageio_package
    from bioimageio.spec.model import v0_5

    net = net.eval()
    sizes = input_sizes(net)
    smallest, step, _ = sizes
    side = smallest + max(0, -(-(TEST_SIDE - smallest) // step)) * step
    c = config.network.channels
    ones = [1.0] * c
    with tempfile.TemporaryDirectory(prefix="deepscope-export-") as tmp:
        work = Path(tmp)
        weights = work / "weights.pt"
        torch.save({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, weights)
        graphs.write_torchscript(net, c, work / "weights_torchscript.pt")
        graphs.write_onnx(net, c, work / "weights.onnx")
        bare = graphs.check_inputs(config, raw=False)
        diffs = {
            "torchscript": graphs.check_graph(
                "TorchScript graph",
                graphs.torchscript_runner(work / "weights_torchscript.pt"),
                net,
                bare,
                ones,
            ),
            "onnx": graphs.check_graph(
                "ONNX graph", graphs.onnx_runner(work / "weights.onnx"), net, bare, ones
            ),
        }
        x = graphs.example_input(config, (1, side, side))
        raw_net = graphs.RawIntensityNet(net, config.normalisation).eval()
        with torch.no_grad():
            y = raw_net(torch.from_numpy(x)).numpy()
        np.save(work / "test_input.npy", x)
        np.save(work / "test_output.npy", y)
        ok, png = cv2.imencode(".png", cv2.cvtColor(_cover(config, x, y), cv2.COLOR_RGB2BGR))
        if not ok:
            raise RuntimeError("OpenCV could not encode the cover image")
        (work / "cover.png").write_bytes(png.tobytes())
        (work / "README.md").write_text(_readme(config, model_dir, sizes), encoding="utf-8")
        (work / "deepscope_config.json").write_text(
            config.model_dump_json(indent=2) + "\n", encoding="utf-8"
        )
        with collecting_open_files():
            in_axes, out_axes = _axes(net, sizes)
            version = v0_5.Version(torch.__version__.split("+")[0])
            state_dict = v0_5.PytorchStateDictWeightsDescr(
                source=weights,
                architecture=v0_5.ArchitectureFromLibraryDescr(
                    import_from=network_from_settings.__module__,
                    callable=v0_5.Identifier(network_from_settings.__name__),
                    kwargs=config.network.model_dump(mode="json"),
                ),
                pytorch_version=version,
            )
            descr = v0_5.ModelDescr(
                name=name,
                description=(
                    f"Enhances {c}-channel brightfield images to {net.config.scale:g}x the "
                    "pixel density (Deep Learning Microscopy, Rivenson et al. 2017); trained "
                    "with deepscope."
                ),
                authors=[v0_5.Author(name=a) for a in authors],
                cite=[v0_5.CiteEntry(text=PAPER[0], doi=v0_5.Doi(PAPER[1]))],
                license=v0_5.LicenseId(license) if license is not None else None,
                tags=["super-resolution", "image-enhancement", "brightfield", "2d", "deepscope"],
                documentation=v0_5.FileDescr(source=work / "README.md"),
                covers=[v0_5.FileDescr(source=work / "cover.png")],
                attachments=[v0_5.FileDescr(source=work / "deepscope_config.json")],
                inputs=[
                    v0_5.InputTensorDescr(
                        id=v0_5.TensorId("input"),
                        axes=in_axes,
                        test_tensor=v0_5.FileDescr(source=work / "test_input.npy"),
                        preprocessing=_preprocessing(config),
                    )
                ],
                outputs=[
                    v0_5.OutputTensorDescr(
                        id=v0_5.TensorId("output"),
                        axes=out_axes,
                        test_tensor=v0_5.FileDescr(source=work / "test_output.npy"),
                        postprocessing=_postprocessing(config),
                    )
                ],
                weights=v0_5.WeightsDescr(
                    pytorch_state_dict=state_dict,
                    torchscript=v0_5.TorchscriptWeightsDescr(
                        source=work / "weights_torchscript.pt",
                        pytorch_version=version,
                        parent="pytorch_state_dict",
                    ),
                    onnx=v0_5.OnnxWeightsDescr(
                        source=work / "weights.onnx",
                        opset_version=graphs.ONNX_OPSET,
                        parent="pytorch_state_dict",
                    ),
                ),
                config=v0_5.Config(
                    bioimageio=v0_5.BioimageioConfig(
                        reproducibility_tolerance=[
                            # the export criterion: 1e-3 of the input range, in raw output units
                            v0_5.ReproducibilityTolerance(
                                absolute_tolerance=graphs.TOLERANCE
                                * max(config.normalisation.target_scale),
                                relative_tolerance=0.0,
                                mismatched_elements_per_million=0,
                            )
                        ]
                    )
                ),
            )
            package = save_bioimageio_package(descr, output_path=work / "package.zip")
            summary = test_model(package)
            if summary.status != "passed":
                raise DeepscopeError(
                    f"the bioimage.io package failed bioimageio.core's test ({_failure(summary)}); "
                    "nothing was written"
                )
        size = package.stat().st_size
        with atomic_path(out, size_hint=size) as part:
            shutil.copyfile(package, part)
    return {"max_difference": diffs, "bioimageio_test": summary.status, "bytes": size}
