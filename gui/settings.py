"""What the window remembers between sessions (Qt ``QSettings``, an INI file per user).

Under ``~/.config/deepscope/deepscope.ini`` on Linux. Tests point the user scope at a
temporary folder (``QSettings.setPath``) so that they never read or change a person's settings.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

ORGANISATION = "deepscope"
APPLICATION = "deepscope"

GEOMETRY = "window/geometry"
MODEL_DIR = "live/model_dir"
RECORD_DIR = "live/record_dir"


def app_settings() -> QSettings:
    """The user's deepscope settings."""
    return QSettings(
        QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANISATION, APPLICATION
    )


def read_path(key: str) -> Path | None:
    """The path stored under *key*, or None."""
    value = app_settings().value(key)
    return Path(value) if isinstance(value, str) and value else None


def write_path(key: str, path: Path) -> None:
    """Remember *path* under *key*."""
    app_settings().setValue(key, str(path))


def read_geometry() -> QByteArray | None:
    """The saved window geometry, or None."""
    value = app_settings().value(GEOMETRY)
    return value if isinstance(value, QByteArray) else None


def write_geometry(geometry: QByteArray) -> None:
    """Remember the window geometry."""
    app_settings().setValue(GEOMETRY, geometry)
