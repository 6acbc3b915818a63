"""The main window: docks, actions and shortcuts, and the wiring between them.

Left: the prompt panel. Right: models and the reference frame. Bottom: the schedule plot, the
queue and the history gallery (tabs).
Centre: the live preview while a job runs, the result player afterwards. Work happens in the
:class:`~studio.app.controller.JobController`'s thread and the task pool; this class only
connects signals to slots and moves data between panels.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QMainWindow, QToolButton, QWidget

from studio.engine.request import GenerationRequest
from studio.errors import StudioError
from studio.service.catalog import default_model_id
from studio.service.cleanup import remove_leftovers
from studio.service.forecast import forecast_request
from studio.service.generation import GenerationService
from studio.service.job_queue import JobQueue
from studio.service.model_info import ModelInfo, ModelRow, model_rows
from studio.service.process_memory import MemoryUsage
from studio.service.schedule_chart import chart_for
from studio.service.settings import Settings, save_settings

from .controller import JobController
from .dialogs import ErrorReporter
from .file_actions import FileActions, is_recipe_file
from .queue_ops import QueueOps
from .reference_drop import local_paths
from .settings_dialog import SettingsDialog
from .tasks import TaskRunner
from .window_actions import build_actions
from .window_jobs import JobEventsMixin
from .window_layout import build_docks, build_widgets
from .window_state import resize_to_default, restore_window, save_window
from .worker import JobFailure, describe_failure

log = logging.getLogger(__name__)

Catalog = Callable[[Settings], list[ModelRow]]


def memory_forecast_text(info: ModelInfo, request: GenerationRequest) -> str:
    """The forecast peak memory of ``request`` in words ("" when the model has no forecast)."""
    try:
        forecast = forecast_request(info, request)
    except (StudioError, ValueError) as exc:
        log.debug("no memory forecast: %s", exc)
        return ""
    return forecast.describe() if forecast is not None else ""


class MainWindow(JobEventsMixin, QMainWindow):
    """Flow Studio's window.

    Signals:
        result_shown(str): a finished video is loaded into the player (its path).
    """

    result_shown = Signal(str)

    def __init__(self, settings: Settings, service: GenerationService, queue: JobQueue,
                 catalog: Catalog = model_rows, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("main-window")
        self.setWindowTitle("Flow Studio")
        self.setAcceptDrops(True)
        self.settings = settings
        self._catalog = catalog
        self._info: ModelInfo | None = None
        self._pending_request = None
        self.shown_video: Path | None = None
        """The video in the player (the last finished job, or a job played from the history)."""
        self.tasks = TaskRunner(self)
        self.reporter = ErrorReporter(self)
        self.tasks.on_unhandled_error = self.reporter.report
        self.controller = JobController(service, queue, self)
        self.queue_ops = QueueOps(queue, self)
        self.files = FileActions(self.tasks, self, self._known_model_ids)
        self._schedule_timer = QTimer(self)  # 0-ms debounce: one redraw per burst of edits
        self._schedule_timer.setSingleShot(True)
        self._schedule_timer.setInterval(0)
        self._schedule_timer.timeout.connect(self.update_schedule)
        build_widgets(self)
        self._build_actions()
        build_docks(self)
        self._connect()
        if not restore_window(self):
            resize_to_default(self)
        self._update_actions()

    # --- construction -----------------------------------------------------------------------

    def _build_actions(self) -> None:
        self.window_actions = build_actions(self, {
            "generate": self.generate, "cancel": self.cancel, "export": self.export,
            "open": self._open_dialog, "paste": self.reference_panel.paste,
            "settings": self.open_settings, "quit": self.close,
        })
        self.generate_action = self.window_actions.generate
        self.cancel_action = self.window_actions.cancel
        self.export_action = self.window_actions.export
        self.paste_action = self.window_actions.paste
        self.view_menu = self.window_actions.view_menu
        for action in (self.generate_action, self.cancel_action):
            button = QToolButton(self.prompt_panel)
            button.setDefaultAction(action)
            button.setObjectName(f"{action.text().lower()}-button")
            self.prompt_panel.button_row.addWidget(button)
        self.player.export_button.setDefaultAction(self.export_action)

    def _connect(self) -> None:
        c = self.controller
        c.job_started.connect(self._on_job_started)
        c.stage_changed.connect(self.job_status.stage_changed)
        c.stage_changed.connect(self._on_stage)
        c.progress.connect(self._on_progress)
        c.preview.connect(self.preview_view.show_preview)
        c.job_finished.connect(self._on_job_finished)
        c.job_failed.connect(self._on_job_failed)
        c.job_cancelled.connect(self._on_job_cancelled)
        c.busy_changed.connect(self._update_actions)
        c.model_loaded.connect(self._on_model_loaded)
        c.model_unloaded.connect(self._on_model_unloaded)
        c.model_failed.connect(self._on_model_failed)
        self.prompt_panel.changed.connect(self._schedule_timer.start)
        self.prompt_panel.validity_changed.connect(self._update_actions)
        self.reference_panel.changed.connect(self._schedule_timer.start)
        self.player.image_dropped.connect(self._on_image_dropped_on_frame)
        self.models_panel.load_requested.connect(self.load_model)
        self.models_panel.unload_requested.connect(self.controller.unload_model)
        self.models_panel.folders_changed.connect(self._on_folders_changed)
        self.models_panel.rescan_requested.connect(self.rescan_models)
        self.files.exported.connect(self._on_exported)
        self.files.request_loaded.connect(self._on_request_loaded)
        self.files.recipe_notes.connect(self._on_recipe_notes)
        self.files.failed.connect(self.reporter.report)
        self.queue_ops.failed.connect(self.reporter.report)
        self.history_view.reopen_requested.connect(self._on_request_loaded)
        self.history_view.play_requested.connect(self._play)
        self.history_view.deleted.connect(self._on_job_deleted)
        for view in (self.queue_view, self.history_view):
            view.message.connect(lambda text: self.statusBar().showMessage(text, 5000))

    def start(self, model_id: str | None = None) -> None:
        """Scan the model folders, load the default model (or ``model_id``) and resume the queue.

        Jobs left queued (or running) by an earlier session that ended or crashed run first,
        in their saved order, resuming from their sampling checkpoints; what interrupted runs
        left and nobody can use is removed.
        """
        self.rescan_models()
        outputs = self.settings.outputs
        self.tasks.submit(lambda: remove_leftovers([outputs]), lambda _removed: None)
        self.load_model(model_id or self.settings.default_model or default_model_id())
        self.queue_view.auto_start = True
        self.controller.pump()

    # --- commands ---------------------------------------------------------------------------

    @Slot()
    def generate(self) -> None:
        """Queue the request on screen (Ctrl+Enter); it runs when the worker is free."""
        if self._info is None:
            self.statusBar().showMessage("Load a model first", 5000)
            return
        if not self.prompt_panel.is_valid():
            self.statusBar().showMessage("Fix the size first: "
                                         + self.prompt_panel.size.banner.text(), 8000)
            return
        self.prompt_panel.prepare_seed()
        request = self.prompt_panel.request(self.reference_panel.items()).with_changes(
            loras=self.lora_panel.items(), lora_mode=self.lora_panel.lora_mode())
        try:
            job_id = self.controller.submit(request)
        except StudioError as exc:
            self.reporter.report(describe_failure(exc))
            return
        self.statusBar().showMessage(f"Queued job {job_id[:6]}", 3000)

    @Slot()
    def cancel(self) -> None:
        if self.controller.busy:
            self.controller.cancel()
            self.job_status.stage.setText("Cancelling…")

    @Slot()
    def export(self) -> None:
        """Ctrl+E: save the video in the player (with its recipe) where the user says."""
        if self.shown_video is None:
            self.statusBar().showMessage("Nothing to export yet", 4000)
            return
        self.files.ask_export(self.shown_video)

    def export_to(self, target: Path) -> None:
        """Export the video in the player to ``target`` (no dialog); ``files.exported`` tells."""
        assert self.shown_video is not None, "no video to export"
        self.files.export(self.shown_video, Path(target))

    def open_path(self, path: Path) -> None:
        """A recipe (MP4 / JSON) restores settings, a .safetensors file is added as a LoRA;
        anything else is tried as a reference."""
        if is_recipe_file(path):
            self.files.read_request(path)
        elif Path(path).suffix.lower() == ".safetensors":
            self.lora_panel.add(str(path))
        else:
            self.reference_panel.load_path(str(path))

    @Slot(str, int)
    def _on_image_dropped_on_frame(self, path: str, frame: int) -> None:
        """An image dropped on a frame of the player pins that frame of the next job."""
        frames = self.prompt_panel.size.values()[2]
        self.reference_panel.add_keyframe(path, min(frame, frames - 1))

    @Slot()
    def _open_dialog(self) -> None:
        path = self.files.ask_open_path()
        if path is not None:
            self.open_path(path)

    @Slot(str)
    def load_model(self, model_id: str) -> None:
        self.models_panel.set_loading(model_id)
        self.controller.load_model(model_id)

    @Slot()
    def rescan_models(self) -> None:
        self.models_panel.set_scanning()
        settings, catalog = self.settings, self._catalog
        self.tasks.submit(lambda: catalog(settings), self.models_panel.set_rows,
                          self._on_scan_failed)

    @Slot()
    def update_schedule(self) -> None:
        """Redraw the schedule for the settings on screen (or the running job's)."""
        if self._info is None:
            self.schedule_view.set_chart(None, "Load a model to see the schedule")
            return
        if not self.prompt_panel.size.is_valid():
            self.schedule_view.set_chart(None, "Fix the size to see the schedule")
            self.prompt_panel.show_shift(None)
            self.prompt_panel.size.set_forecast("")
            return
        request = self.prompt_panel.request(self.reference_panel.items())
        self.reference_panel.set_frame_count(request.frames)
        try:
            chart = chart_for(self._info, request)
        except StudioError as exc:
            self.schedule_view.set_chart(None, str(exc))
            return
        self.prompt_panel.show_shift(chart.shift)
        self.prompt_panel.size.set_forecast(memory_forecast_text(self._info, request))
        if not self.controller.busy:
            self.schedule_view.set_chart(chart)

    def shutdown(self) -> bool:
        """Stop the worker and background tasks; True when every thread ended."""
        self.reporter.close_all()
        done = self.queue_ops.shutdown()
        done = self.history_view.shutdown() and done
        done = self.controller.shutdown() and done
        return self.tasks.wait() and done

    # --- models -----------------------------------------------------------------------------

    @Slot(object, object)
    def _on_model_loaded(self, info: ModelInfo, memory: MemoryUsage) -> None:
        self._info = info
        self.prompt_panel.set_model(info)
        self.lora_panel.set_model(info.id)
        self.reference_panel.set_supported(info.supports_image, info.name, info.conditioning)
        self.reference_panel.set_temporal_factor(info.geometry.temporal_factor)
        self.models_panel.set_loaded(info, memory)
        pending, self._pending_request = self._pending_request, None
        if pending is not None:
            self._apply_request(pending)
        self._update_actions()
        self._schedule_timer.start()

    @Slot(object)
    def _on_model_unloaded(self, memory: MemoryUsage) -> None:
        self.models_panel.set_loaded(None, memory)

    @Slot(object)
    def _on_model_failed(self, failure: JobFailure) -> None:
        self._pending_request = None
        self.models_panel.set_error(f"{failure.message}. {failure.hint}".strip(". "))
        self.reporter.report(failure)

    def _on_scan_failed(self, failure: JobFailure) -> None:
        self.models_panel.set_error(f"Scanning failed: {failure.message}")

    @Slot(tuple)
    def _on_folders_changed(self, folders: tuple[str, ...]) -> None:
        self.apply_settings(self.settings.with_changes(model_folders=tuple(folders)))

    @Slot()
    def open_settings(self) -> None:
        """The settings dialog (non-blocking); accepted changes are saved and applied."""
        self.settings_dialog = SettingsDialog(self.settings, self)
        self.settings_dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.settings_dialog.accepted.connect(self._on_settings_accepted)
        self.settings_dialog.open()

    @Slot()
    def _on_settings_accepted(self) -> None:
        self.apply_settings(self.settings_dialog.settings())

    def apply_settings(self, settings: Settings) -> None:
        """Save ``settings`` and hand them to the worker (used from the next job on)."""
        rescan = (settings.model_folders, settings.shared_model_folders) != (
            self.settings.model_folders, self.settings.shared_model_folders)
        self.settings = settings
        try:
            save_settings(settings)
        except StudioError as exc:
            self.reporter.report(describe_failure(exc))
        self.controller.apply_settings(settings)
        if rescan:
            self.rescan_models()

    # --- files ------------------------------------------------------------------------------

    @Slot(str)
    def _on_exported(self, path: str) -> None:
        self.statusBar().showMessage(f"Exported {path}", 8000)

    @Slot(object, str)
    def _on_request_loaded(self, request, path: str) -> None:
        if self._info is not None and request.model in ("", self._info.id):
            self._apply_request(request)
        else:
            self._pending_request = request
            self.load_model(request.model)
        self.statusBar().showMessage(f"Settings restored from {Path(path).name}", 8000)

    def _known_model_ids(self) -> list[str]:
        """The ids of the user's model sets (the catalogue; runs in the task pool)."""
        return [row.id for row in self._catalog(self.settings)]

    def _on_recipe_notes(self, notes: list[str]) -> None:
        """Say what a recipe pointed at that was not restored, and how to use it anyway."""
        self.reporter.report(JobFailure(
            "Some of the recipe was not restored", "; ".join(notes).capitalize() + ".",
            "Load the model from the Models panel, or drop the reference image on the window, "
            "if you want to use them."))

    def _apply_request(self, request) -> None:
        self.prompt_panel.set_request(request)
        self.reference_panel.set_frame_count(request.frames)
        self.reference_panel.set_items(request.conditioning)
        self.lora_panel.set_items(request.loras, request.lora_mode)
        self._schedule_timer.start()

    @Slot()
    def _update_actions(self) -> None:
        self.generate_action.setEnabled(self._info is not None and self.prompt_panel.is_valid())
        self.cancel_action.setEnabled(self.controller.busy)
        self.export_action.setEnabled(self.shown_video is not None)

    # --- Qt overrides -----------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if local_paths(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = local_paths(event.mimeData())
        if paths:
            event.acceptProposedAction()
            recipes = [path for path in paths if is_recipe_file(path)]
            for path in recipes[:1] or paths:  # one recipe; every image a keyframe
                self.open_path(path)

    def closeEvent(self, event: QCloseEvent) -> None:
        save_window(self)
        if not self.shutdown():
            log.warning("some background work did not stop in time")
        super().closeEvent(event)
