import numpy as np
import pytest
from gui_fixtures import *  # noqa: F403 (fixtures: make_window, messages, sim_core, ...)
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from deepscope.formats.dataset import open_dataset
from simulators.core import make_core
from simulators.faults import FaultConfig

WAIT_MS = 90_000

TINY_PLAN = """\
name: gui-test
region: {{x_um: 0.0, y_um: 0.0, width_um: 20.0, height_um: 14.0}}
camera_roi: {{width: 64, height: 64}}
tiles: {{objective: 40x, overlap: 0.15, exposure_ms: 1}}
targets:
  objective: 100x
  count: 1
  seed: 1
  margin_um: 3.0
  exposure_ms: 1
  z: {{slices: 1, step_um: 0.4}}
retries: {retries}
"""


@pytest.fixture
def oil(monkeypatch):
    """Answer the oil dialog with the next queued button; record how often it was shown."""
    answers = {"next": QMessageBox.StandardButton.Ok, "asked": 0}

    def question(parent, title, text, *args):
        answers["asked"] += 1
        assert "oil" in text
        return answers["next"]

    monkeypatch.setattr(QMessageBox, "question", question)
    return answers


def run_plan(qtbot, window, text, out_dir, *, resume=False):
    panel = window.acquisition_panel
    panel.editor.setPlainText(text)
    panel.out_field.edit.setText(str(out_dir))
    panel.resume_box.setChecked(resume)
    ctrl = window.acquisition
    qtbot.mouseClick(panel.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not ctrl.running, timeout=WAIT_MS)
    return ctrl


def test_acquisition_runs_with_oil_dialog_then_resumes(qtbot, make_window, tmp_path, oil, messages):
    window = make_window()
    panel = window.acquisition_panel
    out = tmp_path / "ds"
    camera_free = []
    window.acquisition.running_changed.connect(
        lambda running: camera_free.append(window.live_panel.live_button.isEnabled())
    )
    window.live.start()  # running the plan stops live mode: one user of the camera
    # stop at the oil pause: tiles done, targets pending
    oil["next"] = QMessageBox.StandardButton.Cancel
    ctrl = run_plan(qtbot, window, TINY_PLAN.format(retries=1), out)
    qtbot.waitUntil(lambda: ctrl.summary is not None, timeout=WAIT_MS)
    assert messages == []
    assert oil["asked"] == 1
    first = ctrl.summary
    assert first.cancelled
    assert not window.live.running
    assert camera_free == [False, True]
    tiles = len(open_dataset(out).done("tile"))
    assert tiles >= 2
    assert panel.field_list.count() == tiles
    qtbot.waitUntil(lambda: panel.image.image is not None, timeout=WAIT_MS)
    assert panel.field_label.text().startswith("current field: ")
    assert panel.run_button.isEnabled()

    # resume the interrupted dataset, this time with oil on
    oil["next"] = QMessageBox.StandardButton.Ok
    ctrl = run_plan(qtbot, window, TINY_PLAN.format(retries=1), out, resume=True)
    qtbot.waitUntil(lambda: ctrl.summary is not None, timeout=WAIT_MS)
    s = ctrl.summary
    assert not s.cancelled
    assert s.skipped == tiles
    assert s.failed == 0
    ds = open_dataset(out)
    assert len(ds.done("target")) == 1
    assert panel.field_list.count() == tiles + 1
    assert panel.progress.value() == panel.progress.maximum()
    assert "done" in panel.phase_label.text()


def test_failed_fields_are_marked(qtbot, make_window, monkeypatch, tmp_path, oil, messages):
    monkeypatch.setenv("PYMM_SIGNALS_BACKEND", "psygnal")
    core = make_core(seed=0, sensor=(96, 128), faults=FaultConfig(fail_snaps=(1,)))
    window = make_window(core=core)
    ctrl = run_plan(qtbot, window, TINY_PLAN.format(retries=0), tmp_path / "ds")
    qtbot.waitUntil(lambda: ctrl.summary is not None, timeout=WAIT_MS)
    assert ctrl.summary.failed == 1
    items = [window.acquisition_panel.field_list.item(i) for i in range(ctrl.summary.total)]
    red = [it for it in items if it.foreground().color().name() == "#ff0000"]
    assert len(red) == 1
    assert "failed" in red[0].text()
    assert "simulated fault" in red[0].toolTip()


