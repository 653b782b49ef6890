"""The three ways to reach a microscope, behind one small :class:`Scope` interface.

* ``--simulate`` (default): the simulated microscope, made by the factory the command line
  hands in (:attr:`ScopeChoice.simulator`: ``app.cli`` passes :func:`simulators.make_core`,
  so that ``acquire`` does not import the simulator);
* ``--mm-config FILE``: a Micro-Manager hardware configuration loaded into a pymmcore-plus
  ``UniMMCore`` (:func:`deepscope.mmcore.load_config`: C++ adapters and Python devices);
* ``--zmq-port N``: a running Micro-Manager with its ZMQ server (pycromanager's Java backend).

Every command that takes a microscope adds the options with :func:`add_scope_options` and opens
it with :func:`open_scope` (acquire, calibrate) or :func:`open_core` (live, gui). The first two
run pycromanager's Python backend through :mod:`acquire.pycro_core`; the third talks to the
Java acquisition engine. The simulator is itself a configuration file, so tests exercise the
``--mm-config`` path; a ZMQ port is only tested for its failure (nothing listening).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from acquire.plan import CameraROI
from deepscope.errors import HardwareError, InputError

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus

log = logging.getLogger("deepscope.acquire")


class SnakeCaseCore(Protocol):
    """The snake_case Micro-Manager core API that :class:`Scope` calls.

    pycromanager's ``Core`` (bridged to Java) has it, and so has
    :class:`~acquire.pycro_core.PycroCoreAdapter` around a pymmcore-plus core. Values come back
    as Java or C++ types (a ``StrVector``, a Java array): :class:`Scope` converts them.
    """

    def get_x_position(self) -> float:
        """X stage position (um), read back."""

    def get_y_position(self) -> float:
        """Y stage position (um), read back."""

    def get_position(self) -> float:
        """Focus drive position (um), read back."""

    def get_pixel_size_um(self) -> float:
        """Pixel size of the active objective (um)."""

    def get_image_bit_depth(self) -> int:
        """Bit depth of the pixel values."""

    def get_image_width(self) -> int:
        """Frame width (px)."""

    def get_image_height(self) -> int:
        """Frame height (px)."""

    def get_image_buffer_size(self) -> int:
        """Bytes of one frame."""

    def get_number_of_components(self) -> int:
        """1 for grey, 4 for RGB."""

    def is_group_defined(self, group: str) -> bool:
        """Whether config group *group* exists."""

    def get_available_configs(self, group: str) -> Any:
        """Presets of config group *group*."""

    def set_config(self, group: str, preset: str) -> None:
        """Apply a preset."""

    def wait_for_config(self, group: str, preset: str) -> None:
        """Wait until a preset is applied."""

    def clear_roi(self) -> None:
        """Full-sensor ROI."""

    def set_roi(self, x: int, y: int, width: int, height: int) -> None:
        """Camera ROI."""

    def get_roi(self) -> Any:
        """Camera ROI ``(x, y, width, height)``."""

    def set_exposure(self, exposure_ms: float) -> None:
        """Camera exposure (ms)."""

    def set_xy_position(self, x_um: float, y_um: float) -> None:
        """Start an XY move."""

    def set_position(self, z_um: float) -> None:
        """Start a focus move."""

    def get_xy_stage_device(self) -> str:
        """Label of the XY stage."""

    def get_focus_device(self) -> str:
        """Label of the focus drive."""

    def wait_for_device(self, label: str) -> None:
        """Wait until a device stops moving."""

    def snap_image(self) -> None:
        """Expose one frame."""

    def get_image(self) -> Any:
        """Pixels of the last snapped frame."""


class Scope:
    """Direct device access (snake_case Micro-Manager core API) plus acquisition construction.

    Parameters
    ----------
    core
        A core with the snake_case Micro-Manager API: :class:`acquire.pycro_core.PycroCoreAdapter`
        around a pymmcore-plus core, or pycromanager's ``Core`` bridged to Java.
    java_port
        The ZMQ port when *core* is the Java bridge, else None (Python backend).
    local
        The pymmcore-plus core in this process behind *core* (None through the Java bridge).
    """

    def __init__(
        self, core: SnakeCaseCore, java_port: int | None = None, local: CMMCorePlus | None = None
    ) -> None:
        self.core = core
        self.java_port = java_port
        self.local = local

    # -- state -----------------------------------------------------------------------------
    def position(self) -> tuple[float, float, float]:
        """Stage position ``(x, y, z)`` in um, read back from the stages."""
        c = self.core
        return float(c.get_x_position()), float(c.get_y_position()), float(c.get_position())

    def pixel_size_um(self) -> float:
        """Pixel size of the objective in the light path."""
        return float(self.core.get_pixel_size_um())

    def bit_depth(self) -> int:
        """Bit depth of the camera's pixel values (12 for 12-bit data in uint16)."""
        return int(self.core.get_image_bit_depth())

    def image_size(self) -> tuple[int, int]:
        """Frame ``(width, height)`` in pixels (after ROI and binning)."""
        return int(self.core.get_image_width()), int(self.core.get_image_height())

    def frame_bytes(self) -> int:
        """Bytes one frame takes when stored; an RGB pixel is kept without its fourth component."""
        size = int(self.core.get_image_buffer_size())
        return size * 3 // 4 if int(self.core.get_number_of_components()) == 4 else size

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
        self.core.clear_roi()
        x, y = roi_corner(roi, *self.image_size())
        self.core.set_roi(x, y, roi.width, roi.height)

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
        """A pycromanager ``Acquisition`` on this scope with the given hooks and processor.

        Raises :class:`~deepscope.errors.InputError` for ``directory=`` (NDTiff) with an RGB
        camera, which pycromanager cannot store.
        """
        from pycromanager import Acquisition

        if hooks.get("directory") and int(self.core.get_number_of_components()) > 1:
            # pycromanager's NDTiff storage raises on RGB frames, then the acquisition hangs
            raise InputError(
                "pycromanager's NDTiff storage (directory=...) cannot store this camera's RGB "
                "frames; take them with image_process_fn or leave directory unset (RAM)"
            )
        if self.java_port is not None:
            return Acquisition(port=self.java_port, show_display=False, **hooks)
        return Acquisition(**hooks)


