"""Scale bars and the cursor read-out of the Live tab."""

import numpy as np
import pytest
from gui_fixtures import *  # noqa: F403 (fixtures: make_window, messages, sim_core, ...)
from PySide6.QtCore import QPoint, QPointF, Qt

from gui.measure import (
    format_length,
    line_profile,
    nice_length,
    slide_um,
    stage_step_um,
    value_at,
)
from simulators.core import microscope_of

WAIT_MS = 30_000


@pytest.mark.parametrize(
    ("limit", "expected"),
    [(1.0, 1.0), (1.9, 1.0), (2.0, 2.0), (4.99, 2.0), (7.0, 5.0), (0.3, 0.2), (180.0, 100.0)],
)
def test_nice_length_is_the_largest_1_2_5_step_below_the_limit(limit, expected):
    assert nice_length(limit) == pytest.approx(expected)


def test_nice_length_refuses_nonsense_and_lengths_read_in_um_or_mm():
    with pytest.raises(ValueError, match="positive"):
        nice_length(0.0)
    assert format_length(50.0) == "50 um"
    assert format_length(0.5) == "0.5 um"
    assert format_length(2000.0) == "2 mm"


def test_value_at_reads_the_reduced_image_and_says_so():
    image = np.arange(4 * 6 * 3, dtype=np.uint16).reshape(4, 6, 3)
    v = value_at(image, 0, 0, 1, 2.7, 1.2)
    assert v.values == tuple(float(x) for x in image[1, 2])
    assert v.text() == f"R {image[1, 2, 0]}  G {image[1, 2, 1]}  B {image[1, 2, 2]}"
    # the part from (x0, y0) = (10, 20) of a full image, reduced 2x: full pixel (13, 23) is (1, 1)
    reduced = value_at(image.astype(np.float32), 10, 20, 2, 13.0, 23.9)
    assert reduced.values == tuple(float(x) for x in image[1, 1])
    assert reduced.text().endswith("(mean of 2x2)")
    assert ".0" in reduced.text()  # floats with a decimal
    assert value_at(image, 0, 0, 1, 6.0, 0.0) is None
    assert value_at(image, 0, 0, 1, -0.5, 0.0) is None
    gray = value_at(image[..., 0], 0, 0, 1, 0.0, 0.0)
    assert gray.text() == "0"


def test_slide_position_puts_the_stage_position_at_the_frame_centre():
    meta = {"x_um": 100.0, "y_um": 50.0, "pixel_size_um": 0.5}
    # a 4x6 frame: its centre (view 3, 2) is the stage position, pixel (0, 0)'s centre 0.5, 0.5
    assert slide_um(3.0, 2.0, (4, 6, 3), meta) == pytest.approx((100.0, 50.0))
    assert slide_um(0.5, 0.5, (4, 6, 3), meta) == pytest.approx((100.0 - 1.25, 50.0 - 0.75))
    assert slide_um(0.5, 0.5, (4, 6), {"x_um": float("nan"), "y_um": 0, "pixel_size_um": 1}) is None


def bar_um_per_unit(pane):
    bar = pane.scale_bar
    return bar.length_um / bar.size


def test_scale_bars_follow_each_panes_pixel_size_and_the_zoom(qtbot, make_window, tiny_model):
    window = make_window(tiny_model)
    panel = window.live_panel
    raw_bar, enh_bar = panel.raw_pane.scale_bar, panel.enhanced_pane.scale_bar
    assert not raw_bar.isVisible()  # nothing drawn yet
    window.live.snap()
    qtbot.waitUntil(lambda: panel.enhanced_shown >= 1, timeout=WAIT_MS)
    assert raw_bar.isVisible()
    assert enh_bar.isVisible()
    # raw pixels of 0.185 um; enhanced pixels of 0.185 / 2.5 um drawn 1 / 2.5 view units wide
    assert bar_um_per_unit(panel.raw_pane) == pytest.approx(0.185)
    assert bar_um_per_unit(panel.enhanced_pane) == pytest.approx(0.185)
    width_um = panel.raw_pane.view.viewRect().width() * 0.185
    assert 0.2 * width_um / 2.5 < raw_bar.length_um <= 0.2 * width_um  # 1-2-5 steps
    assert raw_bar.text.textItem.toPlainText() == format_length(raw_bar.length_um)
    drawn = raw_bar.bar.rect().width()  # in the bar's (screen) coordinates
    view_px = panel.raw_pane.view.width() / panel.raw_pane.view.viewRect().width()
    assert drawn == pytest.approx(raw_bar.size * view_px, rel=0.02)
    before = raw_bar.length_um
    panel.raw_pane.view.setRange(xRange=(40, 50), yRange=(30, 40), padding=0)
    assert raw_bar.length_um < before
    assert enh_bar.length_um == raw_bar.length_um  # linked views, same micrometres per unit

    panel.objective_combo.textActivated.emit("100x")
    window.live.snap()
    qtbot.waitUntil(lambda: window.live.current.index == -2, timeout=WAIT_MS)  # second snap
    assert bar_um_per_unit(panel.raw_pane) == pytest.approx(0.074)
    assert bar_um_per_unit(panel.enhanced_pane) == pytest.approx(0.074)
    window.live.set_enhancer(None)  # no model: the enhanced pane is empty, and so its bar
    window.live.snap()
    qtbot.waitUntil(lambda: window.live.current.index == -3, timeout=WAIT_MS)
    assert panel.enhanced_pane.item.image is None
    assert not enh_bar.isVisible()
    assert raw_bar.isVisible()