def test_plan_outside_stage_limits_shows_message(qtbot, make_window, tmp_path, oil, messages):
    window = make_window()
    far = TINY_PLAN.format(retries=0).replace("x_um: 0.0", "x_um: 900000.0")
    run_plan(qtbot, window, far, tmp_path / "ds")
    qtbot.waitUntil(lambda: len(messages) == 1, timeout=WAIT_MS)
    assert "stage" in messages[0] or "travel" in messages[0]
    assert window.acquisition_panel.run_button.isEnabled()
    assert oil["asked"] == 0
    assert window.core.getXPosition() == pytest.approx(0.0)


def test_invalid_plan_text_shows_message(qtbot, make_window, tmp_path, messages):
    window = make_window()
    panel = window.acquisition_panel
    panel.editor.setPlainText("region: [1, 2")
    assert not panel.check_plan()
    panel.editor.setPlainText("region: {x_um: 0, y_um: 0, width_um: -5, height_um: 5}")
    panel.out_field.edit.setText(str(tmp_path / "ds"))
    qtbot.mouseClick(panel.run_button, Qt.MouseButton.LeftButton)
    assert len(messages) == 2
    assert "YAML" in messages[0]
    assert "width_um" in messages[1]
    assert not window.acquisition.running


def test_closing_the_window_mid_acquisition_cancels_and_joins(qtbot, make_window, tmp_path, oil):
    window = make_window()
    panel = window.acquisition_panel
    panel.editor.setPlainText(TINY_PLAN.format(retries=0))
    panel.out_field.edit.setText(str(tmp_path / "ds"))
    qtbot.mouseClick(panel.run_button, Qt.MouseButton.LeftButton)
    assert window.acquisition.running
    window.close()  # the leak check then finds no acquisition thread left
    assert not window.acquisition.running
    ds = open_dataset(tmp_path / "ds")
    assert len(ds.done("target")) == 0


def test_plan_save_and_load_round_trip(qtbot, make_window, tmp_path, monkeypatch, messages):
    from PySide6.QtWidgets import QFileDialog

    from acquire.plan import AcquisitionPlan

    window = make_window()
    panel = window.acquisition_panel
    path = tmp_path / "plan.yaml"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(path), ""))
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))
    panel.editor.setPlainText(TINY_PLAN.format(retries=3))
    panel.save_plan()
    assert AcquisitionPlan.from_file(path).retries == 3
    panel.editor.setPlainText("")
    panel.load_plan()
    assert panel.plan() == AcquisitionPlan.from_file(path)
    assert panel.check_plan()
    assert "valid" in panel.phase_label.text()
    assert messages == []


def test_default_plan_is_the_documented_example_and_the_profile_reaches_the_dataset(
    qtbot, make_window, tmp_path, oil, messages
):
    import json
    from pathlib import Path

    from acquire.profile import MicroscopeProfile
    from deepscope.formats.dataset import Calibration
    from gui.acquisition_panel import EXAMPLE_PLAN_PATH

    window = make_window()
    panel = window.acquisition_panel
    example = Path(__file__).resolve().parents[1] / "examples" / "plan_small.yaml"
    assert example == EXAMPLE_PLAN_PATH
    assert panel.editor.toPlainText() == example.read_text()
    assert panel.plan().autofocus.mode == "per_field"

    profile = MicroscopeProfile(
        calibration=Calibration(dx_um=1.25, dy_um=-0.5, dz_um=0.75),
        calibrated_objectives=("40x", "100x"),
    )
    profile.to_file(tmp_path / "profile.yaml")
    panel.profile_field.edit.setText(str(tmp_path / "profile.yaml"))
    run_plan(qtbot, window, TINY_PLAN.format(retries=1), tmp_path / "cal")
    assert messages == []
    info = json.loads((tmp_path / "cal" / "dataset.json").read_text())
    assert info["calibrated"] is True
    assert info["calibration"]["dx_um"] == 1.25

    panel.profile_field.edit.setText("")
    qtbot.waitUntil(panel.run_button.isEnabled, timeout=WAIT_MS)
    run_plan(qtbot, window, TINY_PLAN.format(retries=1), tmp_path / "uncal")
    info = json.loads((tmp_path / "uncal" / "dataset.json").read_text())
    assert info["calibrated"] is False

    panel.profile_field.edit.setText(str(tmp_path / "missing.yaml"))
    panel.run()
    assert messages
    assert "missing.yaml" in messages[-1]


