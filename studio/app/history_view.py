"""The history gallery: finished (and failed or cancelled) jobs, newest first, with thumbnails.

Selecting a job shows its recipe (a readable summary and the full JSON) and plays its video;
actions re-open it in the prompt panel, decode its saved latent again (on the worker, through
the controller), show it in the file manager, or delete it with its files (after asking).
Thumbnails are PNGs the service writes when a job finishes; older jobs get theirs made in the
task pool. The GUI thread reads no video and writes no file.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QModelIndex, QSize, Qt, QUrl, Signal, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QLabel,
    QListView,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from studio.engine.request import GenerationRequest
from studio.media.json_file import MAX_JSON_BYTES, read_small_json
from studio.service.job_queue import Job, JobQueue, JobState

from .controller import JobController
from .history_model import ID_ROLE, HistoryModel, load_thumbnail, saved_latent
from .job_text import recipe_summary
from .queue_ops import QueueOps
from .tasks import TaskRunner
from .worker import JobFailure

log = logging.getLogger(__name__)


def recipe_text(job: Job) -> str:
    """The job's full recipe as indented JSON (run in the task pool: it reads a file).

    The recipe written beside the video, else the job folder's copy, else the job record.
    """
    result = job.result or {}
    for candidate in (result.get("recipe_path"), job.files.recipe):
        if candidate and Path(candidate).is_file():
            recipe = read_small_json(Path(candidate), MAX_JSON_BYTES)
            if recipe is not None:
                return json.dumps(recipe, indent=2, ensure_ascii=False)
            log.info("recipe %s unreadable", candidate)
    return json.dumps(job.to_dict(), indent=2, ensure_ascii=False)


def existing_video(job: Job) -> str | None:
    """The job's video path when the file is still there (task pool)."""
    video = (job.result or {}).get("video_path")
    return str(video) if video and Path(video).is_file() else None


def request_to_reopen(request: GenerationRequest) -> tuple[GenerationRequest, int]:
    """The request without reference frames whose image file is gone, and how many were."""
    kept = tuple(c for c in request.conditioning if Path(c.image).is_file())
    return replace(request, conditioning=kept), len(request.conditioning) - len(kept)


