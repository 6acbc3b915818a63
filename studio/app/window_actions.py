"""The window's actions (with shortcuts), menus and toolbar."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu


def make_action(window: QMainWindow, text: str, shortcuts: list[str],
                slot: Callable[[], None]) -> QAction:
    """A window-wide action: its shortcuts work whichever panel has the focus."""
    action = QAction(text, window)
    action.setShortcuts([QKeySequence(s) for s in shortcuts])
    action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    action.triggered.connect(slot)
    window.addAction(action)
    return action


@dataclass(frozen=True, slots=True)
class WindowActions:
    generate: QAction
    cancel: QAction
    export: QAction
    open: QAction
    paste: QAction
    settings: QAction
    quit: QAction
    view_menu: QMenu


def build_actions(window: QMainWindow, slots: dict[str, Callable[[], None]]) -> WindowActions:
    """Actions for ``slots`` (generate, cancel, export, open, paste, settings, quit), the File /
    Job / View menus and the main toolbar."""
    a = WindowActions(
        generate=make_action(window, "Generate", ["Ctrl+Return", "Ctrl+Enter"],
                             slots["generate"]),
        cancel=make_action(window, "Cancel", ["Esc"], slots["cancel"]),
        export=make_action(window, "Export MP4…", ["Ctrl+E"], slots["export"]),
        open=make_action(window, "Open…", ["Ctrl+O"], slots["open"]),
        paste=make_action(window, "Paste reference frame", ["Ctrl+Shift+V"], slots["paste"]),
        settings=make_action(window, "Settings…", ["Ctrl+,"], slots["settings"]),
        quit=make_action(window, "Quit", ["Ctrl+Q"], slots["quit"]),
        view_menu=QMenu("&View", window),
    )
    toolbar = window.addToolBar("Main")
    toolbar.setObjectName("main-toolbar")
    for action in (a.generate, a.cancel, a.export, a.open):
        toolbar.addAction(action)
    file_menu = window.menuBar().addMenu("&File")
    for action in (a.open, a.export, a.paste, a.settings, a.quit):
        file_menu.addAction(action)
    job_menu = window.menuBar().addMenu("&Job")
    job_menu.addAction(a.generate)
    job_menu.addAction(a.cancel)
    window.menuBar().addMenu(a.view_menu)
    return a
