"""The inference engine: raw frame in, enhanced frame out, any size, CPU or GPU, one code path.

A frame is copied once into a reused staging buffer (pinned host memory on CUDA) in its camera
dtype and uploaded on a copy stream; everything after that happens on the device: conversion and
normalisation into a preallocated ``channels_last`` buffer, the network under autocast
(bf16/fp16 on the GPU, optionally bf16 on the CPU), blending of the output into a preallocated
device buffer with device-side tile weights (computed once per frame shape), de-normalisation,
and the cast to the dtype the consumer wants. Only what the consumer asked for crosses back: the
full-resolution frame, and/or a view-sized reduction of it for a display
(:class:`~model.inference.view.ViewRequest`), each downloaded on a second stream.

On CUDA the whole frame runs as one tile when it fits in free device memory
(``torch.cuda.mem_get_info``); otherwise tiles are blended. Out of device memory, the tile is
halved and the frame retried (one log line). Buffers (and CUDA graphs, when asked) belong to one
frame shape and are rebuilt when the shape changes. On the CPU the same code runs with the
device being the host (no streams, no pinned memory).
"""

from __future__ import annotations

import copy
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.profiler import record_function

from deepscope.errors import InputError
from model.config import ModelConfig
from model.device import resolve_device
from model.inference.cost import frame_cost
from model.inference.tiling import Tile, check_tiling, min_overlap, plan_tiles
from model.inference.view import ViewRequest, ViewWindow, display_window
from model.network import DeepMicroscopyNet
from model.store import load_model

log = logging.getLogger("deepscope.inference")

PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
#: numpy -> torch dtypes of frames and outputs; other frame dtypes become float32 on the host.
_TORCH_DTYPES = {
    np.dtype(np.uint8): torch.uint8,
    np.dtype(np.uint16): torch.uint16,
    np.dtype(np.float32): torch.float32,
}

#: Tile edge (input pixels) on the CPU; on CUDA the whole frame when it fits.
CPU_TILE = 512
#: First tile edge tried on CUDA when the whole frame does not fit in free device memory.
CUDA_TILE = 1024
#: Tiles of one shape run together on CUDA.
DEFAULT_BATCH = {"cuda": 4, "cpu": 1}
#: Share of free device memory a frame may plan to use (the rest: allocator slack, cudnn).
MEMORY_SHARE = 0.7
#: Frame shapes whose buffers (and graphs) are kept; the oldest is dropped beyond this.
MAX_SHAPES = 2
#: Profiler range around the work that runs on the device (queued on CUDA, done on the CPU);
#: what lies outside it per frame is host work (``bench/bench_live.py --host-overhead``).
DEVICE_WORK = "deepscope.device_work"
#: Allowed relative difference between the camera's and the model's input pixel size.
PIXEL_SIZE_TOLERANCE = 0.02


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


def pixel_size_mismatch(
    config: ModelConfig, pixel_size_um: float | None, *, tolerance: float = PIXEL_SIZE_TOLERANCE
) -> str | None:
    """Why frames of *pixel_size_um* do not fit the model, or None when they do (or are unknown).

    The model's input pixel size comes from its ``config.json``; a model without one, or a frame
    without a positive pixel size, is not checked.
    """
    model_px = config.input_pixel_size_um
    if model_px is None or pixel_size_um is None or not pixel_size_um > 0:
        return None
    if abs(pixel_size_um - model_px) <= tolerance * model_px:
        return None
    return (
        f"camera pixel size {pixel_size_um:.4g} um does not match the model's input pixel size "
        f"{model_px:.4g} um (more than {100 * tolerance:.0f} % apart); switch to the objective "
        "the model was trained for"
    )


