"""The inference engine: raw frame in, enhanced frame out, any size, CPU or GPU.

One code path serves both devices. Frames are split into tiles (:mod:`.tiling`), normalised,
run through the network in ``channels_last`` layout under autocast (bf16/fp16 on the GPU,
optionally bf16 on the CPU), de-normalised and blended on the host. On CUDA the frame is staged
through pinned memory, uploaded on a copy stream, and each output tile is downloaded on that
stream into pinned memory while the next tile computes; CUDA graphs and ``torch.compile`` are
optional for a fixed frame shape.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from deepscope.errors import InputError
from model.config import ModelConfig
from model.inference.tiling import Tile, min_overlap, plan_tiles
from model.network import DeepMicroscopyNet
from model.store import load_model

log = logging.getLogger("deepscope.inference")

Precision = Literal["auto", "fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

#: Default tile edge (input pixels) per device type: large tiles keep a GPU busy.
DEFAULT_TILE = {"cuda": 1024, "cpu": 512}
#: Frame dtypes uploaded unconverted; others become float32 on the host.
_TRANSFER_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
#: Tiles of one shape run together on CUDA.
DEFAULT_BATCH = {"cuda": 4, "cpu": 1}


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; raise :class:`InputError` for bad names."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise InputError(f"device {device!r} is not valid; expected auto, cpu or cuda[:N]") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} requested but CUDA is not available; use cpu")
    if dev.type not in ("cpu", "cuda"):
        raise InputError(f"device {device!r} is not supported; expected auto, cpu or cuda[:N]")
    return dev


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"auto"`` -> bf16 on a GPU that supports it (else fp16), fp32 on the CPU."""
    if precision not in PRECISIONS:
        raise InputError(f"precision {precision!r} is unknown; expected one of {PRECISIONS}")
    if precision != "auto":
        if precision == "fp16" and device.type == "cpu":
            raise InputError("precision 'fp16' is not supported on the CPU; use fp32 or bf16")
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