def test_cursor_shows_pixel_values_per_channel_and_slide_position(qtbot, make_window, tiny_model):
    window = make_window(tiny_model)
    panel = window.live_panel
    window.live.snap()
    qtbot.waitUntil(lambda: panel.enhanced_shown >= 1, timeout=WAIT_MS)
    frame = window.live.current
    x_um, y_um, px = frame.meta["x_um"], frame.meta["y_um"], frame.meta["pixel_size_um"]
    scene = panel.graphics.scene()

    scene.sigMouseMoved.emit(panel.raw_pane.view.mapViewToScene(QPointF(10.5, 20.5)))
    r, g, b = frame.raw[20, 10]
    sx, sy = x_um + (10 - 63.5) * px, y_um + (20 - 47.5) * px
    where = f"x {sx:.2f}  y {sy:.2f} um"
    assert panel.cursor_label.text() == f"raw  {where}  R {r}  G {g}  B {b}"
    assert window.statusBar().isAncestorOf(panel.cursor_label)

    # the same slide point on the enhanced pane: enhanced pixel (26, 51) of the 2.5x frame
    scene.sigMouseMoved.emit(panel.enhanced_pane.view.mapViewToScene(QPointF(10.5, 20.5)))
    values = [f"{v:.1f}" for v in frame.enhanced[51, 26]]
    expected = "  ".join(f"{c} {v}" for c, v in zip("RGB", values, strict=True))
    assert panel.cursor_label.text() == f"enhanced  {where}  {expected}"


def test_line_profile_samples_each_pixel_along_the_line_in_um():
    ramp = np.tile(np.arange(20, dtype=np.uint16) * 10, (8, 1))
    image = np.stack([ramp, ramp + 1, ramp * 0], axis=-1)
    # pixel centres (2, 4) -> (12, 4): view points (2.5, 4.5) -> (12.5, 4.5), 11 samples
    p = line_profile(image, 0, 0, 1, (2.5, 4.5), (12.5, 4.5), 0.5)
    assert p.values.shape == (11, 3)
    assert p.distance_um == pytest.approx(np.arange(11) * 0.5)
    assert p.values[:, 0] == pytest.approx(np.arange(2, 13) * 10)
    assert p.values[:, 1] == pytest.approx(np.arange(2, 13) * 10 + 1)
    # the part from x0 = 10 of a full image reduced 2x: full pixel 10 + 2 j + 0.5 is column j
    reduced = line_profile(image, 10, 0, 2, (11.0, 1.0), (31.0, 1.0), 0.5)
    assert reduced.values[:, 0] == pytest.approx(np.arange(11) * 10)
    assert reduced.distance_um[-1] == pytest.approx(10.0)  # 20 full pixels of 0.5 um
    assert line_profile(image, 0, 0, 1, (2.5, 4.5), (2.6, 4.5), 0.5) is None  # too short
    assert line_profile(image, 0, 0, 1, (2.5, 4.5), (40.0, 4.5), 0.5) is None  # leaves it


