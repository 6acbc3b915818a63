"""Window geometry and dock layout in a QSettings ini file under STUDIO_HOME."""

from __future__ import annotations

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMainWindow

from studio.paths import studio_home

STATE_VERSION = 1


def window_settings() -> QSettings:
    return QSettings(str(studio_home() / "window.ini"), QSettings.Format.IniFormat)


def resize_to_default(window: QMainWindow, size: tuple[int, int] = (1360, 860)) -> None:
    """``size``, or 90 % of the screen where that is smaller (first start, no saved layout)."""
    width, height = size
    screen = window.screen()
    if screen is not None:
        available = screen.availableGeometry()
        width = min(width, int(available.width() * 0.9))
        height = min(height, int(available.height() * 0.9))
    window.resize(width, height)


def restore_window(window: QMainWindow) -> bool:
    """Restore geometry and dock state saved by :func:`save_window`; False if none."""
    store = window_settings()
    geometry = store.value("window/geometry")
    state = store.value("window/state")
    restored = False
    if geometry is not None:
        restored = window.restoreGeometry(geometry)
    if state is not None:
        window.restoreState(state, STATE_VERSION)
    return restored


def save_window(window: QMainWindow) -> None:
    store = window_settings()
    store.setValue("window/geometry", window.saveGeometry())
    store.setValue("window/state", window.saveState(STATE_VERSION))
    store.sync()