class RawModel(nn.Module):
    """Raw intensities in, raw intensities out: normalise, run the net under autocast, invert.

    Input and output are float32 ``(n, c, y, x)``; the network runs in ``channels_last``.
    """

    in_off: torch.Tensor
    in_scale: torch.Tensor
    out_off: torch.Tensor
    out_scale: torch.Tensor

    def __init__(self, net: DeepMicroscopyNet, config: ModelConfig, precision: str) -> None:
        super().__init__()
        self.net = net
        norm = config.normalisation
        c = net.config.channels

        def vec(v: tuple[float, ...], name: str) -> torch.Tensor:
            if len(v) != c:
                raise InputError(f"normalisation {name} has {len(v)} values; the model has {c}")
            return torch.tensor(v, dtype=torch.float32).view(1, c, 1, 1)

        self.register_buffer("in_off", vec(norm.input_offset, "input_offset"))
        self.register_buffer("in_scale", vec(norm.input_scale, "input_scale"))
        self.register_buffer("out_off", vec(norm.target_offset, "target_offset"))
        self.register_buffer("out_scale", vec(norm.target_scale, "target_scale"))
        self.dtype = _DTYPES[precision]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Enhance raw ``(n, c, y, x)`` float32 -> raw ``(n, c, Y, X)`` float32."""
        x = ((x - self.in_off) / self.in_scale).contiguous(memory_format=torch.channels_last)
        with torch.autocast(
            x.device.type,
            dtype=self.dtype,
            enabled=self.dtype != torch.float32,
            cache_enabled=False,
        ):
            y = self.net(x)
        return y.float() * self.out_scale + self.out_off


class _GraphRunner:
    """CUDA-graph replays of a module for fixed input shapes (one graph per shape)."""

    def __init__(self, module: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.module = module
        self.graphs: dict[tuple[int, ...], tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]]
        self.graphs = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        key = tuple(x.shape)
        if key not in self.graphs:
            static_in = x.clone()
            side = torch.cuda.Stream(device=x.device)
            side.wait_stream(torch.cuda.current_stream(x.device))
            with torch.cuda.stream(side):
                for _ in range(2):  # warm up (cudnn autotuning) outside the capture
                    self.module(static_in)
            torch.cuda.current_stream(x.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = self.module(static_in)
            self.graphs[key] = (graph, static_in, static_out)
        graph, static_in, static_out = self.graphs[key]
        static_in.copy_(x)
        graph.replay()
        return static_out.clone()


class Enhancer:
    """Enhance raw 40x frames with a trained model; tiled, so any frame size works.

    Parameters
    ----------
    net, config
        The network and its config (see :func:`model.store.load_model`).
    device
        ``"auto"`` (CUDA if available), ``"cpu"`` or ``"cuda[:N]"``.
    precision
        ``"auto"`` (bf16/fp16 on CUDA, fp32 on CPU), ``"fp32"``, ``"bf16"`` or ``"fp16"``.
    tile, overlap
        Tile edge and overlap in input pixels; defaults depend on the device and the network.
    compile
        Wrap the model in ``torch.compile`` (best for a fixed frame shape).
    cuda_graphs
        Replay CUDA graphs per tile shape (CUDA only; ignored on the CPU).
    batch_size
        Tiles of one shape run together; default 4 on CUDA, 1 on the CPU.
    progress
        Show a tqdm bar over tiles on stderr for multi-tile images.
    """

    def __init__(
        self,
        net: DeepMicroscopyNet,
        config: ModelConfig,
        *,
        device: str | torch.device = "auto",
        precision: str = "auto",
        tile: int | None = None,
        overlap: int | None = None,
        compile: bool = False,
        cuda_graphs: bool = False,
        batch_size: int | None = None,
        progress: bool = False,
    ) -> None:
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.config = config
        # a private copy: the caller's network keeps its device and memory format
        # (Module.to accepts memory_format at runtime; the stubs do not list it)
        self.net = (
            copy.deepcopy(net).to(self.device).eval().to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        )
        self.channels = net.config.channels
        q = net.stride
        self.overlap = overlap if overlap is not None else min_overlap(net) + 8 * q
        self.tile = tile if tile is not None else DEFAULT_TILE[self.device.type]
        if self.tile < 1:
            raise InputError(f"tile {self.tile} must be a positive number of pixels")
        if (self.tile - self.overlap) % q:  # make the default tile fit the network
            if tile is not None:
                raise InputError(
                    f"tile {tile} minus overlap {self.overlap} must be a multiple of {q}"
                )
            self.tile += q - (self.tile - self.overlap) % q
        plan_tiles(1, 1, self.tile, self.overlap, net)  # validate tile/overlap early
        bs = batch_size if batch_size is not None else DEFAULT_BATCH[self.device.type]
        if bs < 1:
            raise InputError(f"batch size {bs} must be at least 1")
        self.batch_size = bs
        self.progress = progress
        self.model = RawModel(self.net, config, self.precision).to(self.device).eval()
        is_cuda = self.device.type == "cuda"
        if is_cuda:
            torch.backends.cudnn.benchmark = True
        self.compiled = compile
        self.cuda_graphs = cuda_graphs and is_cuda
        forward: Callable[[torch.Tensor], torch.Tensor] = self.model
        if compile:
            forward = torch.compile(self.model, dynamic=False)
        if self.cuda_graphs:
            forward = _GraphRunner(forward)
        self._forward = forward
        # separate streams: the upload of the next frame need not queue behind this download
        self._up_stream = torch.cuda.Stream(self.device) if is_cuda else None
        self._down_stream = torch.cuda.Stream(self.device) if is_cuda else None
        self._lock = threading.Lock()

    @classmethod
    def from_dir(
        cls,
        model_dir: str | Path,
        *,
        device: str | torch.device = "auto",
        precision: str = "auto",
        tile: int | None = None,
        overlap: int | None = None,
        compile: bool = False,
        cuda_graphs: bool = False,
        batch_size: int | None = None,
        progress: bool = False,
    ) -> Enhancer:
        """Load a model directory (see :func:`model.store.load_model`) into an enhancer."""
        net, config = load_model(model_dir, device="cpu")
        return cls(
            net,
            config,
            device=device,
            precision=precision,
            tile=tile,
            overlap=overlap,
            compile=compile,
            cuda_graphs=cuda_graphs,
            batch_size=batch_size,
            progress=progress,
        )

    @property
    def scale(self) -> float:
        """Output/input pixel density of the model (2.5 for 40x -> 100x)."""
        return float(self.net.config.scale)

    def output_shape(self, height: int, width: int) -> tuple[int, int]:
        """Output ``(Y, X)`` for an input frame of ``height x width``."""
        return self.net.output_size(height, width)

    def describe(self) -> dict[str, object]:
        """Settings as a JSON-ready dict (for logs, ``--json`` and benchmarks)."""
        return {
            "device": str(self.device),
            "device_name": (
                torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"
            ),
            "precision": self.precision,
            "tile": self.tile,
            "overlap": self.overlap,
            "batch_size": self.batch_size,
            "compile": self.compiled,
            "cuda_graphs": self.cuda_graphs,
            "scale": self.scale,
        }

    @property
    def overlaps(self) -> bool:
        """True when :meth:`enhance_async` returns before the work is done (CUDA)."""
        return self._down_stream is not None

    def enhance(self, image: np.ndarray, *, self_feed: bool = False) -> np.ndarray:
        """Enhance one frame of raw intensities.

        Parameters
        ----------
        image
            ``(y, x, c)`` (or ``(y, x)`` for a mono model), any numeric dtype.
        self_feed
            Feed the output, resampled back to the input grid, through the network once more.

        Returns
        -------
        numpy.ndarray
            ``(Y, X, c)`` float32 raw intensities, ``(Y, X) = output_shape(y, x)``.
        """
        frame = self._check(image)
        with self._lock, torch.inference_mode():
            out = self._start(frame)()
            if self_feed:
                h, w = frame.shape[:2]
                t = torch.from_numpy(out).permute(2, 0, 1)[None]
                back = F.interpolate(t, size=(h, w), mode="bilinear", antialias=True)
                out = self._start(back[0].permute(1, 2, 0).contiguous().numpy())()
        return out

    def enhance_async(
        self, image: np.ndarray, *, self_feed: bool = False
    ) -> Callable[[], np.ndarray]:
        """Start enhancing *image*; return a function that waits for and returns the result.

        On CUDA the call returns once the work is queued, so the upload and compute of the next
        frame overlap with the download of this one. On the CPU (and with *self_feed*, which
        needs the first pass on the host) the work is done before it returns.
        """
        if self_feed or not self.overlaps:
            out = self.enhance(image, self_feed=self_feed)
            return lambda: out
        frame = self._check(image)
        with self._lock, torch.inference_mode():
            return self._start(frame)

    def _check(self, image: np.ndarray) -> np.ndarray:
        arr = np.asarray(image)
        if arr.ndim == 2 and self.channels == 1:
            arr = arr[..., None]
        if arr.ndim != 3 or arr.shape[2] != self.channels:
            raise InputError(
                f"image of shape {arr.shape} does not fit the model; expected "
                f"(y, x, {self.channels})" + (" or (y, x)" if self.channels == 1 else "")
            )
        if min(arr.shape[:2]) < 1:
            raise InputError(f"image of shape {arr.shape} is empty")
        # camera dtypes travel as they are (half the bytes of float32) and convert on the device
        dtype = arr.dtype if arr.dtype in _TRANSFER_DTYPES else np.dtype(np.float32)
        return np.ascontiguousarray(arr, dtype=dtype)

    def _upload(self, frame: np.ndarray) -> torch.Tensor:
        """``(y, x, c)`` host frame -> ``(c, y, x)`` device tensor (pinned, async on CUDA).

        The frame keeps its dtype (uint8/uint16/float32); tiles become float32 on the device.
        """
        host = torch.from_numpy(frame)
        if self._up_stream is None:
            return host.permute(2, 0, 1)
        pinned = torch.empty(host.shape, dtype=host.dtype, pin_memory=True)
        pinned.copy_(host)
        with torch.cuda.stream(self._up_stream):
            dev = pinned.to(self.device, non_blocking=True)
        torch.cuda.current_stream(self.device).wait_stream(self._up_stream)
        dev.record_stream(torch.cuda.current_stream(self.device))
        return dev.permute(2, 0, 1)

    def _batches(self, tiles: list[Tile]) -> Iterator[list[Tile]]:
        by_shape: dict[tuple[int, int], list[Tile]] = {}
        for t in tiles:
            by_shape.setdefault(t.shape, []).append(t)
        for group in by_shape.values():
            for i in range(0, len(group), self.batch_size):
                yield group[i : i + self.batch_size]

    def _download(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.cuda.Event | None]:
        """Start copying *y* to the host; return the host tensor and an event to wait on."""
        if self._down_stream is None:
            return y, None
        host = torch.empty(y.shape, dtype=y.dtype, pin_memory=True)
        self._down_stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self._down_stream):
            host.copy_(y, non_blocking=True)
            done = torch.cuda.Event()
            done.record()
        y.record_stream(self._down_stream)
        return host, done

    def _start(self, frame: np.ndarray) -> Callable[[], np.ndarray]:
        """Queue all tiles of *frame*; blend all but the last batch; return the finisher."""
        h, w, c = frame.shape
        oh, ow = self.output_shape(h, w)
        tiles = plan_tiles(h, w, self.tile, self.overlap, self.net)
        src = self._upload(frame)
        single = len(tiles) == 1
        out = (np.empty if single else np.zeros)((oh, ow, c), dtype=np.float32)
        bar: tqdm[Any] | None = (
            tqdm(total=len(tiles), desc="tiles", unit="tile", leave=False)
            if self.progress and not single
            else None
        )
        pending: tuple[list[Tile], torch.Tensor, torch.cuda.Event | None] | None = None
        for batch in self._batches(tiles):
            x = torch.stack(
                [src[:, t.y.start : t.y.stop, t.x.start : t.x.stop] for t in batch]
            ).float()
            y = self._forward(x)
            if not single:
                wts = np.stack([t.weight() for t in batch])[:, None]
                y = y * torch.from_numpy(wts).to(self.device, non_blocking=True)
            download = self._download(y)
            if pending is not None:  # blend the previous batch while this one computes
                self._blend(out, *pending, single, bar)
            pending = (batch, *download)
        last = pending

        def finish() -> np.ndarray:
            if last is not None:
                with torch.inference_mode():
                    self._blend(out, *last, single, bar)
            if bar is not None:
                bar.close()
            return out

        return finish

    @staticmethod
    def _blend(
        out: np.ndarray,
        batch: list[Tile],
        host: torch.Tensor,
        done: torch.cuda.Event | None,
        single: bool,
        bar: tqdm[Any] | None,
    ) -> None:
        if done is not None:
            done.synchronize()
        arr = host.permute(0, 2, 3, 1).numpy()
        for t, tile_out in zip(batch, arr, strict=True):
            region = out[t.y.out_start : t.y.out_stop, t.x.out_start : t.x.out_stop]
            if single:
                region[...] = tile_out
            else:
                region += tile_out
        if bar is not None:
            bar.update(len(batch))
