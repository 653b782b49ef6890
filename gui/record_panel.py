"""The Live tab's Record controls: a folder, a Record toggle and the recording's counts."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QGridLayout, QGroupBox, QLabel, QPushButton, QWidget

from deepscope.errors import DeepscopeError
from gui.live_controller import LiveController
from gui.recording import RecordStatus, default_recordings_dir
from gui.settings import RECORD_DIR, read_path, write_path
from gui.training_panel import PathField


def format_bytes(n: int | None) -> str:
    """*n* bytes as ``"12.3 GB"`` or ``"512 MB"`` (``"-"`` when unknown)."""
    if n is None:
        return "-"
    if n >= 10**9:
        return f"{n / 1e9:.1f} GB"
    return f"{n / 1e6:.0f} MB"


class RecordBox(QGroupBox):
    """Record every raw frame of live mode into a new OME-TIFF dataset under a chosen folder.

    Shows frames recorded, queued for the disk, lost (0 unless the disk filled up
    or failed) and the free space where the frames go. What ends a recording (the user, a full
    disk) is sent as :attr:`message`, for the window's status bar.
    """

    message = Signal(str)

    def __init__(self, controller: LiveController, parent: QWidget | None = None) -> None:
        super().__init__("Record raw frames (OME-TIFF)", parent)
        self.controller = controller
        self.folder_field = PathField("Record into folder")
        self.folder_field.edit.setText(str(read_path(RECORD_DIR) or default_recordings_dir()))
        self.record_button = QPushButton("Record")
        self.record_button.setCheckable(True)
        self.record_button.clicked.connect(self.toggle)
        self.recorded_label = QLabel("recorded 0")
        self.queued_label = QLabel("queued 0")
        self.lost_label = QLabel("lost 0")
        self.free_label = QLabel("free -")
        grid = QGridLayout(self)
        grid.addWidget(self.folder_field, 0, 0, 1, 3)
        grid.addWidget(self.record_button, 1, 0)
        grid.addWidget(self.recorded_label, 1, 1)
        grid.addWidget(self.lost_label, 1, 2)
        grid.addWidget(self.queued_label, 2, 1)
        grid.addWidget(self.free_label, 2, 2)
        controller.record_status.connect(self.show_status)

    def toggle(self) -> None:
        """Start recording into the chosen folder, or end the recording."""
        if self.controller.recording is not None:
            self.controller.stop_recording()
            return
        folder = self.folder_field.path()
        if folder is None:
            self._refused("choose a folder to record into")
            return
        try:
            directory = self.controller.start_recording(folder)
        except (DeepscopeError, OSError) as exc:
            self._refused(str(exc))
            return
        write_path(RECORD_DIR, folder)
        self.message.emit(f"recording into {directory}")

    def _refused(self, reason: str) -> None:
        self.record_button.setChecked(False)
        self.message.emit(f"cannot record: {reason}")

    def show_status(self, status: RecordStatus) -> None:
        """Update the counts; at the end of a recording say how it ended."""
        self.recorded_label.setText(f"recorded {status.recorded}")
        self.queued_label.setText(f"queued {status.waiting}")
        self.lost_label.setText(f"lost {status.lost}")
        self.lost_label.setStyleSheet("color: #d02020; font-weight: bold" if status.lost else "")
        self.free_label.setText(f"free {format_bytes(status.free_bytes)}")
        self.record_button.setChecked(not status.done)
        self.record_button.setText("Stop recording" if not status.done else "Record")
        self.folder_field.setEnabled(status.done)
        self.recorded_label.setToolTip(str(status.directory))
        if not status.done:
            return
        if status.error is not None:
            self.message.emit(
                f"recording ended early ({status.error}); {status.recorded} frames kept in "
                f"{status.directory}, {status.lost} lost"
            )
        else:
            self.message.emit(f"recorded {status.recorded} frames into {status.directory}")
