"""Pure-Python Micro-Manager devices (pymmcore-plus ``unicore`` ABCs) over a VirtualMicroscope."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import DTypeLike
from pymmcore_plus.core._constants import FocusDirection
from pymmcore_plus.experimental.unicore import (
    CameraDevice,
    ShutterDevice,
    StageDevice,
    StateDevice,
    XYStageDevice,
)

from deepscope.errors import InputError
from simulators.microscope import VirtualMicroscope
from simulators.optics import OBJECTIVES

MAX_EXPOSURE_MS = 10_000.0
BINNINGS = (1, 2, 4)


class SimCamera(CameraDevice):
    """12-bit RGB camera (7.4 um pixels) that images the virtual slide.

    Frames are paced to the exposure time (rendering time counts towards it), so sequence
    acquisition runs at a physical frame rate instead of flooding the buffer.
    """

    def __init__(self, scope: VirtualMicroscope) -> None:
        super().__init__()
        self._scope = scope
        self._exposure_ms = 10.0
        self._binning = 1
        self._roi: tuple[int, int, int, int] | None = None
        self.set_property_allowed_values("Binning", list(BINNINGS))

    def get_exposure(self) -> float:
        """Exposure time in ms."""
        return self._exposure_ms

    def set_exposure(self, exposure: float) -> None:
        """Set the exposure time in ms (0 < exposure <= 10 s)."""
        if not 0 < float(exposure) <= MAX_EXPOSURE_MS:
            raise InputError(f"exposure {exposure} ms is outside (0, {MAX_EXPOSURE_MS:g}] ms")
        self._exposure_ms = float(exposure)

    def get_binning(self) -> int:
        """Binning factor."""
        return self._binning

    def set_binning(self, value: int) -> None:
        """Set binning (1, 2 or 4); resets the ROI to the full binned sensor."""
        if int(value) not in BINNINGS:
            raise InputError(f"binning {value} is not one of {BINNINGS}")
        self._binning = int(value)
        self._roi = None

    def _sensor(self) -> tuple[int, int]:
        h, w = self._scope.sensor
        return h // self._binning, w // self._binning

    def get_roi(self) -> tuple[int, int, int, int]:
        """ROI ``(x, y, width, height)`` in binned pixels."""
        if self._roi is not None:
            return self._roi
        h, w = self._sensor()
        return (0, 0, w, h)

    def set_roi(self, x: int, y: int, width: int, height: int) -> None:
        """Set the ROI in binned pixels; it must lie on the sensor."""
        h, w = self._sensor()
        if x < 0 or y < 0 or width < 1 or height < 1 or x + width > w or y + height > h:
            raise InputError(
                f"ROI (x={x}, y={y}, width={width}, height={height}) is outside the {w}x{h} "
                f"sensor (binning {self._binning}); need 0 <= x, x + width <= {w}, "
                f"0 <= y, y + height <= {h}"
            )
        self._roi = (int(x), int(y), int(width), int(height))

    def clear_roi(self) -> None:
        """Use the full sensor."""
        self._roi = None

    def shape(self) -> tuple[int, int, int]:
        """Frame shape ``(height, width, 3)``."""
        _, _, w, h = self.get_roi()
        return (h, w, 3)

    def dtype(self) -> DTypeLike:
        """uint16 holding 12-bit counts."""
        return np.uint16

    def _illuminated(self) -> bool:
        # the lamp shutter is open, or the core opens it around each exposure (auto-shutter)
        return self._scope.shutter_open or self._scope.auto_shutter

    def start_sequence(
        self, n: int | None, get_buffer: Callable[[Sequence[int], DTypeLike], np.ndarray]
    ) -> Iterator[Mapping[str, Any]]:
        """Expose *n* frames (or until stopped), each paced to the exposure time.

        ROI and binning are fixed for the sequence; exposure changes apply to the next frame.
        """
        roi, binning = self.get_roi(), self._binning  # fixed while the sequence runs
        label = self.get_label()
        shape, dtype = self.shape(), self.dtype()
        count = 0
        next_t = time.perf_counter()
        while n is None or count < n:
            exposure = self._exposure_ms  # may change between frames (live view)
            frame, truth = self._scope.snap(
                roi, binning, exposure, illuminated=self._illuminated(), camera=label
            )
            next_t += exposure / 1000
            if (delay := next_t - time.perf_counter()) > 0:
                time.sleep(delay)
            else:
                next_t = time.perf_counter()
            buf = get_buffer(shape, dtype)
            buf[:] = frame
            count += 1
            yield {"SimSnapIndex": str(truth.index), "Exposure-ms": f"{exposure:g}"}


class SimXYStage(XYStageDevice):
    """Open-loop XY stage: reports the commanded position, lands with error and backlash."""

    def __init__(self, scope: VirtualMicroscope) -> None:
        super().__init__()
        self._scope = scope

    def set_position_um(self, x: float, y: float) -> None:
        """Move to ``(x, y)`` um (within the travel limits)."""
        self._scope.move_xy(float(x), float(y), self.get_label())

    def get_position_um(self) -> tuple[float, float]:
        """Commanded position."""
        x, y, _ = self._scope.commanded_xyz
        return x, y

    def home(self) -> None:
        """Move to the origin."""
        self.set_position_um(0.0, 0.0)

    def stop(self) -> None:
        """Moves are instantaneous; nothing to stop."""

    def set_origin_x(self) -> None:
        """Not supported: slide coordinates are absolute in the simulator."""
        raise InputError("the simulated XY stage keeps absolute slide coordinates; no origin reset")

    def set_origin_y(self) -> None:
        """Not supported: slide coordinates are absolute in the simulator."""
        raise InputError("the simulated XY stage keeps absolute slide coordinates; no origin reset")


class SimZStage(StageDevice):
    """Open-loop focus drive (um, positive = towards the specimen top)."""

    def __init__(self, scope: VirtualMicroscope) -> None:
        super().__init__()
        self._scope = scope

    def set_position_um(self, val: float) -> None:
        """Move to *val* um (within the travel limits)."""
        self._scope.move_z(float(val), self.get_label())

    def get_position_um(self) -> float:
        """Commanded position."""
        return self._scope.commanded_xyz[2]

    def get_focus_direction(self) -> FocusDirection:
        """Positive moves go towards the sample."""
        return FocusDirection.TowardSample

    def home(self) -> None:
        """Move to z = 0."""
        self.set_position_um(0.0)

    def stop(self) -> None:
        """Moves are instantaneous; nothing to stop."""

    def set_origin(self) -> None:
        """Not supported: specimen heights are absolute in the simulator."""
        raise InputError("the simulated Z stage keeps absolute coordinates; no origin reset")


class SimTurret(StateDevice):
    """Objective turret with one state per objective (labels ``40x``, ``100x``)."""

    def __init__(self, scope: VirtualMicroscope) -> None:
        super().__init__(dict(enumerate(OBJECTIVES)))
        self._scope = scope
        self._names = list(OBJECTIVES)

    def get_state(self) -> int:
        """Index of the objective in the light path."""
        return self._names.index(self._scope.objective)

    def set_state(self, position: int) -> None:
        """Swing objective number *position* in."""
        if not 0 <= int(position) < len(self._names):
            raise InputError(f"turret position {position} is not in 0..{len(self._names) - 1}")
        self._scope.set_objective(self._names[int(position)])


class SimLamp(ShutterDevice):
    """Shutter of the transmitted-light lamp."""

    def __init__(self, scope: VirtualMicroscope) -> None:
        super().__init__()
        self._scope = scope

    def get_open(self) -> bool:
        """Whether the lamp shutter is open."""
        return self._scope.shutter_open

    def set_open(self, open: bool) -> None:
        """Open or close the lamp shutter."""
        self._scope.shutter_open = bool(open)
