"""The main window's widgets and where they dock (construction only; behaviour stays in
:mod:`studio.app.main_window`). The functions set the widgets as attributes of the window they
are given, which is a :class:`~studio.app.main_window.MainWindow`."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QMainWindow, QStackedWidget, QWidget

from studio.service.loras import check_lora

from .history_view import HistoryView
from .lora_panel import LoraPanel
from .models_panel import ModelsPanel
from .player import Player
from .preview_view import PreviewView
from .prompt_panel import PromptPanel
from .queue_view import QueueView
from .reference_drop import ReferencePanel
from .schedule_view import ScheduleView
from .status_bar import JobStatus


def build_widgets(window: QMainWindow) -> None:
    """The window's panels and views, and the stack that shows the preview or the player."""
    window.prompt_panel = PromptPanel(window)
    window.reference_panel = ReferencePanel(window.tasks, window)
    window.models_panel = ModelsPanel(window)
    window.models_panel.set_folders(window.settings.model_folders)
    window.lora_panel = LoraPanel(
        window.tasks, lambda model_id, path: check_lora(window.settings, model_id, path), window)
    window.models_panel.add_section("LoRAs", window.lora_panel)
    window.lora_panel.preset_offered.connect(window.prompt_panel.offer_preset)
    window.schedule_view = ScheduleView(window)
    window.preview_view = PreviewView(window)
    window.player = Player(window)
    window.stack = QStackedWidget(window)
    window.stack.addWidget(window.preview_view)
    window.stack.addWidget(window.player)
    window.setCentralWidget(window.stack)
    window.queue_view = QueueView(window.controller, window.queue_ops, window)
    window.history_view = HistoryView(window.controller, window.queue_ops, window.tasks, window)
    window.job_status = JobStatus(window)
    window.statusBar().addPermanentWidget(window.job_status)  # messages keep the left side


def _dock(window: QMainWindow, title: str, widget: QWidget, area: Qt.DockWidgetArea
          ) -> QDockWidget:
    dock = QDockWidget(title, window)
    dock.setObjectName(f"dock-{title.lower().replace(' ', '-')}")
    dock.setWidget(widget)
    window.addDockWidget(area, dock)
    window.view_menu.addAction(dock.toggleViewAction())
    return dock


def build_docks(window: QMainWindow) -> None:
    """Prompt on the left; models and reference on the right; schedule, queue and history
    tabbed below the centre."""
    left, right = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
    _dock(window, "Prompt", window.prompt_panel, left)
    models = _dock(window, "Models", window.models_panel, right)
    _dock(window, "Reference frame", window.reference_panel, right)
    bottom = Qt.DockWidgetArea.BottomDockWidgetArea
    schedule = _dock(window, "Schedule", window.schedule_view, bottom)
    for title, view in (("Queue", window.queue_view), ("History", window.history_view)):
        window.tabifyDockWidget(schedule, _dock(window, title, view, bottom))
    schedule.raise_()
    # The schedule sits under the preview only; the side columns run the full height.
    window.setCorner(Qt.Corner.BottomLeftCorner, left)
    window.setCorner(Qt.Corner.BottomRightCorner, right)
    window.resizeDocks([models], [430], Qt.Orientation.Horizontal)
