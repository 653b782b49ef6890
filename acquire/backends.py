"""The three ways to reach a microscope, behind one small :class:`Scope` interface.

* ``simulated`` (default): :func:`simulators.make_core`, a pymmcore-plus ``UniMMCore``;
* ``--mm-config FILE``: a Micro-Manager hardware configuration loaded into a pymmcore-plus core;
* ``--zmq-port N``: a running Micro-Manager with its ZMQ server (pycromanager's Java backend).

The first two run pycromanager's Python backend through :mod:`acquire.pycro_core`; the third
talks to the Java acquisition engine. Only the simulator can be tested on a machine without a
microscope; the other two share every line above :class:`Scope`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from acquire.plan import CameraROI
from deepscope.errors import HardwareError, InputError

log = logging.getLogger("deepscope.acquire")


class Scope:
    """Direct device access (snake_case Micro-Manager core API) plus acquisition construction.

    Parameters
    ----------
    core
        A core with the snake_case Micro-Manager API: :class:`acquire.pycro_core.PycroCoreAdapter`
        around a pymmcore-plus core, or pycromanager's ``Core`` bridged to Java.
    java_port
        The ZMQ port when *core* is the Java bridge, else None (Python backend).
    """

    def __init__(self, core: Any, java_port: int | None = None) -> None:
        self.core = core
        self.java_port = java_port

    # -- state -----------------------------------------------------------------------------
    def position(self) -> tuple[float, float, float]:
        """Stage position ``(x, y, z)`` in um, read back from the stages."""
        c = self.core
        return float(c.get_x_position()), float(c.get_y_position()), float(c.get_position())

    def pixel_size_um(self) -> float:
        """Pixel size of the objective in the light path."""
        return float(self.core.get_pixel_size_um())

    def image_size(self) -> tuple[int, int]:
        """Frame ``(width, height)`` in pixels (after ROI and binning)."""
        return int(self.core.get_image_width()), int(self.core.get_image_height())

    def presets(self, group: str) -> list[str]:
        """Presets of config group *group*; empty if the group does not exist."""
        if not self.core.is_group_defined(group):
            return []
        configs = self.core.get_available_configs(group)
        if hasattr(configs, "size"):  # a StrVector seen through the Java bridge
            return [str(configs.get(i)) for i in range(configs.size())]
        return [str(p) for p in configs]

    # -- actions ---------------------------------------------------------------------------
    def set_objective(self, group: str, preset: str) -> None:
        """Apply preset *preset* of the objective group and wait for the turret."""
        self.core.set_config(group, preset)
        self.core.wait_for_config(group, preset)

    def set_roi(self, roi: CameraROI) -> None:
        """Set the camera ROI, centred on the sensor unless the plan gives its corner."""
        c = self.core
        c.clear_roi()
        width, height = self.image_size()
        if roi.width > width or roi.height > height:
            raise InputError(
                f"camera ROI {roi.width}x{roi.height} is larger than the sensor {width}x{height}"
            )
        x = (width - roi.width) // 2 if roi.x is None else roi.x
        y = (height - roi.height) // 2 if roi.y is None else roi.y
        c.set_roi(x, y, roi.width, roi.height)

    def roi(self) -> tuple[int, int, int, int] | None:
        """Current camera ROI ``(x, y, width, height)``, or None if the core cannot say."""
        try:
            x, y, w, h = (int(v) for v in self.core.get_roi())
        except (TypeError, ValueError):
            return None
        return x, y, w, h

    def restore_roi(self, roi: tuple[int, int, int, int]) -> None:
        """Set the camera ROI saved by :meth:`roi`."""
        self.core.set_roi(*roi)

    def set_exposure(self, exposure_ms: float) -> None:
        """Camera exposure in ms."""
        self.core.set_exposure(float(exposure_ms))

    def move_xy(self, x_um: float, y_um: float) -> None:
        """Move the XY stage and wait for it."""
        c = self.core
        c.set_xy_position(float(x_um), float(y_um))
        c.wait_for_device(c.get_xy_stage_device())

    def move_z(self, z_um: float) -> None:
        """Move the focus drive and wait for it."""
        c = self.core
        c.set_position(float(z_um))
        c.wait_for_device(c.get_focus_device())

    def snap(self) -> np.ndarray:
        """Snap one frame: ``(y, x)`` or ``(y, x, 3)``."""
        c = self.core
        c.snap_image()
        image = np.asarray(c.get_image())
        if image.ndim == 1:  # the Java bridge returns flat pixels
            width, height = self.image_size()
            image = image.reshape(height, width, -1)
            if image.shape[-1] == 1:
                image = image[..., 0]
        return image

    def snap_at(self, z_um: float) -> np.ndarray:
        """Move focus to *z_um*, then snap."""
        self.move_z(z_um)
        return self.snap()

    def acquisition(self, **hooks: Any) -> Any:
        """A pycromanager ``Acquisition`` on this scope with the given hooks and processor."""
        from pycromanager import Acquisition

        if self.java_port is not None:
            return Acquisition(port=self.java_port, show_display=False, **hooks)
        return Acquisition(**hooks)


@contextlib.contextmanager
def python_scope(core: Any) -> Iterator[Scope]:
    """A :class:`Scope` on a pymmcore-plus core, with pycromanager's Python engine installed."""
    from acquire.pycro_core import pycro_engine

    with contextlib.ExitStack() as stack:
        try:
            adapter = stack.enter_context(pycro_engine(core))
        except RuntimeError as exc:  # another acquisition or live view holds the engine
            raise HardwareError(f"cannot start pycromanager's engine: {exc}") from exc
        yield Scope(adapter)


def set_camera_roi(core: Any, roi: Sequence[int]) -> None:
    """Set a pymmcore core's camera ROI ``(x, y, width, height)`` from a ``--roi`` option.

    Raises :class:`~deepscope.errors.InputError` naming the ROI and why the camera refused it.
    """
    try:
        core.setROI(*roi)
    except (RuntimeError, ValueError) as exc:
        raise InputError(f"--roi {' '.join(map(str, roi))} is not valid: {exc}") from exc


def simulated_core(seed: int = 0, faults: Any = None) -> Any:
    """The simulated microscope core (imperfections on, like a real instrument)."""
    from simulators import make_core

    return make_core(seed=seed, faults=faults)


def config_core(path: str | Path) -> Any:
    """A pymmcore-plus core with the Micro-Manager hardware configuration *path* loaded."""
    from pymmcore_plus import CMMCorePlus

    p = Path(path)
    if not p.is_file():
        raise InputError(f"Micro-Manager configuration {p} does not exist")
    core = CMMCorePlus()
    try:
        core.loadSystemConfiguration(str(p))
    except Exception as exc:
        raise HardwareError(f"loading {p} failed: {exc}") from exc
    return core


@contextlib.contextmanager
def java_scope(port: int) -> Iterator[Scope]:
    """A :class:`Scope` on a running Micro-Manager reached through its ZMQ server on *port*."""
    if not 1 <= port <= 65535:
        raise InputError(f"--zmq-port {port} is not a TCP port (1..65535)")
    from pycromanager import Core

    try:
        core = Core(port=port)
    except Exception as exc:
        raise HardwareError(
            f"no Micro-Manager ZMQ server on port {port} ({type(exc).__name__}); start "
            "Micro-Manager and enable Tools > Options > Run server on port"
        ) from exc
    yield Scope(core, java_port=port)
