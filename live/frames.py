"""Values that live mode hands out: one processed frame and a snapshot of the statistics."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from deepscope.framemeta import FrameMeta
from model.inference.view import ViewWindow


@dataclass(frozen=True)
class LiveFrame:
    """A camera frame and, when a model is set, its enhancement.

    ``arrival_s`` and ``ready_s`` are ``time.perf_counter()`` seconds (``ready_s`` is set when the
    frame was enhanced); ``meta`` is the device state read back from the core with it.
    ``enhanced`` is the full-resolution enhanced frame (only when the pipeline downloads it);
    ``view`` the part of it that the display asked for, reduced on the device, with its
    ``window`` in enhanced pixels.
    """

    index: int
    raw: np.ndarray
    enhanced: np.ndarray | None
    arrival_s: float
    ready_s: float | None
    meta: FrameMeta
    view: np.ndarray | None = None
    window: ViewWindow | None = None


@dataclass(frozen=True)
class LiveStats:
    """Counts, rates and arrival -> enhanced-ready latency percentiles of a live run.

    ``paused`` says why frames are not being enhanced right now (None while they are).
    """

    frames_in: int
    frames_enhanced: int
    dropped: int
    recorded: int
    camera_fps: float | None
    inference_fps: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    paused: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def rate(times: list[float]) -> float | None:
    """Events per second over the span of *times* (None for fewer than two events)."""
    if len(times) < 2 or times[-1] <= times[0]:
        return None
    return (len(times) - 1) / (times[-1] - times[0])


def percentiles(values_ms: list[float]) -> tuple[float | None, float | None, float | None]:
    """p50, p95 and p99 of *values_ms* (Nones when empty)."""
    if not values_ms:
        return None, None, None
    p = np.percentile(np.asarray(values_ms), [50, 95, 99])
    return float(p[0]), float(p[1]), float(p[2])
