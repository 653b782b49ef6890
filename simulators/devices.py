"""Pure-Python Micro-Manager devices (pymmcore-plus ``unicore`` ABCs) of the simulated microscope.

Every device is constructible without arguments, so a Micro-Manager configuration file can load
it (``#py pyDevice,LABEL,simulators.devices,CLASS``). :class:`SimScope` is the hub: its pre-init
properties (``Seed``, ``Specimen``, ``Imperfections``, sensor size, tile cache and the fault
settings of :data:`FAULT_PROPERTIES`) are the simulator's settings, and it owns the
:class:`~simulators.microscope.VirtualMicroscope` that the camera, stages, turret and lamp act
on. A peripheral belongs to the ``SimScope`` loaded last in the same thread and not yet
initialised, i.e. the hub of the configuration being loaded (a configuration lists the hub
first); a ``Parent`` line naming another hub is refused.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import DTypeLike
from pydantic import ValidationError
from pymmcore_plus.core._constants import FocusDirection
from pymmcore_plus.experimental.unicore import (
    CameraDevice,
    Device,
    ShutterDevice,
    StageDevice,
    StateDevice,
    XYStageDevice,
)
from pymmcore_plus.experimental.unicore.devices._hub import HubDevice

from deepscope.errors import HardwareError, InputError
from simulators.faults import FaultConfig
from simulators.microscope import BIT_DEPTH, VirtualMicroscope
from simulators.optics import OBJECTIVES
from simulators.specimen import Specimen, TissueSpecimen

MAX_EXPOSURE_MS = 10_000.0
BINNINGS = (1, 2, 4)
#: Camera ``PixelType`` values, as Micro-Manager's cameras name them: 16-bit RGB, 16-bit grey.
RGB = "64bitRGB"
PIXEL_TYPES = (RGB, "16bit")
SPECIMENS = ("tissue", "usaf")
_LAST_HUB = threading.local()
#: :class:`FaultConfig` field -> (hub property, default); index lists are space-separated.
FAULT_PROPERTIES: dict[str, tuple[str, float | int | str]] = {
    "seed": ("FaultSeed", 0),
    "camera_failure_rate": ("CameraFailureRate", 0.0),
    "camera_timeout_rate": ("CameraTimeoutRate", 0.0),
    "camera_timeout_s": ("CameraTimeoutS", 0.5),
    "stage_error_rate": ("StageErrorRate", 0.0),
    "fail_snaps": ("FailSnaps", ""),
    "fail_moves": ("FailMoves", ""),
}


def fault_settings(faults: FaultConfig) -> dict[str, str]:
    """Hub property values (strings, as a configuration file holds them) of *faults*."""
    out = {}
    for field, (name, _) in FAULT_PROPERTIES.items():
        value = getattr(faults, field)
        out[name] = " ".join(map(str, value)) if isinstance(value, tuple) else str(value)
    return out


def _fault_value(value: Any, default: float | int | str) -> Any:
    if isinstance(default, str):  # a list of 0-based indices
        return [int(v) for v in str(value).split()]
    return value


class SimScope(HubDevice):
    """Hub of the simulated microscope: its settings, and the virtual slide and optics."""

    def __init__(self) -> None:
        super().__init__()
        self._scope: VirtualMicroscope | None = None
        self._lock = threading.Lock()
        #: set by :meth:`initialize`; peripherals made later belong to another configuration
        self.initialized = False
        self.register_property("Seed", default_value=0, limits=(0, 2**31 - 1), is_pre_init=True)
        self.register_property(
            "Specimen", default_value="tissue", allowed_values=SPECIMENS, is_pre_init=True
        )
        self.register_property("Imperfections", default_value=1, limits=(0, 1), is_pre_init=True)
        for name, default in FAULT_PROPERTIES.values():
            self.register_property(name, default_value=default, is_pre_init=True)
        self.register_property(
            "SensorWidth", default_value=2048, limits=(16, 8192), is_pre_init=True
        )
        self.register_property(
            "SensorHeight", default_value=2048, limits=(16, 8192), is_pre_init=True
        )
        self.register_property(
            "TileCacheMB", default_value=768, limits=(1, 65536), is_pre_init=True
        )
        _LAST_HUB.hub = self

    def get_installed_peripherals(self) -> Sequence[tuple[str, str]]:
        """The simulated devices that attach to this hub."""
        return tuple((c.__name__, (c.__doc__ or "").split("\n")[0]) for c in PERIPHERALS)

    def initialize(self) -> None:
        """Build the virtual microscope from the settings."""
        _ = self.scope
        self.initialized = True

    @property
    def scope(self) -> VirtualMicroscope:
        """The virtual microscope (built from the settings on first use)."""
        with self._lock:
            if self._scope is None:
                self._scope = self._build()
            return self._scope

    def _build(self) -> VirtualMicroscope:
        seed = int(self.get_property_value("Seed"))
        name = str(self.get_property_value("Specimen"))
        specimen: Specimen
        if name == "usaf":
            from simulators.usaf import UsafSpecimen

            specimen = UsafSpecimen()
        else:
            specimen = TissueSpecimen(seed)
        try:
            faults = FaultConfig.model_validate(
                {
                    field: _fault_value(self.get_property_value(name), default)
                    for field, (name, default) in FAULT_PROPERTIES.items()
                }
            )
        except (ValidationError, ValueError) as exc:
            raise InputError(f"SimScope fault settings are not valid: {exc}") from exc
        return VirtualMicroscope(
            specimen,
            seed=seed,
            imperfections=bool(int(self.get_property_value("Imperfections"))),
            faults=faults,
            sensor=(
                int(self.get_property_value("SensorHeight")),
                int(self.get_property_value("SensorWidth")),
            ),
            tile_cache_mb=int(self.get_property_value("TileCacheMB")),
        )


class _Peripheral(Device):
    """A device of the simulated microscope; it acts on the hub made before it."""

    _hub: SimScope

    def _bind(self) -> None:
        hub = getattr(_LAST_HUB, "hub", None)
        # only a hub of the configuration being loaded: loaded, not yet initialised
        if hub is None or not hub.get_label() or hub.initialized:
            raise HardwareError(
                f"{type(self).__name__} needs a SimScope hub loaded before it "
                "(#py pyDevice,Scope,simulators.devices,SimScope)"
            )
        self._hub: SimScope = hub

    @property
    def _scope(self) -> VirtualMicroscope:
        parent = self._parent_label_
        if parent and parent != self._hub.get_label():
            raise HardwareError(
                f"device '{self.get_label()}' names hub '{parent}', but it was loaded after "
                f"hub '{self._hub.get_label()}'"
            )
        return self._hub.scope


class SimCamera(_Peripheral, CameraDevice):
    """12-bit RGB camera (7.4 um pixels) that images the virtual slide.

    ``PixelType`` ``64bitRGB`` (default) gives ``(y, x, 3)`` frames; ``16bit`` gives grey
    ``(y, x)`` frames (the mean of the colour channels), which writers without RGB support take.

    Frames are paced to the exposure time (rendering time counts towards it), so sequence
    acquisition runs at a physical frame rate instead of flooding the buffer.
    """

    def __init__(self) -> None:
        super().__init__()
        self._bind()
        self._exposure_ms = 10.0
        self._binning = 1
        self._roi: tuple[int, int, int, int] | None = None
        self.set_property_allowed_values("Binning", list(BINNINGS))
        self.register_property("BitDepth", default_value=BIT_DEPTH, is_read_only=True)
        self.register_property("PixelType", default_value=RGB, allowed_values=PIXEL_TYPES)

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

    def shape(self) -> tuple[int, int] | tuple[int, int, int]:
        """Frame shape: ``(height, width, 3)``, or ``(height, width)`` for ``PixelType`` 16bit."""
        _, _, w, h = self.get_roi()
        return (h, w, 3) if self.get_property_value("PixelType") == RGB else (h, w)

    def dtype(self) -> DTypeLike:
        """uint16 holding 12-bit counts."""
        return np.uint16

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
                roi, binning, exposure, illuminated=self._scope.shutter_open, camera=label
            )
            next_t += exposure / 1000
            if (delay := next_t - time.perf_counter()) > 0:
                time.sleep(delay)
            else:
                next_t = time.perf_counter()
            buf = get_buffer(shape, dtype)
            if len(shape) == 2:  # monochrome readout: the mean of the colour channels
                np.rint(frame.mean(axis=2), out=buf, casting="unsafe")
            else:
                buf[:] = frame
            count += 1
            yield {"SimSnapIndex": str(truth.index), "Exposure-ms": f"{exposure:g}"}


class SimXYStage(_Peripheral, XYStageDevice):
    """Open-loop XY stage: reports the commanded position, lands with error and backlash."""

    def __init__(self) -> None:
        super().__init__()
        self._bind()

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


class SimZStage(_Peripheral, StageDevice):
    """Open-loop focus drive (um, positive = towards the specimen top)."""

    def __init__(self) -> None:
        super().__init__()
        self._bind()

    def set_position_um(self, val: float) -> None:
        """Move to *val* um (within the travel limits)."""
        self._scope.move_z(float(val), self.get_label())

    def get_position_um(self) -> float:
        """Commanded position."""
        return self._scope.commanded_xyz[2]

    def get_focus_direction(self) -> FocusDirection:
        """Positive moves go towards the sample."""
        return FocusDirection.TowardSample

    def set_focus_direction(self, sign: int) -> None:
        """Accept the direction the drive has (1, towards the sample; a saved config says so)."""
        if int(sign) != int(FocusDirection.TowardSample):
            raise InputError(
                f"focus direction {sign} is not this drive's: positive moves go towards the "
                f"sample ({int(FocusDirection.TowardSample)})"
            )

    def home(self) -> None:
        """Move to z = 0."""
        self.set_position_um(0.0)

    def stop(self) -> None:
        """Moves are instantaneous; nothing to stop."""

    def set_origin(self) -> None:
        """Not supported: specimen heights are absolute in the simulator."""
        raise InputError("the simulated Z stage keeps absolute coordinates; no origin reset")


class SimTurret(_Peripheral, StateDevice):
    """Objective turret with one state per objective (labels ``40x``, ``100x``)."""

    def __init__(self) -> None:
        super().__init__(dict(enumerate(OBJECTIVES)))
        self._bind()
        self._names = list(OBJECTIVES)

    def get_state(self) -> int:
        """Index of the objective in the light path."""
        return self._names.index(self._scope.objective)

    def set_state(self, position: int) -> None:
        """Swing objective number *position* in."""
        if not 0 <= int(position) < len(self._names):
            raise InputError(f"turret position {position} is not in 0..{len(self._names) - 1}")
        self._scope.set_objective(self._names[int(position)])


class SimLamp(_Peripheral, ShutterDevice):
    """Shutter of the transmitted-light lamp."""

    def __init__(self) -> None:
        super().__init__()
        self._bind()

    def get_open(self) -> bool:
        """Whether the lamp shutter is open."""
        return self._scope.shutter_open

    def set_open(self, open: bool) -> None:
        """Open or close the lamp shutter."""
        self._scope.shutter_open = bool(open)


#: Devices that attach to a :class:`SimScope` hub, in configuration order.
PERIPHERALS: tuple[type[Device], ...] = (SimCamera, SimXYStage, SimZStage, SimTurret, SimLamp)