@contextlib.contextmanager
def python_scope(core: CMMCorePlus) -> Iterator[Scope]:
    """A :class:`Scope` on a pymmcore-plus core, with pycromanager's Python engine installed."""
    from acquire.pycro_core import pycro_engine

    with contextlib.ExitStack() as stack:
        try:
            adapter = stack.enter_context(pycro_engine(core))
        except RuntimeError as exc:  # another acquisition or live view holds the engine
            raise HardwareError(f"cannot start pycromanager's engine: {exc}") from exc
        yield Scope(adapter, local=core)


ROI_HELP = "camera ROI in pixels: X Y W H, or N for a centred N x N square (0: full sensor)"


def add_roi_option(p: argparse.ArgumentParser, default: Sequence[int] | None = None) -> None:
    """Add ``--roi X Y W H`` / ``--roi N`` (centred square), the one ROI form of every command."""
    shown = f" (default: {' '.join(map(str, default))})" if default else ""
    p.add_argument(
        "--roi", type=int, nargs="+", metavar="PX", default=default, help=ROI_HELP + shown
    )


def roi_from_option(values: Sequence[int] | None) -> CameraROI | None:
    """The :class:`~acquire.plan.CameraROI` of a ``--roi`` value; None for the full sensor.

    Raises :class:`~deepscope.errors.InputError` unless it is ``N`` or ``X Y W H`` with
    non-negative corners and positive sizes.
    """
    if values is None:
        return None
    given = " ".join(map(str, values))
    if len(values) == 1:
        if values[0] < 0:
            raise InputError(f"--roi {given}: the square side must be >= 0 (0: full sensor)")
        return None if values[0] == 0 else CameraROI(width=values[0], height=values[0])
    if len(values) != 4:
        raise InputError(f"--roi {given}: expected X Y W H or one side N ({len(values)} numbers)")
    x, y, w, h = values
    if x < 0 or y < 0 or w < 1 or h < 1:
        raise InputError(f"--roi {given}: need X, Y >= 0 and W, H >= 1")
    return CameraROI(x=x, y=y, width=w, height=h)


def roi_corner(
    roi: CameraROI, width: int, height: int, name: str = "camera ROI"
) -> tuple[int, int]:
    """Top-left corner of *roi* on a *width* x *height* sensor: centred unless *roi* gives it.

    Raises :class:`~deepscope.errors.InputError`, naming the ROI as *name* (where it was
    given), when it is larger than the sensor or does not lie on it.
    """
    if roi.width > width or roi.height > height:
        raise InputError(
            f"{name} {roi.width}x{roi.height} is larger than the {width}x{height} sensor"
        )
    x = (width - roi.width) // 2 if roi.x is None else roi.x
    y = (height - roi.height) // 2 if roi.y is None else roi.y
    if x < 0 or y < 0 or x + roi.width > width or y + roi.height > height:
        raise InputError(
            f"{name} {x} {y} {roi.width} {roi.height} is outside the {width}x{height} sensor"
        )
    return x, y


def set_camera_roi(core: CMMCorePlus, roi: CameraROI | None) -> None:
    """Set a pymmcore core's camera ROI (centred on the sensor when *roi* has no corner).

    Raises :class:`~deepscope.errors.InputError` naming the ROI and why the camera refused it.
    """
    if roi is None:
        return
    core.clearROI()
    x, y = roi_corner(roi, int(core.getImageWidth()), int(core.getImageHeight()), "--roi")
    try:
        core.setROI(x, y, roi.width, roi.height)
    except (RuntimeError, ValueError) as exc:
        raise InputError(f"--roi {x} {y} {roi.width} {roi.height} is not valid: {exc}") from exc