class HistoryView(QWidget):
    """The history dock's contents.

    Signals:
        reopen_requested(GenerationRequest, str): fill the prompt panel (label for the status).
        play_requested(str): play this video in the player.
        deleted(str): this job and its files were deleted.
        message(str): a short status-bar message.
    """

    reopen_requested = Signal(object, str)
    play_requested = Signal(str)
    deleted = Signal(str)
    message = Signal(str)

    def __init__(self, controller: JobController, ops: QueueOps, tasks: TaskRunner,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("history-view")
        self.controller = controller
        self.ops = ops
        self.tasks = tasks
        self.thumbnail_tasks = TaskRunner(self, threads=1)  # old jobs' thumbnails queue here
        self.model = HistoryModel(self)
        self.confirm_box: QMessageBox | None = None
        self._loading: set[str] = set()
        self._shown: Job | None = None  # the job whose details are on show
        self._build()
        self._connect()
        self.reload()

    @property
    def queue(self) -> JobQueue:
        return self.ops.queue

    def _build(self) -> None:
        self.list = QListView(self)
        self.list.setObjectName("history-list")
        self.list.setModel(self.model)
        self.list.setViewMode(QListView.ViewMode.IconMode)
        self.list.setResizeMode(QListView.ResizeMode.Adjust)
        self.list.setMovement(QListView.Movement.Static)
        self.list.setWrapping(True)
        self.list.setUniformItemSizes(True)
        self.list.setIconSize(QSize(160, 120))
        self.list.setGridSize(QSize(184, 196))
        self.list.setWordWrap(True)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.summary = QLabel("Select a job to see its recipe", self)
        self.summary.setObjectName("history-summary")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.recipe = QPlainTextEdit(self)
        self.recipe.setObjectName("history-recipe")
        self.recipe.setReadOnly(True)
        self.reopen_button = self._button("Re-open", "reopen", self.reopen)
        self.reopen_button.setToolTip("Fill the prompt panel with this job's settings")
        self.decode_button = self._button("Decode again", "decode-again", self.decode_again)
        self.folder_button = self._button("Show in folder", "show-in-folder",
                                          self.show_in_folder)
        self.delete_button = self._button("Delete…", "delete", self.ask_delete)
        self._lay_out()

    def _button(self, text: str, name: str, slot) -> QPushButton:
        button = QPushButton(text, self)
        button.setObjectName(f"history-{name}")
        button.clicked.connect(slot)
        return button

    def _lay_out(self) -> None:
        # Two by two, so the details column stays narrow and the gallery keeps its columns.
        buttons = QGridLayout()
        for i, button in enumerate((self.reopen_button, self.decode_button, self.folder_button,
                                    self.delete_button)):
            buttons.addWidget(button, i // 2, i % 2)
        details = QWidget(self)
        column = QVBoxLayout(details)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(buttons)
        column.addWidget(self.summary)
        column.addWidget(self.recipe, 1)
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.addWidget(self.list)
        splitter.addWidget(details)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setSizes([3000, 2000])  # relative: the gallery gets three fifths at first
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(splitter)

    def _connect(self) -> None:
        self.ops.changed.connect(self.reload)
        self.list.selectionModel().currentChanged.connect(self._on_current_changed)
        self.model.modelReset.connect(self._update_buttons)

    # --- reading ----------------------------------------------------------------------------

    @Slot()
    def reload(self) -> None:
        """Rebuild the gallery from the queue's history, keeping the selection."""
        selected = self.selected_id()
        self.model.set_jobs(self.queue.history())
        if selected is not None and self.model.row_of(selected) >= 0:
            self.list.setCurrentIndex(self.model.index(self.model.row_of(selected)))
        elif selected is not None:
            self._show_details(None)
        self._load_missing_thumbnails()
        self._update_buttons()

    def _load_missing_thumbnails(self) -> None:
        for job in self.model.jobs():
            if self.model.needs_thumbnail(job.id) and job.id not in self._loading:
                self._loading.add(job.id)
                self.thumbnail_tasks.submit(
                    lambda job=job: load_thumbnail(job),
                    lambda image, i=job.id: self._thumbnail_loaded(i, image),
                    lambda failure, i=job.id: self._thumbnail_failed(i, failure))

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Wait for thumbnails being made; True when none is left."""
        return self.thumbnail_tasks.wait(timeout_ms)

    def _thumbnail_loaded(self, job_id: str, image) -> None:
        self._loading.discard(job_id)
        self.model.set_thumbnail(job_id, image)

    def _thumbnail_failed(self, job_id: str, failure: JobFailure) -> None:
        self._loading.discard(job_id)
        log.info("no thumbnail for job %s: %s", job_id, failure.message)
        self.model.set_thumbnail(job_id, None)

    def selected_id(self) -> str | None:
        index = self.list.currentIndex()
        return self.model.data(index, ID_ROLE) if index.isValid() else None

    def selected_job(self) -> Job | None:
        index = self.list.currentIndex()
        return self.model.job_at(index.row()) if index.isValid() else None

    def select(self, job_id: str) -> None:
        row = self.model.row_of(job_id)
        if row >= 0:
            self.list.setCurrentIndex(self.model.index(row))

    @Slot(QModelIndex, QModelIndex)
    def _on_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self._show_details(self.model.job_at(current.row()) if current.isValid() else None)

    def _show_details(self, job: Job | None) -> None:
        """Summary now, recipe JSON and playback from the task pool.

        The same job selected again after the gallery was rebuilt is not played again (a newer
        result on screen stays); its texts are refreshed if the job changed.
        """
        self._update_buttons()
        shown, self._shown = self._shown, job
        if job is None:
            self.summary.setText("Select a job to see its recipe")
            self.recipe.setPlainText("")
            return
        again = shown is not None and shown.id == job.id
        if again and shown == job:
            return
        self.summary.setText(recipe_summary(job))
        self.tasks.submit(lambda: (recipe_text(job), existing_video(job)),
                          lambda found: self._details_loaded(job.id, *found, play=not again))

    def _details_loaded(self, job_id: str, text: str, video: str | None, play: bool) -> None:
        if self.selected_id() != job_id:
            return  # the selection moved on meanwhile
        self.recipe.setPlainText(text)
        if video is not None and play:
            self.play_requested.emit(video)

    # --- commands ---------------------------------------------------------------------------

    @Slot()
    def reopen(self) -> None:
        """Fill the prompt panel with the selected job's request (seed and reference too)."""
        job = self.selected_job()
        if job is None:
            return
        request, missing = request_to_reopen(job.request)
        self.reopen_requested.emit(request, f"job {job.id[:6]}")
        if missing:
            self.message.emit(f"{missing} reference image(s) of job {job.id[:6]} no longer "
                              "exist and were left out")

    @Slot()
    def decode_again(self) -> None:
        """Make the video again from the job's saved latent (on the worker, no sampling)."""
        job = self.selected_job()
        if job is not None and saved_latent(job) is not None:
            self.controller.decode_again(job.id)
            self.message.emit(f"Decoding job {job.id[:6]} again")

    @Slot()
    def show_in_folder(self) -> None:
        job = self.selected_job()
        if job is None:
            return
        video = (job.result or {}).get("video_path")
        folder = Path(video).parent if video else job.folder
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    @Slot()
    def ask_delete(self) -> None:
        """Ask (non-blocking) before deleting the selected job and its files."""
        job = self.selected_job()
        if job is None:
            return
        box = QMessageBox(QMessageBox.Icon.Question, "Delete job",
                          f"Delete job {job.id[:6]} and its files (video, recipe, latent)?",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                          self)
        box.setObjectName("history-confirm-delete")
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.buttonClicked.connect(lambda button, job_id=job.id: self._on_confirm(
            box.standardButton(button), job_id))
        box.finished.connect(self._forget_box)
        self.confirm_box = box
        box.open()

    def delete(self, job_id: str) -> None:
        """Delete an ended job with its files (no question asked)."""
        self.ops.submit(lambda: self.queue.delete(job_id), lambda _: self._deleted(job_id))

    def _deleted(self, job_id: str) -> None:
        self.deleted.emit(job_id)
        self.message.emit(f"Deleted job {job_id[:6]}")

    def _on_confirm(self, button: QMessageBox.StandardButton, job_id: str) -> None:
        if button == QMessageBox.StandardButton.Yes:
            self.delete(job_id)

    @Slot()
    def _forget_box(self) -> None:
        self.confirm_box = None

    @Slot()
    def _update_buttons(self, *_args) -> None:
        job = self.selected_job()
        self.reopen_button.setEnabled(job is not None)
        self.decode_button.setEnabled(job is not None and saved_latent(job) is not None)
        self.folder_button.setEnabled(job is not None)
        self.delete_button.setEnabled(job is not None and job.state is not JobState.RUNNING)
