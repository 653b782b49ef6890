import math
import threading
import time

import numpy as np
import pytest
from gui_fixtures import *  # noqa: F403 (fixtures: make_window, messages, sim_core, ...)
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from deepscope.ometiff import read_ome_tiff

WAIT_MS = 30_000


def scene_rect(pane):
    return pane.item.mapRectToView(pane.item.boundingRect())


def test_live_frames_reach_both_views_and_close_leaves_nothing(qtbot, make_window, tiny_model):
    window = make_window(tiny_model)
    panel = window.live_panel
    threads_before = set(threading.enumerate())
    window.live.start()
    assert window.live.running
    assert set(threading.enumerate()) - threads_before, "live mode should run its own threads"
    qtbot.waitUntil(
        lambda: panel.frames_shown >= 3 and panel.enhanced_shown >= 2,
        timeout=WAIT_MS,
    )
    frame = window.live.current
    assert frame.raw.shape == (96, 128, 3)
    assert panel.raw_pane.item.image.shape == (96, 128, 3)
    done = window.live.enhanced
    assert done.enhanced is None  # the full enhanced frame stays on the device
    assert done.view is not None  # only the view-sized image came back
    assert panel.enhanced_pane.item.image.shape == done.view.shape
    assert done.window.y1 - done.window.y0 == 240  # the whole frame is in view
    assert done.window.x1 - done.window.x0 == 320
    # the enhanced view is scaled by 1/2.5: both cover the same specimen area
    raw_rect, enh_rect = scene_rect(panel.raw_pane), scene_rect(panel.enhanced_pane)
    assert enh_rect.width() == pytest.approx(raw_rect.width(), abs=2)
    assert enh_rect.height() == pytest.approx(raw_rect.height(), abs=2)
    # linked pan/zoom
    panel.raw_pane.view.setRange(xRange=(10, 40), yRange=(10, 30), padding=0)
    (x0, x1), _ = panel.enhanced_pane.view.viewRange()
    assert (x0, x1) == pytest.approx((10, 40), abs=1.0)
    fps = panel.readouts["camera / raw view fps"]
    qtbot.waitUntil(lambda: "-" not in fps.text(), timeout=WAIT_MS)
    camera, raw = (float(v) for v in fps.text().split(" / "))
    assert camera > 0
    assert raw > 0
    assert panel.readouts["objective"].text() == "40x"
    assert panel.readouts["pixel size"].text() == "0.1850 um"
    assert "of" in panel.readouts["dropped"].text()
    assert panel.live_button.text() == "Stop live"

    window.live.stop()
    assert not window.live.running
    assert panel.live_button.text() == "Start live"
    window.close()  # the leak check then finds no thread and no widget left
    assert not window.live.running


def test_large_frames_are_downsampled_for_display(qtbot, make_window, tiny_model):
    window = make_window(tiny_model)
    panel = window.live_panel
    panel.max_display_px = 64
    window.live.start()
    qtbot.waitUntil(lambda: panel.enhanced_shown >= 3, timeout=WAIT_MS)
    window.live.stop()
    raw_shown = panel.raw_pane.item.image
    enh_shown = panel.enhanced_pane.item.image
    assert max(raw_shown.shape[:2]) <= 64
    assert max(enh_shown.shape[:2]) <= 64
    # still drawn over the full field of the raw frame
    assert scene_rect(panel.raw_pane).width() == pytest.approx(128, abs=2)
    assert scene_rect(panel.enhanced_pane).width() == pytest.approx(128, abs=2)


