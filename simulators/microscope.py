"""The virtual microscope behind the simulated devices, and its ground truth.

Geometry convention (all lengths in um, slide coordinates):

* image column increases with slide x, image row with slide y;
* the frame centre is the TRUE stage position plus the objective's optical-axis offset;
* the frame is rotated by the objective's rotation (counter-clockwise from slide x towards
  slide y): ``slide = centre + R(theta) @ ((col_s - (W_b - 1) / 2), (row_s - (H_b - 1) / 2)) * p``
  with ``(row_s, col_s)`` the pixel on the binned sensor (ROI offset added), ``W_b, H_b`` the
  binned sensor size and ``p = camera_pixel * binning / (M * (1 + magnification_error))``;
* the focal plane is at specimen height ``z_true - parfocal_z_um`` (specimen mid-plane at 0).

The stages are open loop: they report their commanded position; :class:`SnapTruth` holds where
they really went (repeatability error and backlash, which depends on the approach direction).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from deepscope.errors import InputError
from simulators.faults import FaultConfig, FaultInjector
from simulators.optics import OBJECTIVES, ObjectiveSpec
from simulators.render import TileCache, optical_image
from simulators.specimen import Specimen

log = logging.getLogger("deepscope.simulators")

CAMERA_PIXEL_UM = 7.4


def nominal_pixel_size_um(objective: str, binning: int = 1) -> float:
    """Pixel size of the simulated camera behind *objective*, as its configuration states it.

    Camera pixel over nominal magnification, without float noise (0.185 and 0.074 um).
    """
    return round(CAMERA_PIXEL_UM * binning / OBJECTIVES[objective].magnification, 9)


BIT_DEPTH = 12
#: Stage travel limits (um): a 100 x 70 mm slide stage and 2 mm of focus travel.
XY_LIMITS_UM = ((-50_000.0, 50_000.0), (-35_000.0, 35_000.0))
Z_LIMITS_UM = (-1_000.0, 1_000.0)
SNAP_LOG_LIMIT = 100_000


class ObjectiveTruth(BaseModel):
    """How one objective really sits on the turret (what calibration must find)."""

    model_config = ConfigDict(frozen=True)

    offset_x_um: float = 0.0
    offset_y_um: float = 0.0
    rotation_deg: float = 0.0
    magnification_error: float = Field(default=0.0, description="relative, e.g. 0.005 = +0.5 %")
    parfocal_z_um: float = Field(
        default=0.0, description="stage z at which the mid-section is in focus"
    )


class StageTruth(BaseModel):
    """Error model of one stage: Gaussian repeatability and direction-dependent backlash."""

    model_config = ConfigDict(frozen=True)

    repeatability_sigma_um: float = 0.0
    backlash_um: float = 0.0


class SnapTruth(BaseModel):
    """Ground truth of one frame the camera produced."""

    model_config = ConfigDict(frozen=True)

    index: int
    objective: str
    commanded_x_um: float
    commanded_y_um: float
    commanded_z_um: float
    true_x_um: float
    true_y_um: float
    true_z_um: float
    roi: tuple[int, int, int, int] = Field(description="x, y, width, height in binned pixels")
    binning: int
    sensor: tuple[int, int] = Field(description="binned sensor (height, width)")
    pixel_size_um: float = Field(description="true pixel size at the specimen")
    rotation_deg: float
    offset_x_um: float
    offset_y_um: float
    exposure_ms: float

    def affine(self) -> np.ndarray:
        """2x3 matrix mapping frame ``(col, row, 1)`` to slide ``(x_um, y_um)``."""
        t = np.deg2rad(self.rotation_deg)
        rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]) * self.pixel_size_um
        h, w = self.sensor
        rx, ry = self.roi[0] - (w - 1) / 2, self.roi[1] - (h - 1) / 2
        centre = np.array([self.true_x_um + self.offset_x_um, self.true_y_um + self.offset_y_um])
        return np.hstack([rot, (centre + rot @ np.array([rx, ry]))[:, None]])


def pixel_to_slide(
    snap: SnapTruth, rows: np.ndarray | float, cols: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray]:
    """Slide coordinates ``(x_um, y_um)`` of frame pixels ``(rows, cols)`` of *snap* (broadcast)."""
    a = snap.affine()
    r, c = np.asarray(rows, np.float64), np.asarray(cols, np.float64)
    return a[0, 0] * c + a[0, 1] * r + a[0, 2], a[1, 0] * c + a[1, 1] * r + a[1, 2]


class CameraModel(BaseModel):
    """Sensor response: counts = offset + gain^-1 * electrons, 12-bit, with vignetting."""

    model_config = ConfigDict(frozen=True)

    counts_per_ms: float = Field(default=300.0, description="bright glass, centre, per ms")
    gain_e_per_count: float = 2.0
    read_noise_e: float = 4.0
    offset_counts: float = 100.0
    vignetting: float = Field(default=0.15, description="relative fall-off at the sensor corner")
    noise: bool = Field(default=True, description="False: expected counts, for tests of optics")


def _draw_truth(rng: np.random.Generator, imperfections: bool) -> dict[str, ObjectiveTruth]:
    out = {}
    for name in OBJECTIVES:
        draw = (
            dict(
                offset_x_um=rng.uniform(-4, 4),
                offset_y_um=rng.uniform(-4, 4),
                rotation_deg=rng.uniform(-0.8, 0.8),
                magnification_error=float(np.clip(rng.normal(0, 0.005), -0.008, 0.008)),
                parfocal_z_um=rng.uniform(-2, 2),
            )
            if imperfections
            else {}
        )
        out[name] = ObjectiveTruth(**draw)
    return out


class VirtualMicroscope:
    """State, physics and ground truth of the simulated microscope.

    Devices only forward to this object. Tests read ``objectives``, ``xy_stage``, ``z_stage`` and
    ``snap_log`` to measure errors against the truth. ``snap_log`` keeps the newest
    ``SNAP_LOG_LIMIT`` frames (live view would otherwise grow it without bound); each entry's
    ``index`` counts every frame since the core was made.
    """

    def __init__(
        self,
        specimen: Specimen,
        *,
        seed: int = 0,
        imperfections: bool = True,
        faults: FaultConfig | None = None,
        sensor: tuple[int, int] = (2048, 2048),
        camera: CameraModel | None = None,
        tile_cache_mb: int = 768,
    ) -> None:
        if len(sensor) != 2 or min(sensor) < 16 or max(sensor) > 8192:
            raise InputError(f"sensor {sensor} is not (height, width) between 16 and 8192 pixels")
        self.specimen = specimen
        self.seed = seed
        self.sensor = (int(sensor[0]), int(sensor[1]))
        self.camera = camera or CameraModel()
        rng = np.random.default_rng([seed, 1])
        self.objectives: dict[str, ObjectiveTruth] = _draw_truth(rng, imperfections)
        self.xy_stage = StageTruth(
            repeatability_sigma_um=0.3 if imperfections else 0.0,
            backlash_um=1.5 if imperfections else 0.0,
        )
        self.z_stage = StageTruth(
            repeatability_sigma_um=0.02 if imperfections else 0.0,
            backlash_um=0.1 if imperfections else 0.0,
        )
        self.faults = FaultInjector(faults)
        self.snap_log: list[SnapTruth] = []
        self._snaps = 0
        self.objective = "40x"
        self.shutter_open = False
        #: mirrors the core's auto-shutter: the lamp opens around every exposure
        self.auto_shutter = True
        self._cmd = [0.0, 0.0, 0.0]
        self._true = [0.0, 0.0, 0.0]
        self._dir = [1.0, 1.0, 1.0]
        self._stage_rng = np.random.default_rng([seed, 2])
        self._noise_rng = np.random.default_rng([seed, 3])
        self._tiles = TileCache(specimen, tile_cache_mb * 2**20)
        self._lock = threading.RLock()
        self._clean: tuple[tuple[object, ...], np.ndarray, np.ndarray] | None = None
        self._bank = np.empty(0, np.float32)
        self._bank_next = 0

    # -- objective ------------------------------------------------------------------------
    def spec(self, name: str | None = None) -> ObjectiveSpec:
        """Nominal data of objective *name* (default: the one in the light path)."""
        name = self.objective if name is None else name
        if name not in OBJECTIVES:
            raise InputError(
                f"objective {name!r} is unknown; expected one of: {', '.join(OBJECTIVES)}"
            )
        return OBJECTIVES[name]

    def set_objective(self, name: str) -> None:
        """Swing objective *name* into the light path."""
        self.spec(name)
        self.objective = name

    def nominal_pixel_size_um(self, name: str, binning: int = 1) -> float:
        """Pixel size the microscope is calibrated for (no magnification error)."""
        return nominal_pixel_size_um(self.spec(name).name, binning)

    # -- stages ---------------------------------------------------------------------------
    def _move(self, axes: Sequence[int], targets: Sequence[float], truth: StageTruth) -> None:
        for ax, target in zip(axes, targets, strict=True):
            if target != self._cmd[ax]:
                self._dir[ax] = 1.0 if target > self._cmd[ax] else -1.0
            self._cmd[ax] = float(target)
            err = (
                self._stage_rng.normal(0.0, truth.repeatability_sigma_um)
                if truth.repeatability_sigma_um
                else 0.0
            )
            self._true[ax] = float(target) - self._dir[ax] * truth.backlash_um / 2 + err

    def move_xy(self, x_um: float, y_um: float, label: str = "XY") -> None:
        """Command the XY stage; raises InputError beyond travel, HardwareError on a fault."""
        for name, v, (lo, hi) in (("x", x_um, XY_LIMITS_UM[0]), ("y", y_um, XY_LIMITS_UM[1])):
            if not np.isfinite(v) or not lo <= v <= hi:
                raise InputError(
                    f"stage {name} = {v} um is beyond the travel limits [{lo:g}, {hi:g}] um"
                )
        with self._lock:
            self.faults.before_move(label)
            self._move((0, 1), (x_um, y_um), self.xy_stage)

    def move_z(self, z_um: float, label: str = "Z") -> None:
        """Command the focus drive; raises InputError beyond travel, HardwareError on a fault."""
        lo, hi = Z_LIMITS_UM
        if not np.isfinite(z_um) or not lo <= z_um <= hi:
            raise InputError(f"stage z = {z_um} um is beyond the travel limits [{lo:g}, {hi:g}] um")
        with self._lock:
            self.faults.before_move(label)
            self._move((2,), (z_um,), self.z_stage)

    @property
    def commanded_xyz(self) -> tuple[float, float, float]:
        """Where the stages were told to go (what they report)."""
        return (self._cmd[0], self._cmd[1], self._cmd[2])

    @property
    def true_xyz(self) -> tuple[float, float, float]:
        """Where the stages really are."""
        return (self._true[0], self._true[1], self._true[2])

    # -- camera ---------------------------------------------------------------------------
    def snap(
        self,
        roi: tuple[int, int, int, int],
        binning: int,
        exposure_ms: float,
        *,
        illuminated: bool = True,
        camera: str = "Camera",
    ) -> tuple[np.ndarray, SnapTruth]:
        """Expose one frame ``(height, width, 3)`` uint16 (12-bit) and log its ground truth."""
        with self._lock:
            self.faults.before_snap(camera)
            truth = self._truth_for(roi, binning, exposure_ms)
            self.snap_log.append(truth)
            self._snaps += 1
            if len(self.snap_log) > SNAP_LOG_LIMIT:
                del self.snap_log[: SNAP_LOG_LIMIT // 2]
            key = (
                truth.objective,
                self._true[:],
                roi,
                binning,
                exposure_ms,
                illuminated,
                self.camera,
            )
            if self._clean is None or self._clean[0] != key:
                mean = self._mean_counts(truth, illuminated)
                self._clean = (key, mean, self._noise_sigma(mean))
            if self.camera.noise:
                frame = self._add_noise(self._clean[1], self._clean[2])
            else:
                frame = np.rint(np.clip(self._clean[1], 0, 2**BIT_DEPTH - 1)).astype(np.uint16)
        return frame, truth

    def _truth_for(
        self, roi: tuple[int, int, int, int], binning: int, exposure_ms: float
    ) -> SnapTruth:
        obj = self.objectives[self.objective]
        spec = self.spec()
        return SnapTruth(
            index=self._snaps,
            objective=self.objective,
            commanded_x_um=self._cmd[0],
            commanded_y_um=self._cmd[1],
            commanded_z_um=self._cmd[2],
            true_x_um=self._true[0],
            true_y_um=self._true[1],
            true_z_um=self._true[2],
            roi=roi,
            binning=binning,
            sensor=(self.sensor[0] // binning, self.sensor[1] // binning),
            pixel_size_um=CAMERA_PIXEL_UM
            * binning
            / (spec.magnification * (1 + obj.magnification_error)),
            rotation_deg=obj.rotation_deg,
            offset_x_um=obj.offset_x_um,
            offset_y_um=obj.offset_y_um,
            exposure_ms=exposure_ms,
        )

    def _mean_counts(self, truth: SnapTruth, illuminated: bool) -> np.ndarray:
        cam = self.camera
        _, _, w, h = truth.roi
        if not illuminated:
            return np.full((h, w, 3), cam.offset_counts, np.float32)
        obj = self.objectives[truth.objective]
        spec = self.spec(truth.objective)
        focus = truth.true_z_um - obj.parfocal_z_um
        image = optical_image(
            self._tiles,
            spec,
            self.nominal_pixel_size_um(truth.objective),
            truth.affine(),
            (h, w),
            focus,
        )
        # vignetting over the whole sensor (the ROI keeps its place on the sensor)
        sh, sw = truth.sensor
        ys = (np.arange(truth.roi[1], truth.roi[1] + h, dtype=np.float32) - (sh - 1) / 2) / (sh / 2)
        xs = (np.arange(truth.roi[0], truth.roi[0] + w, dtype=np.float32) - (sw - 1) / 2) / (sw / 2)
        falloff = cam.vignetting + spec.illumination_falloff
        fall = 1.0 - falloff * (xs[None, :] ** 2 + ys[:, None] ** 2) / 2
        scale = np.float32(cam.counts_per_ms * truth.exposure_ms) * fall.astype(np.float32)
        image *= scale[..., None] * np.asarray(spec.transmission_rgb, np.float32)
        image += np.float32(cam.offset_counts)
        return image

    def _noise_sigma(self, mean: np.ndarray) -> np.ndarray:
        """Per-pixel noise (counts): shot noise of the signal plus read noise."""
        cam = self.camera
        signal = np.maximum(mean - np.float32(cam.offset_counts), 0)
        read = np.float32((cam.read_noise_e / cam.gain_e_per_count) ** 2)
        return np.sqrt(signal / np.float32(cam.gain_e_per_count) + read)

    def _standard_normal(self, n: int) -> np.ndarray:
        """*n* standard-normal samples from a bank of 1.5 n that is one-sixteenth renewed per call.

        Each frame reads the bank at a random offset; a rotating sixteenth is redrawn every call, so
        noise is fresh within a few frames at a fraction of the cost of drawing n samples.
        """
        size = n + n // 2
        if self._bank.size != size:
            self._bank = self._noise_rng.standard_normal(size, dtype=np.float32)
            self._bank_next = 0
        else:
            chunk = size // 16
            a = self._bank_next
            b = min(a + chunk, size)
            self._bank[a:b] = self._noise_rng.standard_normal(b - a, dtype=np.float32)
            self._bank_next = 0 if b == size else b
        start = int(self._noise_rng.integers(0, size - n + 1))
        return self._bank[start : start + n]

    def _add_noise(self, mean: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        flat = (mean.shape[0], -1)  # 2-D single-channel views for cv2
        noise = self._standard_normal(mean.size).reshape(flat)
        out = cv2.multiply(sigma.reshape(flat), noise)
        cv2.add(out, mean.reshape(flat), dst=out)
        # round half up and saturate to the 12-bit range
        np.add(out, np.float32(0.5), out=out)
        np.clip(out, 0.0, 2**BIT_DEPTH - 0.5, out=out)
        out = out.reshape(mean.shape)
        return out.astype(np.uint16)
