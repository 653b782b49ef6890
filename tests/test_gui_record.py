"""The Live tab's Record controls, through the live pipeline's recorder, on real filesystems."""

import json

import pytest
from gui_fixtures import *  # noqa: F403 (fixtures: make_window, messages, sim_core, ...)
from PySide6.QtCore import Qt
from small_fs import small_fs  # noqa: F401 (fixture)

from deepscope.errors import LockedError
from deepscope.locking import directory_lock
from deepscope.ometiff import read_ome_tiff

WAIT_MS = 30_000


def recorded_count(box) -> int:
    return int(box.recorded_label.text().split()[1])


def manifest(directory):
    lines = (directory / "frames.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_record_toggle_writes_every_frame_and_holds_the_lock(
    qtbot, make_window, tmp_path, messages
):
    window = make_window()
    panel = window.live_panel
    box = panel.record_box
    assert box.folder_field.edit.text().endswith("deepscope-recordings")  # under the home dir
    box.folder_field.edit.setText(str(tmp_path / "recs"))
    qtbot.mouseClick(box.record_button, Qt.MouseButton.LeftButton)
    directory = window.live.recording
    assert directory is not None
    assert directory.parent == tmp_path / "recs"
    assert window.live.running
    assert box.record_button.text() == "Stop recording"
    assert "recording into" in window.statusBar().currentMessage()
    # another exposure or objective would restart the camera: refused while recording
    assert not panel.camera_box.isEnabled()
    assert not panel.snap_button.isEnabled()
    qtbot.waitUntil(lambda: recorded_count(box) >= 5, timeout=WAIT_MS)
    assert box.free_label.text().startswith("free ")
    assert box.free_label.text() != "free -"
    with pytest.raises(LockedError), directory_lock(directory):
        pass

    qtbot.mouseClick(box.record_button, Qt.MouseButton.LeftButton)
    assert window.live.recording is None
    assert window.live.running  # live mode goes on without recording
    assert box.record_button.text() == "Record"
    assert panel.camera_box.isEnabled()
    assert box.lost_label.text() == "lost 0"
    n = recorded_count(box)
    entries = manifest(directory)
    files = sorted((directory / "raw").glob("*.ome.tif"))
    assert n >= 5
    assert len(entries) == len(files) == n
    assert [e["index"] for e in entries] == list(range(n))
    image, meta = read_ome_tiff(directory / entries[-1]["file"])
    assert image.shape == (1, 96, 128, 3)
    assert meta.pixel_size_um == pytest.approx(0.185)
    assert window.statusBar().currentMessage() == f"recorded {n} frames into {directory}"
    with directory_lock(directory):  # released
        pass

    # a second recording goes into a new directory and leaves the first one as it was
    qtbot.mouseClick(box.record_button, Qt.MouseButton.LeftButton)
    second = window.live.recording
    assert second is not None
    assert second != directory
    qtbot.waitUntil(lambda: recorded_count(box) >= 2, timeout=WAIT_MS)
    window.live.stop()  # Stop live ends the recording too
    assert window.live.recording is None
    assert box.record_button.text() == "Record"
    assert len(manifest(directory)) == n
    assert len(manifest(second)) == recorded_count(box)
    assert messages == []


def test_full_disk_stops_the_recording_with_a_message_and_keeps_every_frame(
    qtbot,
    make_window,
    small_fs,  # noqa: F811
    messages,
):
    root = small_fs("2m")  # about 20 frames of 96x128 RGB uint16
    window = make_window()
    box = window.live_panel.record_box
    box.folder_field.edit.setText(str(root))
    qtbot.mouseClick(box.record_button, Qt.MouseButton.LeftButton)
    directory = window.live.recording
    assert directory is not None
    qtbot.waitUntil(lambda: window.live.recording is None, timeout=WAIT_MS)
    message = window.statusBar().currentMessage()
    assert message.startswith("recording ended early (")
    assert "disk full" in message
    assert not window.live.running
    assert box.record_button.text() == "Record"
    assert not box.record_button.isChecked()
    n = recorded_count(box)
    assert n > 5
    assert f"{n} frames kept in {directory}" in message
    lost = int(box.lost_label.text().split()[1])
    assert lost > 0  # frames that arrived after the disk filled up are counted, not hidden
    entries = manifest(directory)
    assert len(entries) == n
    for entry in entries:  # every frame recorded before the disk filled up is readable
        image, _ = read_ome_tiff(directory / entry["file"])
        assert image.shape == (1, 96, 128, 3)
    assert len(list((directory / "raw").glob("*.ome.tif"))) == n
    assert messages == []  # the status bar says it; no dialog waits for a person


def test_a_file_as_recording_folder_is_refused_in_the_status_bar(
    qtbot, make_window, tmp_path, messages
):
    not_a_dir = tmp_path / "file.txt"
    not_a_dir.write_text("x", encoding="utf-8")
    window = make_window()
    box = window.live_panel.record_box
    window.live.start()
    box.folder_field.edit.setText(str(not_a_dir))
    qtbot.mouseClick(box.record_button, Qt.MouseButton.LeftButton)
    assert window.live.recording is None
    assert window.live.running  # live mode is untouched
    assert not box.record_button.isChecked()
    assert window.statusBar().currentMessage() == (
        f"cannot record: {not_a_dir} is an existing file; choose a folder for recordings"
    )
    window.live.stop()
    assert messages == []
