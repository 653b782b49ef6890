"""``make_core``: a pymmcore-plus UniMMCore wired to the simulated microscope."""

from __future__ import annotations

import atexit
import weakref
from pathlib import Path
from typing import Any, Literal

from pymmcore_plus import CMMCorePlus
from pymmcore_plus.core._constants import Keyword
from pymmcore_plus.experimental.unicore import UniMMCore

from deepscope.errors import InputError
from simulators.devices import SimCamera, SimLamp, SimTurret, SimXYStage, SimZStage
from simulators.faults import FaultConfig
from simulators.microscope import BIT_DEPTH, VirtualMicroscope
from simulators.optics import OBJECTIVES
from simulators.specimen import Specimen, TissueSpecimen

OBJECTIVE_GROUP = "Objective"


class SimulatedCore(UniMMCore):
    """UniMMCore whose pixel size follows the (pure-Python) objective turret.

    The C++ core cannot resolve a pixel-size configuration whose settings are properties of a
    Python device (it returns ``""`` and a pixel size of 0). This subclass resolves the current
    configuration itself by comparing each configuration's settings with the devices' current
    property values, and derives ``getPixelSizeUm`` / ``getPixelSizeAffine`` from it.
    """

    microscope: VirtualMicroscope

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # MMCore delivers notifications from its own thread; one arriving while the interpreter
        # finalises aborts the process ("FATAL: exception not rethrown"). Detach at exit.
        atexit.register(_detach_callbacks, weakref.ref(self))

    def getCurrentPixelSizeConfig(self, cached: bool = False) -> str:  # type: ignore[override]  # noqa: N802
        """Name of the pixel-size configuration matching the current device state, or ``""``."""
        for res_id in self.getAvailablePixelSizeConfigs():
            settings = self.getPixelSizeConfigData(res_id)
            if all(str(self.getProperty(dev, prop)) == str(value) for dev, prop, value in settings):
                return str(res_id)
        return ""

    def setAutoShutter(self, state: bool) -> None:  # noqa: N802
        """Set auto-shutter; the simulated camera then exposes with the lamp open."""
        super().setAutoShutter(state)
        if (scope := getattr(self, "microscope", None)) is not None:
            scope.auto_shutter = bool(state)

    def getImageBitDepth(self) -> int:  # noqa: N802
        """Bit depth of the camera's pixels (12 for the simulated camera, not its uint16 dtype)."""
        if isinstance(self._py_camera(), SimCamera):
            return BIT_DEPTH
        return int(super().getImageBitDepth())

    def _binning(self) -> float:
        cam = self.getCameraDevice()
        return float(self.getProperty(cam, Keyword.Binning)) if cam else 1.0

    def getPixelSizeUm(self, cached: bool = False) -> float:  # noqa: N802
        """Pixel size (um) of the current objective and binning; 0.0 when none matches."""
        if not (res_id := self.getCurrentPixelSizeConfig(cached)):
            return 0.0
        return (
            float(self.getPixelSizeUmByID(res_id)) * self._binning() / self.getMagnificationFactor()
        )

    def getPixelSizeAffine(self, cached: bool = False) -> tuple[float, ...]:  # type: ignore[override]  # noqa: N802
        """Pixel-size affine of the current objective, scaled by binning."""
        if not (res_id := self.getCurrentPixelSizeConfig(cached)):
            return (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        factor = self._binning() / self.getMagnificationFactor()
        return tuple(float(v) * factor for v in self.getPixelSizeAffineByID(res_id))


def _detach_callbacks(ref: weakref.ref[SimulatedCore]) -> None:
    if (core := ref()) is not None:
        super(CMMCorePlus, core).registerCallback(None)


def make_core(
    *,
    seed: int = 0,
    specimen: Literal["tissue", "usaf"] = "tissue",
    imperfections: bool = True,
    faults: FaultConfig | None = None,
    sensor: tuple[int, int] = (2048, 2048),
    objective: str = "40x",
    tile_cache_mb: int = 768,
) -> SimulatedCore:
    """Return a ready simulated microscope core.

    Devices: ``Camera`` (12-bit RGB, 7.4 um pixels), ``XY`` and ``Z`` stages, ``Objective``
    turret (``40x``/0.95 air, ``100x``/1.4 oil), ``Shutter`` (lamp). Config group ``Objective``
    with presets ``40x`` and ``100x``; pixel sizes 0.185 / 0.074 um follow the turret.

    Parameters
    ----------
    seed
        Seeds the specimen, the imperfections, stage errors and noise.
    specimen
        ``"tissue"`` (H&E section) or ``"usaf"`` (USAF-1951 target, see :func:`usaf_elements`).
    imperfections
        False: no objective offsets/rotation/magnification error/parfocal offset and no stage
        errors (noise stays on).
    faults
        Simulated hardware failures; none by default.
    sensor
        Camera sensor ``(height, width)``; use ``core.setROI`` for smaller frames.
    objective
        Objective in the light path at start.
    tile_cache_mb
        Memory bound of the rendered-specimen tile cache.
    """
    spec_obj: Specimen
    if specimen == "tissue":
        spec_obj = TissueSpecimen(seed)
    elif specimen == "usaf":
        from simulators.usaf import UsafSpecimen

        spec_obj = UsafSpecimen()
    else:
        raise InputError(f"specimen {specimen!r} is unknown; expected one of: tissue, usaf")
    if objective not in OBJECTIVES:
        raise InputError(
            f"objective {objective!r} is unknown; expected one of: {', '.join(OBJECTIVES)}"
        )
    scope = VirtualMicroscope(
        spec_obj,
        seed=seed,
        imperfections=imperfections,
        faults=faults,
        sensor=sensor,
        tile_cache_mb=tile_cache_mb,
    )
    # all devices are Python: point the adapter search at a folder without C++ adapters, so no
    # Micro-Manager installation is looked for
    core = SimulatedCore(mm_path=str(Path(__file__).parent))
    core.microscope = scope
    for label, dev in (
        ("Camera", SimCamera(scope)),
        ("XY", SimXYStage(scope)),
        ("Z", SimZStage(scope)),
        ("Objective", SimTurret(scope)),
        ("Shutter", SimLamp(scope)),
    ):
        core.loadPyDevice(label, dev)
    core.initializeAllDevices()
    core.setCameraDevice("Camera")
    core.setXYStageDevice("XY")
    core.setFocusDevice("Z")
    core.setShutterDevice("Shutter")
    core.setAutoShutter(True)
    core.defineConfigGroup(OBJECTIVE_GROUP)
    for name in OBJECTIVES:
        core.defineConfig(OBJECTIVE_GROUP, name, "Objective", "Label", name)
        res_id = f"Res{name}"
        core.definePixelSizeConfig(res_id, "Objective", "Label", name)
        px = scope.nominal_pixel_size_um(name)
        core.setPixelSizeUm(res_id, px)
        core.setPixelSizeAffine(res_id, [px, 0.0, 0.0, 0.0, px, 0.0])
    core.setConfig(OBJECTIVE_GROUP, objective)
    return core


def microscope_of(core: Any) -> VirtualMicroscope:
    """The :class:`VirtualMicroscope` (ground truth) behind a core made by :func:`make_core`."""
    scope = getattr(core, "microscope", None)
    if not isinstance(scope, VirtualMicroscope):
        raise InputError(
            f"{type(core).__name__} is not a simulated core made by simulators.make_core"
        )
    return scope