def test_zoomed_view_draws_only_the_visible_part_at_full_resolution(qtbot, make_window, tiny_model):
    window = make_window(tiny_model)
    panel = window.live_panel
    panel.max_display_px = 100  # zoomed out: 128 px frames are halved
    window.live.snap()
    qtbot.waitUntil(lambda: panel.frames_shown >= 1, timeout=WAIT_MS)
    assert panel.raw_pane.factor == 2
    panel.raw_pane.view.setRange(xRange=(40, 60), yRange=(30, 50), padding=0)
    qtbot.waitUntil(lambda: panel.raw_pane.factor == 1, timeout=WAIT_MS)
    raw_shown = panel.raw_pane.item.image
    assert raw_shown.shape[0] < 96
    assert raw_shown.shape[1] < 128
    rect = scene_rect(panel.raw_pane)
    assert rect.left() <= 40
    assert rect.top() <= 30
    assert rect.right() >= 60
    assert rect.bottom() >= 50
    # the enhanced pane draws the same area, with 2.5x as many pixels
    qtbot.waitUntil(lambda: panel.enhanced_pane.factor == 1, timeout=WAIT_MS)
    enh_rect = scene_rect(panel.enhanced_pane)
    assert enh_rect.left() <= 40
    assert enh_rect.right() >= 60
    frame = window.live.current
    y0 = int(rect.top())
    x0 = int(rect.left())
    np.testing.assert_array_equal(raw_shown[0, 0], frame.raw[y0, x0])


def test_grayscale_and_manual_levels(qtbot, make_window, tiny_model):
    window = make_window(tiny_model)
    panel = window.live_panel
    window.live.snap()
    qtbot.waitUntil(lambda: panel.frames_shown >= 1, timeout=WAIT_MS)
    assert panel.raw_pane.item.image.ndim == 3
    panel.colour_combo.setCurrentText("grayscale")
    assert panel.raw_pane.item.image.ndim == 2
    panel.auto_levels_box.setChecked(False)
    panel.raw_pane.item.setLevels((100.0, 200.0))
    window.live.snap()
    qtbot.waitUntil(lambda: panel.frames_shown >= 2, timeout=WAIT_MS)
    assert tuple(panel.raw_pane.item.getLevels()) == pytest.approx((100.0, 200.0))


def test_snap_and_save_pair_as_ome_tiff(qtbot, make_window, tiny_model, tmp_path):
    window = make_window(tiny_model)
    panel = window.live_panel
    window.live.snap()
    qtbot.waitUntil(lambda: window.live.current is not None, timeout=WAIT_MS)
    panel.save_dir = tmp_path / "saved"
    paths = panel.save_pair()
    assert len(paths) == 2
    raw, raw_meta = read_ome_tiff(next(p for p in paths if "raw" in p.name))
    enh, enh_meta = read_ome_tiff(next(p for p in paths if "enhanced" in p.name))
    assert raw.shape == (1, 96, 128, 3)
    assert enh.shape == (1, 240, 320, 3)
    assert raw_meta.pixel_size_um == pytest.approx(0.185)
    assert enh_meta.pixel_size_um == pytest.approx(0.185 / 2.5)
    assert raw_meta.objective == "40x"
    np.testing.assert_array_equal(raw[0], window.live.current.raw)


def test_stage_keys_and_focus_move_the_stage(qtbot, make_window, tiny_model, sim_core):
    window = make_window(tiny_model)
    panel = window.live_panel
    panel.step_spin.setValue(20.0)
    panel.focus_spin.setValue(0.5)
    with qtbot.waitActive(window):
        window.activateWindow()
    panel.graphics.setFocus()
    x0, y0 = sim_core.getXYPosition()
    z0 = sim_core.getPosition()
    qtbot.keyClick(panel.graphics, Qt.Key.Key_Right)
    qtbot.keyClick(panel.graphics, Qt.Key.Key_Up)
    qtbot.keyClick(panel.graphics, Qt.Key.Key_PageUp)
    x, y = sim_core.getXYPosition()
    assert (x - x0, y - y0) == pytest.approx((20.0, -20.0))
    assert sim_core.getPosition() - z0 == pytest.approx(0.5)
    qtbot.mouseClick(panel.move_buttons["left"], Qt.MouseButton.LeftButton)
    assert sim_core.getXYPosition()[0] == pytest.approx(x0)
    assert panel.readouts["stage x/y/z"].text().startswith(f"{x0:.1f} / {y0 - 20:.1f}")