@pytest.mark.parametrize(
    ("seconds", "text"), [(12.4, "12 s"), (250, "4 min 10 s"), (3900, "1 h 05 min"), (-3, "0 s")]
)
def test_eta_reads_in_h_min_s(seconds, text):
    from gui.acquisition_panel import format_eta

    assert format_eta(seconds) == text


def test_form_and_yaml_edit_each_other(qtbot, make_window):
    panel = make_window().acquisition_panel
    panel.editor.setPlainText(TINY_PLAN.format(retries=1))
    width = panel.form.fields[("region", "width_um")]
    slices = panel.form.fields[("targets", "z", "slices")]
    assert width.value() == 20.0
    assert slices.value() == 1
    # the form writes into the YAML, which stays the plan
    width.setValue(31.5)
    slices.setValue(4)
    panel.form.fields[("autofocus", "mode")].setCurrentText("per_field")
    panel.form.fields[("autofocus", "mode")].activated.emit(1)
    plan = panel.plan()
    assert plan.region.width_um == 31.5
    assert plan.targets.z.slices == 4
    assert plan.autofocus.mode == "per_field"
    assert plan.targets.count == 1  # untouched keys stay
    # the YAML writes into the form; invalid YAML disables the form instead
    panel.editor.setPlainText(panel.editor.toPlainText().replace("height_um: 14.0", "height_um: 9"))
    assert panel.form.fields[("region", "height_um")].value() == 9.0
    panel.editor.setPlainText("region: [")
    assert not panel.form.isEnabled()
    assert "YAML" in panel.form.toolTip()


def test_preview_draws_the_fields_the_acquisition_then_takes(
    qtbot, make_window, tmp_path, oil, messages
):
    window = make_window()
    panel = window.acquisition_panel
    core = window.core
    panel.editor.setPlainText(TINY_PLAN.format(retries=1))
    start = core.getXYPosition()
    qtbot.mouseClick(panel.preview_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "tiles yellow" in panel.layout_label.text(), timeout=WAIT_MS)
    assert messages == []
    assert panel.layout_label.text().startswith("4 tiles (40x), 1 target fields")
    assert core.getXYPosition() == pytest.approx(start)  # the stage is put back
    overview = panel.overview.image
    assert overview is not None
    assert overview.std() > 0  # real snaps, not an empty pane
    rects = [item.rect() for item in panel._layout_items]
    assert len(rects) == 5
    centres = [(r.center().x(), r.center().y()) for r in rects]

    ctrl = run_plan(qtbot, window, TINY_PLAN.format(retries=1), tmp_path / "ds")
    qtbot.waitUntil(lambda: ctrl.summary is not None, timeout=WAIT_MS)
    done = open_dataset(tmp_path / "ds").done()
    acquired = sorted((r.x_um, r.y_um) for r in done if r.role in ("tile", "target"))
    assert np.ravel(acquired) == pytest.approx(np.ravel(sorted(centres)), abs=1e-6)


def test_cancel_stops_after_the_current_field_and_resume_completes(
    qtbot, make_window, tmp_path, oil, messages
):
    window = make_window()
    panel = window.acquisition_panel
    ctrl = window.acquisition
    seen: list[str] = []
    ctrl.progressed.connect(lambda p: seen.append(panel.phase_label.text()))

    def cancel_after_two(p):  # in the worker, as the second field is done: no race
        if p.finished == 2:
            ctrl.cancel()  # what the Cancel button calls

    ctrl.progressed.connect(cancel_after_two, Qt.ConnectionType.DirectConnection)
    run_plan(qtbot, window, TINY_PLAN.format(retries=1), tmp_path / "ds")
    qtbot.waitUntil(lambda: ctrl.summary is not None, timeout=WAIT_MS)
    assert ctrl.summary.cancelled
    # fields already handed to the engine are finished, then it stops: before the targets
    done = len(open_dataset(tmp_path / "ds").done())
    assert 2 <= done < ctrl.summary.total
    assert "cancelled" in panel.phase_label.text()
    assert any(" left" in text for text in seen)  # the ETA, once a field is done
    assert oil["asked"] == 0
    ctrl.progressed.disconnect(cancel_after_two)

    ctrl = run_plan(qtbot, window, TINY_PLAN.format(retries=1), tmp_path / "ds", resume=True)
    qtbot.waitUntil(lambda: ctrl.summary is not None, timeout=WAIT_MS)
    s = ctrl.summary
    assert not s.cancelled
    assert s.failed == 0
    assert s.skipped == done
    assert len(open_dataset(tmp_path / "ds").done()) == s.total == 5