def test_stage_step_follows_the_pixel_size_and_the_cameras_orientation():
    # a 4x6 frame: view point (5.5, 0.5) is pixel (5, 0), 2.5 right of and 1.5 above the centre
    assert stage_step_um(5.5, 0.5, (4, 6, 3), 2.0) == pytest.approx((5.0, -3.0))
    assert stage_step_um(5.5, 0.5, (4, 6), 2.0, (0, 0, 0, 0, 0, 0)) == pytest.approx((5.0, -3.0))
    # a camera mounted with its x along the stage's -y and its y along the stage's +x
    assert stage_step_um(5.5, 0.5, (4, 6), 2.0, (0, 2, 0, -2, 0, 0)) == pytest.approx((-3.0, -5.0))
    with pytest.raises(ValueError, match="pixel size 0"):
        stage_step_um(1.0, 1.0, (4, 6), 0.0)


def test_line_profile_tool_plots_raw_and_enhanced_channels(qtbot, make_window, tiny_model):
    window = make_window(tiny_model)
    panel = window.live_panel
    window.live.snap()
    qtbot.waitUntil(lambda: panel.enhanced_shown >= 1, timeout=WAIT_MS)
    tool = panel.profile_tool
    assert not tool.plot.isVisible()
    qtbot.mouseClick(panel.profile_button, Qt.MouseButton.LeftButton)
    assert tool.plot.isVisible()
    assert len(panel.raw_pane.view.addedItems) > 1
    tool.set_ends((10.5, 20.5), (50.5, 20.5))
    # the line on the enhanced pane follows
    assert np.ravel(tool.ends()) == pytest.approx([10.5, 20.5, 50.5, 20.5])
    enhanced_line = tool.lines[1]
    a, b = (enhanced_line.mapToParent(h["item"].pos()) for h in enhanced_line.handles)
    assert (a.x(), a.y(), b.x(), b.y()) == pytest.approx((10.5, 20.5, 50.5, 20.5))
    curves = {c.name(): c for c in tool.plot.getPlotItem().listDataItems()}
    assert set(curves) == {f"{pane} {c}" for pane in ("raw", "enhanced") for c in "RGB"}
    frame = window.live.current
    x, y = curves["raw G"].getData()
    assert x[-1] == pytest.approx(40 * 0.185)
    assert y == pytest.approx(frame.raw[20, 10:51, 1])
    ex, ey = curves["enhanced R"].getData()
    assert ex[-1] == pytest.approx(40 * 0.185)
    assert len(ey) == 101  # one sample per enhanced pixel (2.5 per raw pixel)
    qtbot.mouseClick(panel.profile_button, Qt.MouseButton.LeftButton)
    assert not tool.plot.isVisible()
    assert tool.ends() is None


def test_double_click_on_the_raw_view_centres_the_stage_on_that_point(qtbot, make_window):
    window = make_window()
    panel = window.live_panel
    truth = microscope_of(window.core)
    window.live.snap()
    qtbot.waitUntil(lambda: panel.frames_shown >= 1, timeout=WAIT_MS)
    before = truth.snap_log[-1]
    col, row = 100, 20  # a feature right of and above the centre of the 128x96 frame
    target = before.affine() @ np.array([col, row, 1.0])
    viewport = panel.graphics.viewport()
    scene_pos = panel.raw_pane.view.mapViewToScene(QPointF(col + 0.5, row + 0.5))
    widget_pos = panel.graphics.mapFromScene(scene_pos)
    left, at = Qt.MouseButton.LeftButton, QPoint(widget_pos)
    # what a real double click delivers: press, release, double click, release
    qtbot.mouseClick(viewport, left, pos=at)
    qtbot.mouseDClick(viewport, left, pos=at)
    qtbot.mouseRelease(viewport, left, pos=at)
    qtbot.waitUntil(lambda: "stage moved" in panel.status.text(), timeout=WAIT_MS)
    window.live.snap()
    qtbot.waitUntil(lambda: window.live.current.index == -2, timeout=WAIT_MS)
    after = truth.snap_log[-1]
    h, w = window.live.current.raw.shape[:2]
    centre = after.affine() @ np.array([(w - 1) / 2, (h - 1) / 2, 1.0])
    # the open-loop stage lands off its command (backlash, repeatability); the simulator
    # knows by how much. Without that, the clicked feature is at the centre up to the
    # objective's small rotation and magnification error: under a pixel
    landing = np.array(
        [after.true_x_um - after.commanded_x_um, after.true_y_um - after.commanded_y_um]
    )
    assert np.hypot(*(centre - landing - target)) < before.pixel_size_um
    assert np.hypot(*(centre - target)) < 3 * truth.xy_stage.backlash_um
    moved = np.hypot(target[0] - before.true_x_um, target[1] - before.true_y_um)
    assert moved > 30 * before.pixel_size_um