def test_exposure_and_objective_controls(qtbot, make_window, tiny_model, sim_core):
    window = make_window(tiny_model)
    panel = window.live_panel
    panel.exposure_spin.setValue(25.0)
    assert sim_core.getExposure() == pytest.approx(25.0)
    panel.objective_combo.textActivated.emit("100x")
    assert sim_core.getCurrentConfig("Objective") == "100x"
    assert math.isclose(sim_core.getPixelSizeUm(), 0.074, rel_tol=1e-6)
    assert panel.readouts["pixel size"].text() == "0.0740 um"


def test_invalid_model_directory_shows_message_and_keeps_model(
    qtbot, make_window, tiny_model, tmp_path, messages, monkeypatch
):
    window = make_window(tiny_model)
    bad = tmp_path / "not-a-model"
    bad.mkdir()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(bad))
    before = window.live.enhancer
    qtbot.mouseClick(window.live_panel.model_button, Qt.MouseButton.LeftButton)
    assert len(messages) == 1
    assert "config.json" in messages[0]
    assert window.live.enhancer is before
    (bad / "config.json").write_text("{not json", encoding="utf-8")
    assert not window.live_panel.load_model(bad)
    assert "not a valid deepscope model config" in messages[1]


def test_loading_a_model_while_live_enhances_new_frames(qtbot, make_window, tiny_model):
    w = make_window()
    panel = w.live_panel
    w.live.start()
    qtbot.waitUntil(lambda: panel.frames_shown >= 2, timeout=WAIT_MS)
    assert panel.enhanced_pane.item.image is None
    assert panel.load_model(tiny_model)
    qtbot.waitUntil(lambda: panel.enhanced_pane.item.image is not None, timeout=WAIT_MS)
    w.live.stop()
    assert "scale 2.5" in panel.model_label.text()


def test_model_failing_on_frames_stops_live_with_message(qtbot, make_window, tmp_path, messages):
    from gui.screenshot import tiny_model_dir

    mono = tiny_model_dir(tmp_path / "mono", channels=1)  # the camera is RGB
    window = make_window(mono)
    window.live.start()
    qtbot.waitUntil(lambda: not window.live.running, timeout=WAIT_MS)
    assert len(messages) == 1
    assert "live mode stopped" in messages[0]
    assert "does not fit the model" in messages[0]
    assert window.live_panel.live_button.text() == "Start live"


def test_self_feeding_reaches_the_model(qtbot, make_window, tiny_model):
    window = make_window(tiny_model)
    panel = window.live_panel
    panel.self_feed_box.setChecked(True)
    assert window.live.self_feed
    window.live.snap()
    qtbot.waitUntil(lambda: window.live.current is not None, timeout=WAIT_MS)
    frame = window.live.current
    enhancer = window.live.enhancer
    # tolerances allow for non-deterministic GPU kernels; self-feeding changes pixels by ~10
    np.testing.assert_allclose(
        frame.enhanced, enhancer.enhance(frame.raw, self_feed=True), rtol=0, atol=2.0
    )
    once = enhancer.enhance(frame.raw, self_feed=False)
    assert np.abs(frame.enhanced - once).mean() > 2.0


def test_switching_objective_while_live_restarts_live(qtbot, make_window, tiny_model, sim_core):
    window = make_window(tiny_model)
    panel = window.live_panel
    window.live.start()
    panel.objective_combo.textActivated.emit("100x")
    assert window.live.running
    qtbot.waitUntil(lambda: panel.readouts["objective"].text() == "100x", timeout=WAIT_MS)
    assert panel.readouts["pixel size"].text() == "0.0740 um"
    window.live.stop()


