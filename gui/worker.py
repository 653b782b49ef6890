"""Run long work (acquisition, training, snaps) off the GUI thread, report through Qt signals."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

log = logging.getLogger("deepscope.gui")


class BackgroundTask(QObject):
    """One callable run in a named Python thread.

    ``finished(result)`` or ``failed(exception)`` is emitted when it ends; both are delivered
    on the thread that owns this object (the GUI thread), so slots may touch widgets.
    """

    finished = Signal(object)
    failed = Signal(object)

    def __init__(
        self,
        fn: Callable[..., Any],
        *args: Any,
        name: str = "deepscope-gui-task",
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._fn = fn
        self._args = args
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            result = self._fn(*self._args)
        except Exception as exc:  # reported to the GUI, which shows it
            log.debug("background task %s failed", self._thread.name, exc_info=True)
            self.failed.emit(exc)
        else:
            self.finished.emit(result)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    @property
    def running(self) -> bool:
        """True while the callable has not returned."""
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread; return True when it has ended."""
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()