@dataclass(frozen=True)
class ScopeChoice:
    """Which microscope a command opens: the simulator, a ``.cfg`` file or a ZMQ port.

    Parameters
    ----------
    mm_config
        Micro-Manager hardware configuration to load (C++ adapters and ``#py`` Python devices).
    zmq_port
        Port of a running Micro-Manager's ZMQ server.
    seed, specimen
        Settings of the simulator (used when neither of the above is given).
    simulator
        Makes the simulated microscope's core from ``seed=`` and ``specimen=`` (e.g.
        :func:`simulators.make_core`); None where no simulator is at hand.
    """

    mm_config: Path | None = None
    zmq_port: int | None = None
    seed: int = 0
    specimen: str = "tissue"
    simulator: Callable[..., CMMCorePlus] | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace, specimen: str = "tissue") -> ScopeChoice:
        """The choice made with the options of :func:`add_scope_options`.

        The simulator is ``args.simulator``, which the ``deepscope`` parser sets.
        """
        mm_config = getattr(args, "mm_config", None)
        return cls(
            mm_config=Path(mm_config) if mm_config is not None else None,
            zmq_port=getattr(args, "zmq_port", None),
            seed=int(getattr(args, "seed", 0)),
            specimen=specimen,
            simulator=getattr(args, "simulator", None),
        )

    def describe(self) -> str:
        """Short description for logs and ``dataset.json``."""
        if self.zmq_port is not None:
            return f"Micro-Manager on ZMQ port {self.zmq_port}"
        if self.mm_config is not None:
            return f"Micro-Manager configuration {self.mm_config}"
        return f"simulator (seed {self.seed}, {self.specimen})"


def add_scope_options(p: argparse.ArgumentParser) -> None:
    """Add ``--simulate`` (default) | ``--mm-config FILE`` | ``--zmq-port N`` and ``--seed``."""
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--simulate", action="store_true", help="use the simulated microscope (the default)"
    )
    g.add_argument(
        "--mm-config",
        type=Path,
        metavar="FILE",
        help="Micro-Manager hardware configuration (C++ adapters and #py Python devices)",
    )
    g.add_argument(
        "--zmq-port", type=int, metavar="N", help="running Micro-Manager's ZMQ server port"
    )
    p.add_argument("--seed", type=int, default=0, help="simulated microscope seed (default 0)")


#: Core roles a command needs, with the configuration line that sets each.
ROLES = {"camera": "Camera", "XY stage": "XYStage", "focus drive": "Focus"}  # getXDevice()


def open_core(choice: ScopeChoice, needs: Sequence[str] = ("camera",)) -> CMMCorePlus:
    """A pymmcore-plus core in this process: the simulator or a loaded ``.cfg``.

    Raises :class:`~deepscope.errors.HardwareError` (one line: file, line, device) when the
    configuration does not load or lacks a device of *needs* (keys of :data:`ROLES`), and for
    ``--zmq-port``, whose camera lives in Micro-Manager's process (live mode and the GUI need
    it here).
    """
    if choice.zmq_port is not None:
        _check_zmq_port(choice.zmq_port)
        raise HardwareError(
            f"Micro-Manager answers on port {choice.zmq_port}, but live mode and the GUI run "
            "the camera in this process; load the same hardware with --mm-config FILE "
            "(after closing Micro-Manager), or use 'deepscope acquire --zmq-port'"
        )
    if choice.mm_config is not None:
        from deepscope.mmcore import load_config

        core = load_config(choice.mm_config)
        for role in needs:
            if not getattr(core, f"get{ROLES[role]}Device")():
                raise HardwareError(
                    f"Micro-Manager configuration {choice.mm_config} sets no {role} "
                    f"(a 'Property,Core,{ROLES[role]},LABEL' line)"
                )
        return core
    if choice.simulator is None:
        raise InputError("no microscope given: pass --mm-config FILE (or --zmq-port N)")
    return choice.simulator(seed=choice.seed, specimen=choice.specimen)


@contextlib.contextmanager
def open_scope(choice: ScopeChoice) -> Iterator[Scope]:
    """A :class:`Scope` on the chosen microscope for acquisition and calibration."""
    if choice.zmq_port is not None:
        with java_scope(choice.zmq_port) as scope:
            yield scope
        return
    with python_scope(open_core(choice, needs=tuple(ROLES))) as scope:
        yield scope


def _check_zmq_port(port: int) -> None:
    """Raise one line unless something listens on localhost:*port*.

    Checked before pyjavaz is used: its socket thread prints a traceback when nothing answers.
    """
    if not 1 <= port <= 65535:
        raise InputError(f"--zmq-port {port} is not a TCP port (1..65535)")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
    except OSError as exc:
        raise HardwareError(
            f"no Micro-Manager ZMQ server on port {port} ({exc.strerror or exc}); start "
            "Micro-Manager and enable Tools > Options > Run server on port"
        ) from exc


@contextlib.contextmanager
def java_scope(port: int) -> Iterator[Scope]:
    """A :class:`Scope` on a running Micro-Manager reached through its ZMQ server on *port*."""
    _check_zmq_port(port)
    from pycromanager import Core

    try:
        core = Core(port=port)
    except Exception as exc:
        raise HardwareError(
            f"no Micro-Manager ZMQ server on port {port} ({type(exc).__name__}); start "
            "Micro-Manager and enable Tools > Options > Run server on port"
        ) from exc
    yield Scope(core, java_port=port)
