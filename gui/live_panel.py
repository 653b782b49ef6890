"""Live panel: raw and enhanced frames side by side, read-outs and scope controls.

The raw view draws the newest camera frame at display rate (whatever the network's rate); the
enhanced view draws the newest enhanced frame, reduced on the device to what the view shows,
with its own frame rate and age. Both share one geometry (raw pixels) and zoom together.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING

import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, QTimer
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from deepscope.errors import DeepscopeError
from deepscope.framemeta import FrameMeta
from gui.image_pane import ImagePane
from gui.live_controller import OBJECTIVE_GROUP, LiveController
from gui.measure import slide_um
from gui.profile_tool import ProfileTool
from gui.record_panel import RecordBox
from gui.settings import MODEL_DIR, read_path
from model.inference.view import ViewRequest

if TYPE_CHECKING:
    from pyqtgraph.GraphicsScene.mouseEvents import MouseClickEvent

    from gui.recording import RecordStatus
    from live.frames import LiveFrame, LiveStats

log = logging.getLogger("deepscope.gui")


#: How often the histograms follow the images (a histogram per frame costs more than the frame).
HISTOGRAM_INTERVAL_MS = 500


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _pixel_size(frame: LiveFrame) -> float:
    """The raw frame's pixel size in um (NaN when the core reported none)."""
    return float(frame.meta.get("pixel_size_um") or math.nan)


def rate(times: deque[float], window_s: float) -> float | None:
    """Events per second over the last *window_s* of *times* (``time.perf_counter`` values)."""
    if not times:
        return None
    now = time.perf_counter()
    while times and now - times[0] > window_s:
        times.popleft()
    if len(times) < 2:
        return None
    return (len(times) - 1) / max(now - times[0], 1e-6)


