"""Load a Micro-Manager hardware configuration into a pymmcore-plus ``UniMMCore``.

``UniMMCore`` loads C++ adapters and Python devices (``#py pyDevice,...`` lines) from one
``.cfg``; :class:`PyDeviceCore` fills the gaps it leaves for Python devices (pymmcore-plus 0.18):

* pixel-size presets whose settings are properties of a Python device (an objective turret)
  resolve; the C++ core cannot read those properties and reports a pixel size of 0;
* auto-shutter opens a Python shutter around each exposure, as MMCore does for C++ shutters;
* an RGB camera is reported as Micro-Manager reports RGB cameras: 4 components, bytes per pixel
  counting all four (RGB32: 4, RGB64: 8), so writers that compute the sample type as
  ``bytes // components`` get ``uint8``/``uint16``;
* a camera's ``BitDepth`` property is the image bit depth (12-bit data in ``uint16``).

:func:`load_config` turns every way a configuration can fail to load (missing file, syntax
error, adapter not installed, Python module that does not import, device that fails to
initialise) into one :class:`~deepscope.errors.HardwareError` line naming the file, the line
and the device.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import re
import weakref
from pathlib import Path
from typing import Any

import numpy as np
from pymmcore_plus import CMMCorePlus
from pymmcore_plus.core._constants import Keyword
from pymmcore_plus.experimental.unicore import UniMMCore
from pymmcore_plus.experimental.unicore.core._config import load_from_string

from deepscope.errors import HardwareError, InputError

#: Camera property holding the bit depth of the pixel values (Micro-Manager's DemoCamera name).
BIT_DEPTH_PROPERTY = "BitDepth"
_CPP_DEVICE = re.compile(r"^\s*Device\s*,", re.M)
_LINE_ERROR = re.compile(
    r"Error in configuration file '(?P<file>.*)' at line (?P<line>\d+): "
    r"'(?P<text>.*)'\n(?P<cause>.*)",
    re.S,
)


class PyDeviceCore(UniMMCore):
    """``UniMMCore`` whose pixel size, auto-shutter and image format also work for Python devices.

    Parameters are those of ``UniMMCore`` (``mm_path``: the Micro-Manager adapter folder).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # MMCore delivers notifications from its own thread; one arriving while the interpreter
        # finalises aborts the process ("FATAL: exception not rethrown"). Detach at exit.
        atexit.register(_detach_callbacks, weakref.ref(self))

    # -- pixel size ------------------------------------------------------------------------
    def getCurrentPixelSizeConfig(self, cached: bool = False) -> str:  # type: ignore[override]  # noqa: N802
        """Name of the pixel-size preset matching the current device state, or ``""``."""
        get = self.getPropertyFromCache if cached else self.getProperty
        for res_id in self.getAvailablePixelSizeConfigs():
            settings = self.getPixelSizeConfigData(res_id)
            if all(str(get(dev, prop)) == str(value) for dev, prop, value in settings):
                return str(res_id)
        return ""

    def _scale(self) -> float:
        cam = self.getCameraDevice()
        binning = float(self.getProperty(cam, Keyword.Binning)) if cam else 1.0
        return binning / float(self.getMagnificationFactor())

    def getPixelSizeUm(self, cached: bool = False) -> float:  # noqa: N802
        """Pixel size (um) of the current preset and binning; 0.0 when no preset matches."""
        if not (res_id := self.getCurrentPixelSizeConfig(cached)):
            return 0.0
        return float(self.getPixelSizeUmByID(res_id)) * self._scale()

    def getPixelSizeAffine(self, cached: bool = False) -> tuple[float, ...]:  # type: ignore[override]  # noqa: N802
        """Pixel-size affine of the current preset, scaled by binning."""
        if not (res_id := self.getCurrentPixelSizeConfig(cached)):
            return (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        return tuple(float(v) * self._scale() for v in self.getPixelSizeAffineByID(res_id))

    # -- auto-shutter ----------------------------------------------------------------------
    def _py_auto_shutter(self) -> str:
        """The Python shutter the core must open around exposures, or ``""``."""
        shutter = self.getShutterDevice()
        if shutter and self.isPyDevice(shutter) and self.getAutoShutter():
            return str(shutter)
        return ""

    def snapImage(self) -> None:  # noqa: N802
        """Snap one image, with a Python shutter opened around it under auto-shutter."""
        if not (shutter := self._py_auto_shutter()) or self.getShutterOpen(shutter):
            super().snapImage()
            return
        self.setShutterOpen(shutter, True)
        try:
            super().snapImage()
        finally:
            self.setShutterOpen(shutter, False)

    def startContinuousSequenceAcquisition(self, intervalMs: float = 0) -> None:  # noqa: N802
        """Start live mode; a Python shutter stays open until it stops (auto-shutter)."""
        if shutter := self._py_auto_shutter():
            self.setShutterOpen(shutter, True)
        super().startContinuousSequenceAcquisition(intervalMs)

    def startSequenceAcquisition(self, *args: Any, **kwargs: Any) -> None:  # noqa: N802
        """Start a sequence; a Python shutter stays open until it stops (auto-shutter)."""
        if shutter := self._py_auto_shutter():
            self.setShutterOpen(shutter, True)
        super().startSequenceAcquisition(*args, **kwargs)

    def stopSequenceAcquisition(self, *args: Any, **kwargs: Any) -> None:  # noqa: N802
        """Stop the sequence and close a Python shutter opened for it."""
        super().stopSequenceAcquisition(*args, **kwargs)
        if shutter := self._py_auto_shutter():
            self.setShutterOpen(shutter, False)

    # -- image format ----------------------------------------------------------------------
    def _py_rgb_camera(self) -> Any:
        cam = self._py_camera()
        return cam if cam is not None and len(cam.shape()) == 3 else None

    def getNumberOfComponents(self) -> int:  # noqa: N802
        """4 for an RGB camera (Micro-Manager's RGB32/RGB64 convention), else 1."""
        if self._py_rgb_camera() is not None:
            return 4
        return int(super().getNumberOfComponents())

    def getBytesPerPixel(self) -> int:  # noqa: N802
        """Bytes per pixel over all components (an RGB camera counts four)."""
        if (cam := self._py_rgb_camera()) is not None:
            return 4 * np.dtype(cam.dtype()).itemsize
        return int(super().getBytesPerPixel())

    def getImageBitDepth(self) -> int:  # noqa: N802
        """Bit depth of the pixel values: the camera's ``BitDepth`` property when it has one."""
        cam = self.getCameraDevice()
        if cam and self.isPyDevice(cam) and self.hasProperty(cam, BIT_DEPTH_PROPERTY):
            return int(self.getProperty(cam, BIT_DEPTH_PROPERTY))
        return int(super().getImageBitDepth())


def _detach_callbacks(ref: weakref.ref[PyDeviceCore]) -> None:
    if (core := ref()) is not None:
        super(CMMCorePlus, core).registerCallback(None)


def load_config(
    path: str | Path | None = None, *, text: str | None = None, mm_path: str | None = None
) -> PyDeviceCore:
    """A :class:`PyDeviceCore` with the configuration file *path* (or *text*) loaded.

    Raises :class:`~deepscope.errors.InputError` if *path* does not exist, and
    :class:`~deepscope.errors.HardwareError` with one line naming the file, the line and the
    device when anything fails to load or initialise; nothing is left loaded then.
    """
    source = str(path) if path is not None else "<simulator configuration>"
    if text is None:
        if path is None:
            raise ValueError("load_config needs a path or text")
        p = Path(path)
        if not p.is_file():
            raise InputError(f"Micro-Manager configuration {p} does not exist")
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise HardwareError(
                f"Micro-Manager configuration {p}: cannot read it ({reason})"
            ) from exc
    if mm_path is None and not _CPP_DEVICE.search(text):
        mm_path = str(Path(__file__).parent)  # Python devices only: no adapter folder to find
    if mm_path is None:
        mm_path = next(iter(_find_micromanager()), str(Path(__file__).parent))
    core = PyDeviceCore(mm_path=mm_path)
    try:
        load_from_string(core, text, source)
        _check_initialized(core, source)
    except Exception as exc:
        with contextlib.suppress(Exception):  # the load error is the one to report
            core.unloadAllDevices()
        if isinstance(exc, HardwareError):
            raise
        message = config_error(exc, source)
        if _CPP_DEVICE.search(text) and "DeviceAdapter" in message:
            message += f" (Micro-Manager adapters searched in: {adapter_path_text()})"
        raise HardwareError(message) from exc
    return core


def adapter_path_text() -> str:
    """Where Micro-Manager's C++ adapters are looked for, or how to install them."""
    found = _find_micromanager()
    return ", ".join(found) if found else "none installed; run 'mmcore install'"


def _find_micromanager() -> list[str]:
    """Micro-Manager installations pymmcore-plus finds (without its ERROR log when none)."""
    from pymmcore_plus import find_micromanager

    mm_log = logging.getLogger("pymmcore-plus")
    was_disabled, mm_log.disabled = mm_log.disabled, True
    try:
        return list(find_micromanager(return_first=False))
    finally:
        mm_log.disabled = was_disabled


def _check_initialized(core: PyDeviceCore, source: str) -> None:
    from pymmcore_plus.core._constants import DeviceInitializationState as State

    for label in core.getLoadedDevices():
        if not core.isPyDevice(label):
            continue  # MMCore raised for C++ devices already
        if core.getDeviceInitializationState(label) == State.InitializationFailed:
            cause = core._pydevices[label]._initialized_  # no public accessor
            raise HardwareError(
                f"Micro-Manager configuration {source}: device '{label}' "
                f"({core.getDeviceLibrary(label)}.{core.getDeviceName(label)}) failed to "
                f"initialise: {_first_line(cause)}"
            )


def config_error(exc: BaseException, source: str) -> str:
    """One line for a configuration that failed to load: file, line, device, cause."""
    m = _LINE_ERROR.match(str(exc))
    if m is None:
        return f"Micro-Manager configuration {source}: {_first_line(exc)}"
    fields = [f.strip() for f in m["text"].split(",")]
    device = _device_of(fields)
    cause = _first_line(m["cause"])
    inner = exc.__cause__
    while inner is not None:  # the first message that is not pymmcore-plus's wrapping
        if not str(inner).startswith(("Error executing command", "Error in configuration")):
            cause = _first_line(inner)
            break
        inner = inner.__cause__
    where = f"line {m['line']} ({m['text']})"
    return (
        f"Micro-Manager configuration {m['file']}, {where}"
        + (f", device '{device}'" if device else "")
        + f": {cause}"
    )


def _device_of(fields: list[str]) -> str:
    """The device label a configuration line refers to (``""`` for none)."""
    command = fields[0].lstrip("#py ").strip() if fields else ""
    if (
        command in {"Device", "pyDevice", "Property", "Delay", "FocusDirection", "Label", "Parent"}
        and len(fields) > 1
    ):
        return "" if fields[1] == Keyword.CoreDevice else fields[1]
    if command in {"ConfigGroup", "ConfigPixelSize"} and len(fields) > 3:
        return fields[3] if command == "ConfigGroup" else fields[2]
    return ""


def _first_line(exc: object) -> str:
    text = str(exc).strip()
    if isinstance(exc, BaseException) and not text:
        text = type(exc).__name__
    return " ".join(text.split("\n")[:1]) or "unknown error"


def is_rgb(core: Any) -> bool:
    """Whether *core*'s camera delivers RGB frames (more than one component)."""
    return int(core.getNumberOfComponents()) > 1 and core.getCameraDevice() != ""
