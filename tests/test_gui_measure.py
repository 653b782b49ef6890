"""Scale bars and the cursor read-out of the Live tab."""

import numpy as np
import pytest
from gui_fixtures import *  # noqa: F403 (fixtures: make_window, messages, sim_core, ...)
from PySide6.QtCore import QPointF

from gui.measure import format_length, nice_length, slide_um, value_at

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