class LivePanel(QWidget):
    """The view of :class:`~gui.live_controller.LiveController`.

    Arrow keys move the stage by the step size (Up: -y, Right: +x), Page Up/Down move the
    focus by the focus step; a double click on the raw view centres the stage on that point.
    "Profile" draws a line over both views and plots the intensity along it.

    Parameters
    ----------
    controller
        The live controller this panel shows and drives.
    max_display_px
        Upper bound of the drawn pixels per side of each view (the view's size on screen is
        used when smaller).
    save_dir
        Folder for "Save pair"; asked for on first use when None.
    """

    def __init__(
        self,
        controller: LiveController,
        *,
        max_display_px: int = 1024,
        save_dir: Path | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.controller = controller
        self.max_display_px = max_display_px
        self.save_dir = save_dir
        self.frames_shown = 0  # raw frames drawn
        self.enhanced_shown = 0  # enhanced frames drawn

        self.graphics = pg.GraphicsLayoutWidget()
        self.raw_pane = ImagePane(self.graphics.ci, 0, 0, "raw")
        self.enhanced_pane = ImagePane(self.graphics.ci, 0, 2, "enhanced")
        self.enhanced_pane.view.setXLink(self.raw_pane.view)
        self.enhanced_pane.view.setYLink(self.raw_pane.view)
        # after a pan/zoom, redraw the held frame at the new screen resolution (live mode
        # redraws with the next frame anyway) and tell the device what the view now shows
        self._redraw_timer = QTimer(self)
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.setInterval(40)
        self._redraw_timer.timeout.connect(self._redraw)
        self.raw_pane.view.sigRangeChanged.connect(self._on_range_changed)
        self.enhanced_pane.view.sigResized.connect(self._send_view)
        self.graphics.scene().sigMouseMoved.connect(self.show_cursor)
        self.graphics.scene().sigMouseClicked.connect(self._on_click)
        self._histogram_timer = QTimer(self)
        self._histogram_timer.setInterval(HISTOGRAM_INTERVAL_MS)
        self._histogram_timer.timeout.connect(self._refresh_histograms)
        self._histogram_timer.start()

        layout = QHBoxLayout(self)
        views = QVBoxLayout()
        views.addWidget(self.graphics, stretch=3)
        self.profile_tool = ProfileTool(self.raw_pane, self.enhanced_pane)
        views.addWidget(self.profile_tool.plot, stretch=1)
        layout.addLayout(views, stretch=1)
        side_widget = QWidget()
        side = QVBoxLayout(side_widget)
        side.setContentsMargins(0, 0, 0, 0)
        # the controls scroll on a short screen; a fixed width keeps read-outs that change
        # length from resizing the views
        side_scroll = QScrollArea()
        side_scroll.setWidget(side_widget)
        side_scroll.setWidgetResizable(True)
        side_scroll.setFrameShape(QFrame.Shape.NoFrame)
        side_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        side_scroll.setFixedWidth(396)
        side_widget.setFixedWidth(380)
        layout.addWidget(side_scroll)
        side.addWidget(self._live_box())
        self.record_box = RecordBox(controller)
        side.addWidget(self.record_box)
        side.addWidget(self._model_box())
        side.addWidget(self._camera_box())
        side.addWidget(self._stage_box())
        side.addWidget(self._readout_box())
        side.addStretch(1)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        side.addWidget(self.status)
        # what lies under the cursor; the window shows it in its status bar, as image viewers do
        self.cursor_label = QLabel("")
        self.cursor_label.setMinimumWidth(480)  # a long status message gives way, not this
        self._shortcuts()

        controller.raw_ready.connect(self.show_raw)
        controller.enhanced_ready.connect(self.show_enhanced)
        controller.paused_changed.connect(self.show_paused)
        controller.stats_changed.connect(self.show_stats)
        controller.stage_changed.connect(self.show_stage)
        controller.running_changed.connect(self._on_running)
        controller.model_changed.connect(self._on_model)
        controller.failed.connect(self._warn)
        controller.record_status.connect(self._on_record_status)
        self._on_model(controller.model_dir)
        self.show_stage(controller.read_stage())

    # -- building ----------------------------------------------------------------------------
    def _live_box(self) -> QGroupBox:
        box = QGroupBox("Live and display")
        rows = QVBoxLayout(box)
        row = QHBoxLayout()
        rows.addLayout(row)
        self.live_button = QPushButton("Start live")
        self.live_button.setCheckable(True)
        self.live_button.clicked.connect(self.toggle_live)
        self.snap_button = QPushButton("Snap")
        self.snap_button.clicked.connect(self.controller.snap)
        self.save_button = QPushButton("Save pair")
        self.save_button.clicked.connect(self.save_pair)
        self.profile_button = QPushButton("Profile")
        self.profile_button.setCheckable(True)
        self.profile_button.setToolTip(
            "a line on the images (drag its ends); intensity per channel along it, in um"
        )
        self.profile_button.toggled.connect(lambda on: self.profile_tool.set_active(on))
        for b in (self.live_button, self.snap_button, self.save_button, self.profile_button):
            row.addWidget(b)
        rows.addLayout(self._display_row())
        return box

    def _model_box(self) -> QGroupBox:
        box = QGroupBox("Model")
        col = QVBoxLayout(box)
        self.model_label = QLabel()
        self.model_label.setWordWrap(True)
        self.model_button = QPushButton("Choose model...")
        self.model_button.clicked.connect(self.choose_model)
        self.self_feed_box = QCheckBox("self-feeding")
        self.self_feed_box.toggled.connect(self.controller.set_self_feed)
        col.addWidget(self.model_label)
        row = QHBoxLayout()
        row.addWidget(self.model_button)
        row.addWidget(self.self_feed_box)
        col.addLayout(row)
        return box

    def _camera_box(self) -> QGroupBox:
        box = self.camera_box = QGroupBox("Camera and objective")
        form = QFormLayout(box)
        core = self.controller.core
        self.exposure_spin = QDoubleSpinBox()
        self.exposure_spin.setRange(0.1, 10_000.0)
        self.exposure_spin.setDecimals(1)
        self.exposure_spin.setSuffix(" ms")
        self.exposure_spin.setValue(float(core.getExposure()))
        self.exposure_spin.setKeyboardTracking(False)
        self.exposure_spin.valueChanged.connect(self._set_exposure)
        form.addRow("exposure", self.exposure_spin)
        self.objective_combo = QComboBox()
        if core.isGroupDefined(OBJECTIVE_GROUP):
            self.objective_combo.addItems(list(core.getAvailableConfigs(OBJECTIVE_GROUP)))
            self.objective_combo.setCurrentText(core.getCurrentConfig(OBJECTIVE_GROUP))
        self.objective_combo.textActivated.connect(self._set_objective)
        form.addRow("objective", self.objective_combo)
        return box

    def _stage_box(self) -> QGroupBox:
        box = self.stage_box = QGroupBox("Stage (arrow keys, Page Up/Down)")
        grid = QGridLayout(box)
        self.step_spin = QDoubleSpinBox()
        self.step_spin.setRange(0.1, 10_000.0)
        self.step_spin.setSuffix(" um")
        self.step_spin.setValue(50.0)
        self.focus_spin = QDoubleSpinBox()
        self.focus_spin.setRange(0.01, 100.0)
        self.focus_spin.setSuffix(" um")
        self.focus_spin.setValue(0.5)
        grid.addWidget(QLabel("xy step"), 0, 0)
        grid.addWidget(self.step_spin, 0, 1)
        grid.addWidget(QLabel("focus step"), 0, 2)
        grid.addWidget(self.focus_spin, 0, 3)
        moves = {  # the arrow keys' inverted T
            "up": (1, 1, 0, -1),
            "left": (2, 0, -1, 0),
            "down": (2, 1, 0, 1),
            "right": (2, 2, 1, 0),
        }
        self.move_buttons: dict[str, QPushButton] = {}
        for name, (r, c, sx, sy) in moves.items():
            b = QPushButton(name)
            b.clicked.connect(lambda _=False, sx=sx, sy=sy: self.step_xy(sx, sy))
            grid.addWidget(b, r, c)
            self.move_buttons[name] = b
        for r, (name, sign) in enumerate((("focus +", 1), ("focus -", -1)), start=1):
            b = QPushButton(name)
            b.clicked.connect(lambda _=False, sign=sign: self.step_z(sign))
            grid.addWidget(b, r, 3)
            self.move_buttons[name] = b
        return box

    def _display_row(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.auto_levels_box = QCheckBox("auto levels")
        self.auto_levels_box.setChecked(True)
        self.colour_combo = QComboBox()
        self.colour_combo.addItems(["colour", "grayscale"])
        self.colour_combo.currentTextChanged.connect(lambda _: self._redraw())
        row.addWidget(self.auto_levels_box)
        row.addWidget(self.colour_combo)
        return row

    def _readout_box(self) -> QGroupBox:
        box = QGroupBox("Read-outs")
        form = QFormLayout(box)
        names = (
            "camera / raw view fps",
            "model / enhanced view fps",
            "enhanced age",
            "latency p50/p99",
            "dropped",
            "objective",
            "stage x/y/z",
            "pixel size",
        )
        self.readouts: dict[str, QLabel] = {}
        for name in names:
            label = QLabel("-")
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            form.addRow(name, label)
            self.readouts[name] = label
        return box

    def _shortcuts(self) -> None:
        keys = {
            Qt.Key.Key_Up: lambda: self.step_xy(0, -1),
            Qt.Key.Key_Down: lambda: self.step_xy(0, 1),
            Qt.Key.Key_Left: lambda: self.step_xy(-1, 0),
            Qt.Key.Key_Right: lambda: self.step_xy(1, 0),
            Qt.Key.Key_PageUp: lambda: self.step_z(1),
            Qt.Key.Key_PageDown: lambda: self.step_z(-1),
        }
        for key, slot in keys.items():
            sc = QShortcut(QKeySequence(key), self)
            sc.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            sc.activated.connect(slot)

    # -- controller -> view ------------------------------------------------------------------
    def show_frame(self, frame: LiveFrame) -> None:
        """Draw a frame's raw image and its enhancement (a snapped frame)."""
        self.show_raw(frame)
        self.show_enhanced(frame)

    def show_raw(self, frame: LiveFrame) -> None:
        """Draw the newest camera frame in the raw view."""
        self.raw_pane.show(
            frame.raw,
            pixel_scale=1.0,
            pixel_size_um=_pixel_size(frame),
            max_px=self.max_display_px,
            **self._look(),
        )
        self.frames_shown += 1
        self.profile_tool.update()

    def show_enhanced(self, frame: LiveFrame) -> None:
        """Draw the newest enhanced frame (its device-reduced view, or the full frame)."""
        enhancer = self.controller.enhancer
        if enhancer is None or (frame.view is None and frame.enhanced is None):
            self.enhanced_pane.clear()
            return
        scale = enhancer.scale
        px = _pixel_size(frame) / scale
        look = self._look()
        if frame.view is not None and frame.window is not None:
            full_shape = enhancer.output_shape(*frame.raw.shape[:2])
            self.enhanced_pane.show_reduced(
                frame.view,
                frame.window,
                full_shape,
                pixel_scale=1.0 / scale,
                pixel_size_um=px,
                **look,
            )
        elif frame.enhanced is not None:
            self.enhanced_pane.show(
                frame.enhanced,
                pixel_scale=1.0 / scale,
                pixel_size_um=px,
                max_px=self.max_display_px,
                **look,
            )
        self.enhanced_shown += 1
        self.profile_tool.update()

    def _on_click(self, event: MouseClickEvent) -> None:
        """A double click on the raw view moves the stage so that the point becomes the centre."""
        if not event.double() or event.button() != Qt.MouseButton.LeftButton:
            return
        pos = event.scenePos()
        if self.controller.current is None or not self.stage_box.isEnabled():
            return
        if not self.raw_pane.view.sceneBoundingRect().contains(pos):
            return
        p = self.raw_pane.view.mapSceneToView(pos)
        event.accept()
        try:
            dx, dy = self.controller.centre_on(p.x(), p.y())
        except (DeepscopeError, RuntimeError) as exc:
            self._warn(f"cannot move the stage: {exc}")
            return
        self.status.setText(f"stage moved by {dx:+.1f}, {dy:+.1f} um to the clicked point")

    def show_paused(self, reason: str | None) -> None:
        """Say why enhancement is paused (e.g. another objective), or that it runs again."""
        if reason is None:
            self.enhanced_pane.info.setText("", color="#e0e0e0")
            self.status.setText("enhancement resumed")
            return
        self.enhanced_pane.clear()
        self.enhanced_pane.info.setText(f"enhancement paused:\n{reason}", color="#ff6040")
        self.status.setText(f"enhancement paused: {reason}")

    def _refresh_histograms(self) -> None:
        self.raw_pane.refresh_histogram()
        self.enhanced_pane.refresh_histogram()

    def show_cursor(self, scene_pos: QPointF) -> None:
        """Show the slide position and the pixel value under *scene_pos* (a mouse move)."""
        panes = (
            ("raw", self.raw_pane, self.controller.current),
            ("enhanced", self.enhanced_pane, self.controller.enhanced),
        )
        hit = [
            (name, pane, frame)
            for name, pane, frame in panes
            if frame is not None and pane.view.sceneBoundingRect().contains(scene_pos)
        ]
        if not hit:
            return
        name, pane, frame = hit[0]
        p = pane.view.mapSceneToView(scene_pos)
        slide = slide_um(p.x(), p.y(), frame.raw.shape, frame.meta)
        value = pane.value_at(p.x(), p.y())
        where = "" if slide is None else f"x {slide[0]:.2f}  y {slide[1]:.2f} um"
        self.cursor_label.setText(f"{name}  {where}  {'' if value is None else value.text()}")

    def _look(self) -> dict[str, bool]:
        return {
            "gray": self.colour_combo.currentText() == "grayscale",
            "auto": self.auto_levels_box.isChecked(),
        }

    def view_request(self) -> ViewRequest:
        """What the enhanced view shows now: its rectangle in raw pixels and its screen size."""
        r = self.enhanced_pane.view.viewRect()
        screen = self.enhanced_pane.screen_px(self.max_display_px)
        return ViewRequest(r.x(), r.y(), r.width(), r.height(), screen)

    def _send_view(self) -> None:
        if self.raw_pane.shape is not None:  # before the first frame the view has no geometry
            self.controller.set_view(self.view_request())

    def _redraw(self) -> None:
        if self.controller.current is not None:
            self.show_raw(self.controller.current)
        if self.controller.enhanced is not None:
            self.show_enhanced(self.controller.enhanced)

    def _on_range_changed(self) -> None:
        self._send_view()
        if not self.controller.running:
            self._redraw_timer.start()

    def show_stats(self, stats: LiveStats) -> None:
        """Update the throughput and latency read-outs."""
        r = self.readouts
        raw_fps = _fmt(rate(self.raw_pane.draws, 1.0), ".1f")
        r["camera / raw view fps"].setText(f"{_fmt(stats.camera_fps, '.1f')} / {raw_fps}")
        objective = self.readouts["objective"].text()
        self.raw_pane.info.setText(f"{objective if objective != '-' else 'raw'}: {raw_fps} fps")
        enhanced_fps = rate(self.enhanced_pane.draws, 30.0)  # networks on a CPU are slow
        model_fps = _fmt(stats.inference_fps, ".1f")
        r["model / enhanced view fps"].setText(f"{model_fps} / {_fmt(enhanced_fps, '.1f')}")
        done = self.controller.enhanced
        age = None if done is None else 1e3 * (time.perf_counter() - done.arrival_s)
        r["enhanced age"].setText(_fmt(age, ".0f") + " ms")
        if stats.paused is None:
            self.enhanced_pane.info.setText(
                f"{_fmt(enhanced_fps, '.1f')} fps, age {_fmt(age, '.0f')} ms", color="#e0e0e0"
            )
        p50, p99 = _fmt(stats.latency_p50_ms, ".0f"), _fmt(stats.latency_p99_ms, ".0f")
        r["latency p50/p99"].setText(f"{p50} / {p99} ms")
        r["dropped"].setText(f"{stats.dropped} of {stats.frames_in}")

    def show_stage(self, stage: FrameMeta) -> None:
        """Update the objective, position and pixel-size read-outs."""
        r = self.readouts
        objective = stage["objective"]
        r["objective"].setText(objective or "-")
        x, y, z = stage["x_um"], stage["y_um"], stage["z_um"]
        r["stage x/y/z"].setText(f"{x:.1f} / {y:.1f} / {z:.2f} um")
        r["pixel size"].setText(f"{stage['pixel_size_um']:.4f} um")
        if objective and self.objective_combo.currentText() != objective:
            self.objective_combo.setCurrentText(objective)

    def _on_running(self, running: bool) -> None:
        self.live_button.setChecked(running)
        self.live_button.setText("Stop live" if running else "Start live")

    def _on_model(self, model_dir: Path | None) -> None:
        if model_dir is None:
            self.model_label.setText("no model: raw preview only")
        else:
            self.model_label.setText(f"{model_dir} (scale {self.controller.scale})")

    def _on_record_status(self, status: RecordStatus) -> None:
        # a snap, another exposure or objective would end the recording: not while it runs
        for w in (self.snap_button, self.camera_box):
            w.setEnabled(status.done)

    def set_camera_available(self, available: bool) -> None:
        """Enable or disable live, snap and record (the camera is busy with an acquisition)."""
        for w in (
            self.live_button,
            self.snap_button,
            self.record_box,
            self.camera_box,
            self.stage_box,
        ):
            w.setEnabled(available)
        self.status.setText("" if available else "camera busy: acquisition running")

    def _warn(self, message: str) -> None:
        QMessageBox.warning(self, "deepscope", message)

    # -- user actions ------------------------------------------------------------------------
    def toggle_live(self) -> None:
        """Start live mode when stopped, stop it when running (a failure shows a message)."""
        if not self.live_button.isEnabled():
            return  # the camera is busy with an acquisition
        try:
            self.controller.toggle()
        except DeepscopeError as exc:
            self._warn(str(exc))
        self._on_running(self.controller.running)

    def choose_model(self) -> None:
        """Ask for a model directory and load it; an invalid one shows a message."""
        start = str(read_path(MODEL_DIR) or "")
        path = QFileDialog.getExistingDirectory(self, "Choose a model directory", start)
        if path:
            self.load_model(Path(path))

    def load_model(self, model_dir: Path) -> bool:
        """Load *model_dir*; on failure show a message box and keep the current model."""
        try:
            self.controller.load_model(model_dir)
        except (DeepscopeError, OSError) as exc:
            self._warn(f"cannot use {model_dir} as a model: {exc}")
            return False
        self.status.setText(f"model loaded: {model_dir}")
        return True

    def save_pair(self) -> list[Path]:
        """Save the current raw + enhanced frames as OME-TIFFs (asks for a folder once)."""
        if self.save_dir is None:
            chosen = QFileDialog.getExistingDirectory(self, "Save frames into")
            if not chosen:
                return []
            self.save_dir = Path(chosen)
        try:
            paths = self.controller.save_current(self.save_dir)
        except (DeepscopeError, OSError) as exc:
            self._warn(f"cannot save: {exc}")
            return []
        self.status.setText("saved " + ", ".join(p.name for p in paths))
        return paths

    def _set_exposure(self, value: float) -> None:
        try:
            self.controller.set_exposure(value)
        except (DeepscopeError, RuntimeError) as exc:
            self._warn(f"cannot set exposure: {exc}")

    def _set_objective(self, name: str) -> None:
        try:
            self.controller.set_objective(name)
        except (DeepscopeError, RuntimeError) as exc:
            self._warn(f"cannot switch objective: {exc}")

    def step_xy(self, sx: int, sy: int) -> None:
        """Move the stage by (sx, sy) steps of the xy step size."""
        if not self.stage_box.isEnabled():
            return
        step = self.step_spin.value()
        try:
            self.controller.move_xy(sx * step, sy * step)
        except (DeepscopeError, RuntimeError) as exc:
            self._warn(f"cannot move the stage: {exc}")

    def step_z(self, sign: int) -> None:
        """Move the focus by *sign* focus steps."""
        if not self.stage_box.isEnabled():
            return
        try:
            self.controller.move_z(sign * self.focus_spin.value())
        except (DeepscopeError, RuntimeError) as exc:
            self._warn(f"cannot move the focus: {exc}")