class SlowEnhancer:
    """The tiny model at 0.5 s per frame: far slower than the camera."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def enhance_async(self, image, **kw):
        time.sleep(0.5)
        return self.inner.enhance_async(image, **kw)


def test_raw_view_runs_at_camera_rate_while_the_model_is_slow(
    qtbot, make_window, tiny_model, sim_core
):
    window = make_window(tiny_model)
    panel = window.live_panel
    window.live.set_enhancer(SlowEnhancer(window.live.enhancer), tiny_model)
    window.live.start()
    qtbot.waitUntil(lambda: panel.enhanced_shown >= 1, timeout=WAIT_MS)
    raw_before, enhanced_before = panel.frames_shown, panel.enhanced_shown
    x0, _ = sim_core.getXYPosition()
    panel.step_spin.setValue(40.0)
    t0 = time.perf_counter()
    panel.step_xy(1, 0)
    qtbot.waitUntil(
        lambda: window.live.current.meta["x_um"] == pytest.approx(x0 + 40.0), timeout=WAIT_MS
    )
    shown_after_s = time.perf_counter() - t0
    qtbot.wait(1000)
    raw_drawn = panel.frames_shown - raw_before
    enhanced_drawn = panel.enhanced_shown - enhanced_before
    window.live.stop()
    assert shown_after_s < 0.5  # the raw view does not wait for the 0.5 s network
    assert raw_drawn >= 10
    assert enhanced_drawn <= 4
    assert raw_drawn > 3 * enhanced_drawn
    assert not panel.readouts["camera / raw view fps"].text().endswith("-")
    assert "age" in panel.enhanced_pane.info.toPlainText()


def test_enhancement_pauses_on_another_objective_and_resumes(
    qtbot, make_window, tmp_path, sim_core
):
    from model.config import ModelConfig, NetworkConfig, Normalisation
    from model.network import DeepMicroscopyNet
    from model.store import save_model

    net_cfg = NetworkConfig(base_channels=4, num_blocks=1, alpha=2, global_skip=True)
    config = ModelConfig(
        network=net_cfg,
        normalisation=Normalisation.identity(3, 4095.0),
        input_pixel_size_um=0.185,  # a 40x model
        output_pixel_size_um=0.074,
    )
    model = save_model(tmp_path / "m40", DeepMicroscopyNet(net_cfg), config)
    window = make_window(model)
    panel = window.live_panel
    window.live.start()
    qtbot.waitUntil(lambda: panel.enhanced_shown >= 1, timeout=WAIT_MS)
    panel.objective_combo.textActivated.emit("100x")
    qtbot.waitUntil(lambda: window.live.paused is not None, timeout=WAIT_MS)
    assert panel.enhanced_pane.info.toPlainText().startswith("enhancement paused")
    assert "0.074" in panel.status.text()
    assert "0.185" in panel.status.text()
    assert panel.enhanced_pane.item.image is None
    shown = panel.enhanced_shown
    raw = panel.frames_shown
    qtbot.wait(300)
    assert panel.enhanced_shown == shown  # nothing enhanced with the 100x objective
    assert panel.frames_shown > raw  # the raw view keeps running
    panel.objective_combo.textActivated.emit("40x")
    qtbot.waitUntil(lambda: window.live.paused is None, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: panel.enhanced_shown > shown, timeout=WAIT_MS)
    assert panel.status.text() == "enhancement resumed"
    window.live.stop()


def test_save_pair_while_live_enhances_the_saved_frame(qtbot, make_window, tiny_model, tmp_path):
    window = make_window(tiny_model)
    panel = window.live_panel
    window.live.start()
    qtbot.waitUntil(lambda: panel.enhanced_shown >= 1, timeout=WAIT_MS)
    window.live.stop()
    panel.save_dir = tmp_path / "saved"
    paths = panel.save_pair()
    assert len(paths) == 2
    enh, _ = read_ome_tiff(next(p for p in paths if "enhanced" in p.name))
    raw = window.live.current.raw
    np.testing.assert_allclose(enh[0], window.live.enhancer.enhance(raw), atol=1e-3)