def _cast(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Float32 raw intensities -> *dtype* (integers rounded and clipped), on t's device."""
    if dtype == torch.float32:
        return t
    info = torch.iinfo(dtype)
    return t.round().clamp_(info.min, info.max).to(dtype)


@dataclass(frozen=True)
class Output:
    """What :meth:`Enhancer.enhance_async` hands back, on the host.

    ``full`` is the whole enhanced frame ``(Y, X, c)`` (None unless asked for); ``view`` the
    part of it a display asked for, reduced on the device, with its ``window`` in output pixels.
    """

    full: np.ndarray | None
    view: np.ndarray | None = None
    window: ViewWindow | None = None


class _GraphRunner:
    """CUDA-graph replays of a module for fixed input shapes (one graph per shape).

    The returned tensor is the graph's static output: valid until the next call.
    """

    def __init__(self, module: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.module = module
        self.graphs: dict[tuple[int, ...], tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]]
        self.graphs = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        key = tuple(x.shape)
        if key not in self.graphs:
            static_in = x.clone(memory_format=torch.channels_last)
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
        return static_out

    def clear(self) -> None:
        """Drop every captured graph (their memory returns to the allocator)."""
        self.graphs.clear()


class _Slot:
    """Buffers of one frame in flight: staging, device frame and (on CUDA) enhanced output.

    Events (CUDA only) order the reuse: ``uploaded`` (the staging buffer may be refilled),
    ``consumed`` (the device frame has been read), ``released`` (the output has been read by
    every download). On the CPU the staging buffer is the device frame, and a frame whose full
    output is asked for gets a new output tensor, which becomes the result (no copy, no second
    full-size buffer); view-only frames (live display) reuse one output buffer.
    """

    def __init__(
        self,
        device: torch.device,
        frame_shape: tuple[int, int, int],
        frame_dtype: torch.dtype,
        out_shape: tuple[int, int, int, int],
    ) -> None:
        cuda = device.type == "cuda"
        self.device = device
        self.out_shape = out_shape
        self.staging = torch.empty(frame_shape, dtype=frame_dtype, pin_memory=cuda)
        self.frame = torch.empty(frame_shape, dtype=frame_dtype, device=device) if cuda else None
        self.out = self.new_out() if cuda else None
        self.uploaded = torch.cuda.Event() if cuda else None
        self.consumed = torch.cuda.Event() if cuda else None
        self.released = torch.cuda.Event() if cuda else None
        for event in (self.uploaded, self.consumed, self.released):
            if event is not None:  # recorded once so the first wait returns at once
                event.record(torch.cuda.current_stream(device))

    def new_out(self) -> torch.Tensor:
        """A float32 ``channels_last`` output tensor of this slot's shape."""
        return torch.empty(
            self.out_shape,
            dtype=torch.float32,
            device=self.device,
            memory_format=torch.channels_last,
        )

    def output(self, *, reuse: bool) -> torch.Tensor:
        """Where this frame's output goes: the slot's buffer, or a new tensor (not *reuse*)."""
        if not reuse:
            return self.new_out()
        if self.out is None:
            self.out = self.new_out()
        return self.out


class _Plan:
    """Everything that depends on one frame shape: tiles, device weights, buffers."""

    def __init__(
        self,
        enhancer: Enhancer,
        frame_shape: tuple[int, int, int],
        frame_dtype: torch.dtype,
        tile: int,
    ) -> None:
        h, w, c = frame_shape
        dev = enhancer.device
        self.tile = tile
        self.tiles = plan_tiles(h, w, tile, enhancer.overlap, enhancer.net)
        self.single = len(self.tiles) == 1
        # separable blending weights on the device, computed once for this shape
        self.weights: list[tuple[torch.Tensor, torch.Tensor]] = [
            (
                torch.from_numpy(t.y.weight).to(dev).view(1, 1, -1, 1),
                torch.from_numpy(t.x.weight).to(dev).view(1, 1, 1, -1),
            )
            for t in self.tiles
        ]
        self.batches = enhancer.batches(self.tiles)
        oh, ow = enhancer.output_shape(h, w)
        self.x = torch.empty(
            (1, c, h, w), dtype=torch.float32, device=dev, memory_format=torch.channels_last
        )
        n_slots = 2 if dev.type == "cuda" else 1  # the CPU finishes a frame before the next
        self.slots = [_Slot(dev, frame_shape, frame_dtype, (1, c, oh, ow)) for _ in range(n_slots)]
        self.next_slot = 0

    def slot(self) -> _Slot:
        """The next slot of the ring (on CUDA two frames may be in flight)."""
        s = self.slots[self.next_slot]
        self.next_slot = (self.next_slot + 1) % len(self.slots)
        return s


class Enhancer:
    """Enhance raw 40x frames with a trained model; tiled when needed, so any frame size works.

    Parameters
    ----------
    net, config
        The network and its config (see :func:`model.store.load_model`).
    device
        ``"auto"`` (CUDA if available), ``"cpu"`` or ``"cuda[:N]"``.
    precision
        ``"auto"`` (bf16/fp16 on CUDA, fp32 on CPU), ``"fp32"``, ``"bf16"`` or ``"fp16"``.
    tile, overlap
        Tile edge and overlap in input pixels. Default tile: 512 on the CPU; on CUDA the whole
        frame when it fits in free device memory, else the largest halving of 1024 that fits.
    compile
        Wrap the network in ``torch.compile`` (best for a fixed frame shape).
    cuda_graphs
        Replay CUDA graphs per tile shape (CUDA only; ignored on the CPU).
    batch_size
        Tiles of one shape run together; default 4 on CUDA, 1 on the CPU.
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
    ) -> None:
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.config = config
        # a private copy: the caller's network keeps its device and memory format
        # (Module.to accepts memory_format at runtime; the stubs do not list it)
        self.net: DeepMicroscopyNet = (
            copy.deepcopy(net).to(self.device).eval().to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        )
        self.channels = net.config.channels
        q = net.stride
        self.overlap = overlap if overlap is not None else min_overlap(net) + 8 * q
        self._is_cuda = self.device.type == "cuda"
        self.fixed_tile = tile
        if tile is not None:
            if tile < 1:
                raise InputError(f"tile {tile} must be a positive number of pixels")
            check_tiling(tile, self.overlap, net)
        else:
            check_tiling(self._fit_tile(CPU_TILE), self.overlap, net)
        bs = batch_size if batch_size is not None else DEFAULT_BATCH[self.device.type]
        if bs < 1:
            raise InputError(f"batch size {bs} must be at least 1")
        self.batch_size = bs
        self._dtype = _DTYPES[self.precision]
        norm = config.normalisation
        self._norm = {
            name: self._vector(getattr(norm, name), name)
            for name in ("input_offset", "input_scale", "target_offset", "target_scale")
        }
        if self._is_cuda:
            torch.backends.cudnn.benchmark = True
        self.compiled = compile
        self.cuda_graphs = cuda_graphs and self._is_cuda
        forward: Callable[[torch.Tensor], torch.Tensor] = self._network
        if compile:
            forward = torch.compile(forward, dynamic=False)
        self._graphs = _GraphRunner(forward) if self.cuda_graphs else None
        self._forward = self._graphs if self._graphs is not None else forward
        # separate streams: uploads and downloads overlap the compute of other frames
        self._up_stream = torch.cuda.Stream(self.device) if self._is_cuda else None
        self._down_stream = torch.cuda.Stream(self.device) if self._is_cuda else None
        self._plans: OrderedDict[tuple[int, int, int, torch.dtype], _Plan] = OrderedDict()
        self._tile_of: dict[tuple[int, int], int] = {}  # frame shape -> tile (see tile_for)
        self._lock = threading.Lock()

    def _vector(self, values: tuple[float, ...], name: str) -> torch.Tensor:
        c = self.channels
        if len(values) != c:
            raise InputError(f"normalisation {name} has {len(values)} values; the model has {c}")
        return torch.tensor(values, dtype=torch.float32, device=self.device).view(1, c, 1, 1)

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
        )

    # ------------------------------------------------------------------ facts

    @property
    def scale(self) -> float:
        """Output/input pixel density of the model (2.5 for 40x -> 100x)."""
        return float(self.net.config.scale)

    @property
    def overlaps(self) -> bool:
        """True when :meth:`enhance_async` returns before the work is done (CUDA)."""
        return self._is_cuda

    def output_shape(self, height: int, width: int) -> tuple[int, int]:
        """Output ``(Y, X)`` for an input frame of ``height x width``."""
        return self.net.output_size(height, width)

    def pixel_size_mismatch(self, pixel_size_um: float | None) -> str | None:
        """Why frames of *pixel_size_um* do not fit this model (see :func:`pixel_size_mismatch`)."""
        return pixel_size_mismatch(self.config, pixel_size_um)

    def tile_for(self, height: int, width: int) -> int:
        """Tile edge used for a ``height x width`` frame (the whole frame: its longer side).

        Decided once per frame shape (on CUDA from the free device memory at that moment),
        then kept; running out of memory halves it.
        """
        key = (height, width)
        tile = self._tile_of.get(key)
        if tile is None:
            tile = self._tile_of[key] = self._choose_tile(height, width)
        return tile

    def _choose_tile(self, height: int, width: int) -> int:
        if self.fixed_tile is not None:
            return self.fixed_tile
        if not self._is_cuda:
            return self._fit_tile(CPU_TILE)
        longest = max(height, width)
        if self._fits(height, width):
            return self._fit_tile(longest)
        tile = self._fit_tile(min(CUDA_TILE, longest))
        while tile > 2 * self.overlap and not self._fits(tile, tile, tiles=True):
            tile = self._fit_tile(tile // 2)
        return tile

    def _fit_tile(self, tile: int) -> int:
        """Round *tile* up so that ``tile - overlap`` is a positive multiple of the stride."""
        q = self.net.stride
        tile = max(tile, self.overlap + q)
        return tile + (-(tile - self.overlap)) % q

    def _fits(self, height: int, width: int, *, tiles: bool = False) -> bool:
        """Whether a frame (or, with *tiles*, a batch of tiles) fits in free device memory."""
        free, _ = torch.cuda.mem_get_info(self.device)
        free += torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(self.device)
        element = 4 if self.precision == "fp32" else 2
        cost = frame_cost(self.net, height, width, element_bytes=element)
        batch = self.batch_size if tiles else 1
        oh, ow = self.output_shape(height, width)
        buffers = 4 * self.channels * (3 * height * width + 3 * oh * ow)  # x, 2 slots, casts
        need = 2 * cost.peak_bytes * batch + buffers
        return need <= MEMORY_SHARE * free

    def describe(self) -> dict[str, object]:
        """Settings as a JSON-ready dict (for logs, ``--json`` and benchmarks)."""
        return {
            "device": str(self.device),
            "device_name": (torch.cuda.get_device_name(self.device) if self._is_cuda else "cpu"),
            "precision": self.precision,
            "tile": self.fixed_tile if self.fixed_tile is not None else "auto",
            "overlap": self.overlap,
            "batch_size": self.batch_size,
            "compile": self.compiled,
            "cuda_graphs": self.cuda_graphs,
            "scale": self.scale,
        }

    # -------------------------------------------------------------------- API

    def enhance(
        self,
        image: np.ndarray,
        *,
        self_feed: bool = False,
        dtype: np.dtype | type | None = None,
    ) -> np.ndarray:
        """Enhance one frame of raw intensities.

        Parameters
        ----------
        image
            ``(y, x, c)`` (or ``(y, x)`` for a mono model), any numeric dtype.
        self_feed
            Feed the output, resampled back to the input grid, through the network once more.
        dtype
            Output dtype: float32 (the default), or uint8/uint16 (rounded and clipped on the
            device).

        Returns
        -------
        numpy.ndarray
            ``(Y, X, c)`` raw intensities, ``(Y, X) = output_shape(y, x)``; a new array.
        """
        full = self.enhance_async(image, self_feed=self_feed, dtype=dtype)().full
        assert full is not None  # asked for above
        return full

    def enhance_async(
        self,
        image: np.ndarray,
        *,
        self_feed: bool = False,
        full: bool = True,
        view: ViewRequest | None = None,
        dtype: np.dtype | type | None = None,
    ) -> Callable[[], Output]:
        """Start enhancing *image*; return a function that waits for and returns the result.

        On CUDA the call returns once the work is queued, so the upload and compute of the next
        frame overlap with the downloads of this one (two frames may be in flight; a third
        waits for the first one's upload). On the CPU the work is done before it returns.

        Parameters
        ----------
        image
            As for :meth:`enhance`; the caller may reuse it as soon as this returns.
        self_feed
            As for :meth:`enhance`.
        full
            Download the whole enhanced frame (``Output.full``).
        view
            Also reduce the part of the enhanced frame that a display shows to its screen size
            on the device and download only that (``Output.view`` and ``Output.window``).
        dtype
            Dtype of ``full`` and ``view`` (see :meth:`enhance`).
        """
        frame = self._check(image)
        out_dtype = self._out_dtype(dtype)
        with self._lock, torch.inference_mode():
            h, w, _ = frame.shape
            while True:
                try:
                    return self._start(frame, self_feed, full, view, out_dtype)
                except torch.OutOfMemoryError:
                    tile = min(self.tile_for(h, w), self._fit_tile(max(h, w)))
                    smaller = self._fit_tile(tile // 2)
                    if smaller >= tile:
                        raise  # the smallest tile does not fit either
                    log.warning(
                        "out of device memory for a %dx%d frame at tile %d; using tile %d",
                        h,
                        w,
                        tile,
                        smaller,
                    )
                    self._tile_of[(h, w)] = smaller
                    self._drop_plans()

    # --------------------------------------------------------------- internals

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
        dtype = arr.dtype if arr.dtype in _TORCH_DTYPES else np.dtype(np.float32)
        return np.ascontiguousarray(arr, dtype=dtype)

    @staticmethod
    def _out_dtype(dtype: np.dtype | type | None) -> torch.dtype:
        nd = np.dtype(np.float32 if dtype is None else dtype)
        if nd not in _TORCH_DTYPES:
            raise InputError(f"output dtype {nd} is not supported; use float32, uint16 or uint8")
        return _TORCH_DTYPES[nd]

    def batches(self, tiles: list[Tile]) -> list[list[int]]:
        """Indices of *tiles* grouped by shape into batches of at most ``batch_size``."""
        by_shape: dict[tuple[int, int], list[int]] = {}
        for i, t in enumerate(tiles):
            by_shape.setdefault(t.shape, []).append(i)
        return [
            group[i : i + self.batch_size]
            for group in by_shape.values()
            for i in range(0, len(group), self.batch_size)
        ]

    def _plan(self, frame_shape: tuple[int, int, int], frame_dtype: torch.dtype) -> _Plan:
        key = (*frame_shape, frame_dtype)
        plan = self._plans.get(key)
        tile = self.tile_for(*frame_shape[:2])
        if plan is not None and plan.tile == tile:
            self._plans.move_to_end(key)
            return plan
        self._plans.pop(key, None)
        if len(self._plans) >= MAX_SHAPES:  # a new shape (ROI change): rebuild, not accumulate
            self._drop_plans(keep=MAX_SHAPES - 1)
        log.debug("buffers for %s frames (%s), tile %d", frame_shape, frame_dtype, tile)
        plan = _Plan(self, frame_shape, frame_dtype, tile)
        self._plans[key] = plan
        return plan

    def _drop_plans(self, keep: int = 0) -> None:
        """Free buffers of all but the *keep* most recent frame shapes (and all graphs)."""
        if self._is_cuda:
            torch.cuda.synchronize(self.device)  # nothing in flight still uses them
        while len(self._plans) > keep:
            self._plans.popitem(last=False)
        if self._graphs is not None:
            self._graphs.clear()

    def _network(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised ``(n, c, y, x)`` in, normalised output out, under autocast."""
        with torch.autocast(
            self.device.type,
            dtype=self._dtype,
            enabled=self._dtype != torch.float32,
            cache_enabled=False,
        ):
            return self.net(x)

    @staticmethod
    def _stage(slot: _Slot, frame: np.ndarray) -> None:
        """Copy *frame* into the slot's staging buffer (host work: the caller may reuse it)."""
        if slot.uploaded is not None:
            slot.uploaded.synchronize()  # the previous upload from this buffer is done
        np.copyto(slot.staging.numpy(), frame)  # one memcpy thread: no contention with torch

    def _upload(self, slot: _Slot) -> torch.Tensor:
        """The staged frame on the device, ``(h, w, c)`` (queued on the upload stream)."""
        if slot.frame is None or self._up_stream is None:
            return slot.staging
        compute = torch.cuda.current_stream(self.device)
        assert slot.consumed is not None
        assert slot.uploaded is not None
        self._up_stream.wait_event(slot.consumed)  # the device frame was read
        with torch.cuda.stream(self._up_stream):
            slot.frame.copy_(slot.staging, non_blocking=True)
            slot.uploaded.record()
        compute.wait_event(slot.uploaded)
        return slot.frame

    def _normalise(self, plan: _Plan, src: torch.Tensor) -> None:
        """Raw ``(n=1, c, y, x)`` of any dtype -> normalised float32 in ``plan.x``."""
        plan.x.copy_(src)
        plan.x.sub_(self._norm["input_offset"]).div_(self._norm["input_scale"])

    def _infer(self, plan: _Plan, out: torch.Tensor) -> None:
        """Run the network over ``plan.x`` and blend the tiles into *out* (raw float32)."""
        if plan.single:
            out.copy_(self._forward(plan.x))
        else:
            out.zero_()
            for batch in plan.batches:
                tiles = [plan.tiles[i] for i in batch]
                x = torch.cat(
                    [plan.x[:, :, t.y.start : t.y.stop, t.x.start : t.x.stop] for t in tiles]
                )
                y = self._forward(x.contiguous(memory_format=torch.channels_last))
                for k, (i, t) in enumerate(zip(batch, tiles, strict=True)):
                    wy, wx = plan.weights[i]
                    region = out[:, :, t.y.out_start : t.y.out_stop, t.x.out_start : t.x.out_stop]
                    region.addcmul_(y[k : k + 1].float() * wy, wx)
        # the weights sum to one, so de-normalising the blend equals blending de-normalised tiles
        out.mul_(self._norm["target_scale"]).add_(self._norm["target_offset"])

    def _start(
        self,
        frame: np.ndarray,
        self_feed: bool,
        full: bool,
        view: ViewRequest | None,
        out_dtype: torch.dtype,
    ) -> Callable[[], Output]:
        h, w, c = frame.shape
        plan = self._plan((h, w, c), _TORCH_DTYPES[frame.dtype])
        slot = plan.slot()
        self._stage(slot, frame)
        results: list[torch.Tensor] = []
        window = None
        with record_function(DEVICE_WORK):
            src = self._upload(slot)
            compute = torch.cuda.current_stream(self.device) if self._is_cuda else None
            if compute is not None and slot.released is not None:
                compute.wait_event(slot.released)  # this slot's last downloads are done
            self._normalise(plan, src.permute(2, 0, 1).unsqueeze(0))
            if slot.consumed is not None:
                slot.consumed.record(compute)
            out = slot.output(reuse=self._is_cuda or not full)
            self._infer(plan, out)
            if self_feed:
                back = F.interpolate(out, size=(h, w), mode="bilinear", antialias=True)
                self._normalise(plan, back)
                self._infer(plan, out)
            if full:
                results.append(_cast(out, out_dtype))
            if view is not None:
                oh, ow = out.shape[2:]
                window = display_window(oh, ow, view.scaled(self.scale), view.screen_px)
                results.append(self._reduce(out, window, out_dtype))
        hosts, done = self._download([r[0].permute(1, 2, 0) for r in results], slot)

        def finish() -> Output:
            if done is not None:
                done.synchronize()
            arrays = [t.numpy() for t in hosts]
            return Output(
                full=arrays[0] if full else None,
                view=arrays[-1] if view is not None else None,
                window=window,
            )

        return finish

    @staticmethod
    def _reduce(out: torch.Tensor, window: ViewWindow, dtype: torch.dtype) -> torch.Tensor:
        """The window of *out* area-averaged by its factor (as ``cv2.INTER_AREA``), cast."""
        f = window.factor
        vh, vw = window.shape
        crop = out[:, :, window.y0 : window.y0 + vh * f, window.x0 : window.x0 + vw * f]
        reduced = F.avg_pool2d(crop, f) if f > 1 else crop
        return _cast(reduced, dtype)

    def _download(
        self, results: list[torch.Tensor], slot: _Slot
    ) -> tuple[list[torch.Tensor], torch.cuda.Event | None]:
        """Host tensors with the device ``(Y, X, c)`` tensors *results*, and an event to wait on.

        On CUDA the copies go into pinned memory from the caching host allocator, queued on the
        download stream; on the CPU the results are already on the host (made contiguous).
        """
        if self._down_stream is None:
            with record_function(DEVICE_WORK):
                return [t.contiguous() for t in results], None
        hosts = [torch.empty(t.shape, dtype=t.dtype, pin_memory=True) for t in results]
        assert slot.released is not None
        compute = torch.cuda.current_stream(self.device)
        with record_function(DEVICE_WORK), torch.cuda.stream(self._down_stream):
            self._down_stream.wait_stream(compute)
            for host, t in zip(hosts, results, strict=True):
                host.copy_(t, non_blocking=True)
                t.record_stream(self._down_stream)
            slot.released.record()
            done = torch.cuda.Event()
            done.record()
        return hosts, done
