"""The simulated microscope as an ordinary Micro-Manager configuration.

:func:`simulator_config` writes the configuration (Python devices of :mod:`simulators.devices`,
objective presets, per-objective pixel-size presets); :func:`make_core` loads it into the same
:class:`~deepscope.mmcore.PyDeviceCore` that ``--mm-config FILE`` uses, so ``--simulate`` and
``--mm-config sim.cfg`` are one code path.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict, Unpack

from deepscope.errors import InputError
from deepscope.mmcore import PyDeviceCore, load_config
from simulators.devices import SPECIMENS, SimScope, fault_settings
from simulators.faults import FaultConfig
from simulators.microscope import VirtualMicroscope, nominal_pixel_size_um
from simulators.optics import OBJECTIVES

OBJECTIVE_GROUP = "Objective"
HUB = "Scope"
#: What :func:`make_core` returns (kept as a name for type hints).
SimulatedCore = PyDeviceCore


class SimSettings(TypedDict, total=False):
    """Settings of the simulated microscope, every one optional (default in brackets).

    ``seed`` (0) seeds the specimen, the imperfections, stage errors and noise. ``specimen``
    ("tissue"): an H&E section, or "usaf" (USAF-1951 target, see :func:`usaf_elements`).
    ``imperfections`` (True); False: no objective offsets/rotation/magnification error/parfocal
    offset and no stage errors (noise stays on). ``faults`` (none): simulated hardware failures.
    ``sensor`` ((2048, 2048)): camera sensor ``(height, width)``; use ``core.setROI`` for
    smaller frames. ``objective`` ("40x"): in the light path at start. ``tile_cache_mb`` (768):
    memory bound of the rendered-specimen tile cache.
    """

    seed: int
    specimen: Literal["tissue", "usaf"]
    imperfections: bool
    faults: FaultConfig | None
    sensor: tuple[int, int]
    objective: str
    tile_cache_mb: int


def simulator_config(**settings: Unpack[SimSettings]) -> str:
    """The Micro-Manager configuration text of the simulated microscope (see :func:`make_core`)."""
    seed = settings.get("seed", 0)
    specimen = settings.get("specimen", "tissue")
    imperfections = settings.get("imperfections", True)
    faults = settings.get("faults")
    sensor = settings.get("sensor", (2048, 2048))
    objective = settings.get("objective", "40x")
    tile_cache_mb = settings.get("tile_cache_mb", 768)
    if specimen not in SPECIMENS:
        raise InputError(
            f"specimen {specimen!r} is unknown; expected one of: {', '.join(SPECIMENS)}"
        )
    if objective not in OBJECTIVES:
        raise InputError(
            f"objective {objective!r} is unknown; expected one of: {', '.join(OBJECTIVES)}"
        )
    if len(sensor) != 2 or min(sensor) < 16 or max(sensor) > 8192:
        raise InputError(f"sensor {sensor} is not (height, width) between 16 and 8192 pixels")
    py = "#py "
    lines = [
        "# deepscope simulated microscope: a Micro-Manager configuration of Python devices",
        "# (load it with pymmcore-plus UniMMCore; plain MMCore reads the #py lines as comments)",
        "Property,Core,Initialize,0",
        f"{py}pyDevice,{HUB},simulators.devices,SimScope",
        f"{py}pyDevice,Camera,simulators.devices,SimCamera",
        f"{py}pyDevice,XY,simulators.devices,SimXYStage",
        f"{py}pyDevice,Z,simulators.devices,SimZStage",
        f"{py}pyDevice,Objective,simulators.devices,SimTurret",
        f"{py}pyDevice,Shutter,simulators.devices,SimLamp",
        "# simulator settings (pre-init properties of the hub)",
        f"{py}Property,{HUB},Seed,{int(seed)}",
        f"{py}Property,{HUB},Specimen,{specimen}",
        f"{py}Property,{HUB},Imperfections,{int(bool(imperfections))}",
        *(
            f"{py}Property,{HUB},{name},{value}"
            for name, value in fault_settings(faults or FaultConfig()).items()
        ),
        f"{py}Property,{HUB},SensorWidth,{int(sensor[1])}",
        f"{py}Property,{HUB},SensorHeight,{int(sensor[0])}",
        f"{py}Property,{HUB},TileCacheMB,{int(tile_cache_mb)}",
        *(f"{py}Parent,{label},{HUB}" for label in ("Camera", "XY", "Z", "Objective", "Shutter")),
        "Property,Core,Initialize,1",
        f"{py}FocusDirection,Z,1",
        *(f"{py}Label,Objective,{i},{name}" for i, name in enumerate(OBJECTIVES)),
        *(
            f"{py}ConfigGroup,{OBJECTIVE_GROUP},{name},Objective,Label,{name}"
            for name in OBJECTIVES
        ),
        "# per-objective pixel sizes (camera pixel / nominal magnification)",
    ]
    for name in OBJECTIVES:
        px = repr(nominal_pixel_size_um(name))
        lines += [
            f"{py}ConfigPixelSize,Res{name},Objective,Label,{name}",
            f"PixelSize_um,Res{name},{px}",
            f"PixelSizeAffine,Res{name},{px},0.0,0.0,0.0,{px},0.0",
        ]
    lines += [
        f"{py}Property,Core,Camera,Camera",
        f"{py}Property,Core,Shutter,Shutter",
        f"{py}Property,Core,Focus,Z",
        f"{py}Property,Core,XYStage,XY",
        "Property,Core,AutoShutter,1",
        f"{py}Property,Objective,Label,{objective}",
    ]
    return "\n".join(lines) + "\n"


def make_core(**settings: Unpack[SimSettings]) -> PyDeviceCore:
    """Return a ready simulated microscope core (settings: :class:`SimSettings`).

    Devices: ``Scope`` (hub with the settings), ``Camera`` (12-bit RGB, 7.4 um pixels), ``XY``
    and ``Z`` stages, ``Objective`` turret (``40x``/0.95 air, ``100x``/1.4 oil), ``Shutter``
    (lamp). Config group ``Objective`` with presets ``40x`` and ``100x``; pixel-size presets
    0.185 / 0.074 um follow the turret.
    """
    return load_config(text=simulator_config(**settings))


def microscope_of(core: Any) -> VirtualMicroscope:
    """The :class:`VirtualMicroscope` (ground truth) behind a core with a ``SimScope`` hub."""
    pydevices = getattr(core, "_pydevices", None)  # UniMMCore has no public device accessor
    if pydevices is not None:
        for label in core.getLoadedDevices():
            if core.isPyDevice(label) and isinstance(hub := pydevices[label], SimScope):
                return hub.scope
    raise InputError(f"{type(core).__name__} has no simulated microscope (SimScope hub) loaded")
