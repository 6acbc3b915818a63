"""The queue dock: the running job with its progress, the queued jobs in order, and the jobs
that failed or were cancelled, with reorder / remove / pause / restart / retry.

Every change goes to :class:`~studio.service.job_queue.JobQueue` through
:class:`~studio.app.queue_ops.QueueOps` (off the GUI thread); the list is rebuilt from the queue
whenever it says it changed, so the disk is the truth and ``studio queue …`` commands run in a
terminal show up here within a second. The running job is never removed: Remove cancels it
through the controller.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from PySide6.QtCore import (
    QAbstractListModel,
    QByteArray,
    QMimeData,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    Signal,
    Slot,
)
from PySide6.QtGui import QAction, QBrush, QColor, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QListView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.service.generation import ProgressEvent
from studio.service.job_queue import Job, JobQueue, JobState

from .controller import JobController
from .job_text import elide, error_text, request_line
from .queue_ops import QueueOps

log = logging.getLogger(__name__)

ID_ROLE = Qt.ItemDataRole.UserRole
JOB_MIME = "application/x-flow-studio-job"
ENDED_SHOWN = 10
"""How many failed / cancelled jobs the queue keeps listed under the queued ones."""
FAILED = QColor("#ef9a9a")
ENDED = QColor("#9e9e9e")
_Index = QModelIndex | QPersistentModelIndex


@dataclass(frozen=True, slots=True)
class StepProgress:
    step: int
    steps: int


def queue_index(order: list[str], queued: list[str], job_id: str, position: int) -> int:
    """The :meth:`JobQueue.move` index that puts ``job_id`` at ``position`` among the queued
    jobs (``queued``: queued ids in order; ``order``: the whole queue, running jobs included)."""
    others = [i for i in queued if i != job_id]
    rest = [i for i in order if i != job_id]
    if position >= len(others):
        return len(rest)
    return rest.index(others[max(0, position)])


class QueueModel(QAbstractListModel):
    """Rows: running jobs, queued jobs in order, then recently failed / cancelled ones.

    Queued rows can be dragged; a drop emits ``move_requested(job_id, position)`` (the position
    among the queued jobs) and changes nothing itself: the list follows the queue.
    """

    move_requested = Signal(str, int)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._jobs: list[Job] = []
        self._progress: dict[str, StepProgress] = {}

    def set_jobs(self, jobs: list[Job]) -> None:
        self.beginResetModel()
        self._jobs = list(jobs)
        self._progress = {k: v for k, v in self._progress.items()
                          if any(j.id == k for j in jobs)}
        self.endResetModel()

    def job_at(self, row: int) -> Job:
        return self._jobs[row]

    def job_ids(self) -> list[str]:
        return [j.id for j in self._jobs]

    def queued_ids(self) -> list[str]:
        return [j.id for j in self._jobs if j.state is JobState.QUEUED]

    def row_of(self, job_id: str) -> int:
        return next((i for i, j in enumerate(self._jobs) if j.id == job_id), -1)

    def set_progress(self, job_id: str, step: int, steps: int) -> None:
        self._progress[job_id] = StepProgress(step, steps)
        row = self.row_of(job_id)
        if row >= 0:
            self.dataChanged.emit(self.index(row), self.index(row))

    def progress_of(self, job_id: str) -> StepProgress | None:
        return self._progress.get(job_id)

    # --- Qt model ---------------------------------------------------------------------------

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt signature
        return 0 if parent.isValid() else len(self._jobs)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        job = self._jobs[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{self._headline(job, index.row())}\n{request_line(job.request)}"
        if role == Qt.ItemDataRole.ToolTipRole:
            return "\n".join(x for x in (job.request.prompt, error_text(job), job.id) if x)
        if role == Qt.ItemDataRole.ForegroundRole and job.state not in (JobState.QUEUED,
                                                                         JobState.RUNNING):
            return QBrush(FAILED if job.state is JobState.FAILED else ENDED)
        if role == ID_ROLE:
            return job.id
        return None

    def _headline(self, job: Job, row: int) -> str:
        prompt = elide(job.request.prompt or "(no prompt)", 48)
        if job.state is JobState.RUNNING:
            p = self._progress.get(job.id)
            step = f"step {p.step}/{p.steps}" if p else "starting"
            return f"▶ Running · {step} · {prompt}"
        if job.state is JobState.QUEUED:
            return f"{self.queued_ids().index(job.id) + 1}. {prompt}"
        if job.state is JobState.FAILED:
            return f"✗ Failed: {elide(error_text(job), 40)} · {prompt}"
        return f"■ Cancelled · {prompt}"

    def flags(self, index: _Index) -> Qt.ItemFlag:
        base = super().flags(index)
        if not index.isValid():
            return base | Qt.ItemFlag.ItemIsDropEnabled
        if self._jobs[index.row()].state is JobState.QUEUED:
            return base | Qt.ItemFlag.ItemIsDragEnabled
        return base

    def supportedDropActions(self) -> Qt.DropAction:
        return Qt.DropAction.MoveAction

    def mimeTypes(self) -> list[str]:
        return [JOB_MIME]

    def mimeData(self, indexes) -> QMimeData:
        data = QMimeData()
        if indexes:
            data.setData(JOB_MIME, QByteArray(self._jobs[indexes[0].row()].id.encode()))
        return data

    def dropMimeData(self, data: QMimeData, action: Qt.DropAction, row: int, column: int,
                     parent: _Index) -> bool:
        """A queued job dropped before view row ``row`` (−1: at the end) asks to move there."""
        if not data.hasFormat(JOB_MIME) or action != Qt.DropAction.MoveAction:
            return False
        job_id = bytes(data.data(JOB_MIME).data()).decode()
        if job_id not in self.queued_ids():
            return False
        row = len(self._jobs) if row < 0 else row
        position = sum(1 for j in self._jobs[:row] if j.state is JobState.QUEUED and j.id != job_id)
        self.move_requested.emit(job_id, position)
        return False  # nothing to remove here: the list is rebuilt from the queue


class QueueView(QWidget):
    """The queue dock's contents; see the module docstring.

    Signals:
        message(str): a short status-bar message ("Job … removed").
    """

    message = Signal(str)

    def __init__(self, controller: JobController, ops: QueueOps,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("queue-view")
        self.controller = controller
        self.ops = ops
        self.model = QueueModel(self)
        self.auto_start = False  # start jobs queued or resumed elsewhere (set once started)
        self._build()
        self._connect()
        self.reload()

    @property
    def queue(self) -> JobQueue:
        return self.ops.queue

    def _build(self) -> None:
        self.list = QListView(self)
        self.list.setObjectName("queue-list")
        self.list.setModel(self.model)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setDragDropMode(QAbstractItemView.DragDropMode.DragDrop)
        self.list.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.list.setDragDropOverwriteMode(False)
        self.list.setDropIndicatorShown(True)
        self.list.setAlternatingRowColors(True)
        self.summary = QLabel(self)
        self.summary.setObjectName("queue-summary")
        self.pause_action = self._action("Pause queue", ["Ctrl+P"], self._on_pause_triggered,
                                         "pause")
        self.pause_action.setCheckable(True)
        self.pause_action.setToolTip("Paused, the running job finishes and the next one waits")
        self.up_action = self._action("Move up", ["Ctrl+Up"], self.move_up, "move-up")
        self.down_action = self._action("Move down", ["Ctrl+Down"], self.move_down, "move-down")
        self.remove_action = self._action("Remove", ["Delete"], self.remove_selected, "remove")
        self.restart_action = self._action("Restart", ["Ctrl+R"], self.restart_selected,
                                           "restart")
        self.restart_action.setToolTip("Queue it again; it continues from its saved state")
        self.retry_action = self._action("Retry", [], self.retry_selected, "retry")
        self.retry_action.setToolTip("Queue a new job with the same settings")
        buttons = QHBoxLayout()
        for action in (self.pause_action, self.up_action, self.down_action, self.remove_action,
                       self.restart_action, self.retry_action):
            button = QToolButton(self)
            button.setDefaultAction(action)
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(buttons)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.summary)

    def _action(self, text: str, keys: list[str], slot, name: str) -> QAction:
        """An action whose shortcuts work while the queue list (or a button) has the focus."""
        action = QAction(text, self)
        action.setObjectName(f"queue-{name}")
        action.setShortcuts([QKeySequence(k) for k in keys])
        action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _connect(self) -> None:
        self.ops.changed.connect(self.reload)
        self.model.move_requested.connect(self.move_to)
        self.model.modelReset.connect(self._update_actions)
        self.list.selectionModel().currentChanged.connect(self._update_actions)
        c = self.controller
        c.job_started.connect(self._on_job_started)
        c.progress.connect(self._on_progress)
        c.busy_changed.connect(self._on_busy_changed)

    # --- reading the queue ------------------------------------------------------------------

    @Slot()
    def reload(self) -> None:
        """Rebuild the list from the queue's memory, keeping the selection; start what can run."""
        selected = self.selected_id()
        pending = self.queue.pending()
        running = [j for j in pending if j.state is JobState.RUNNING]
        queued = [j for j in pending if j.state is JobState.QUEUED]
        ended = [j for j in self.queue.history()
                 if j.state in (JobState.FAILED, JobState.CANCELLED)][:ENDED_SHOWN]
        self.model.set_jobs(running + queued + ended)
        if selected is not None:
            self.select(selected)
        self._show_paused(self.queue.paused)
        paused = " · paused" if self.queue.paused else ""
        self.summary.setText(f"{len(running)} running · {len(queued)} queued{paused}")
        self._update_actions()
        if self.auto_start and queued and not self.queue.paused and not self.controller.busy:
            self.controller.pump()  # jobs added or resumed elsewhere

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

    # --- commands ---------------------------------------------------------------------------

    @Slot()
    def move_up(self) -> None:
        self._move_by(-1)

    @Slot()
    def move_down(self) -> None:
        self._move_by(+1)

    def _move_by(self, delta: int) -> None:
        job = self.selected_job()
        queued = self.model.queued_ids()
        if job is None or job.id not in queued:
            return
        self.move_to(job.id, queued.index(job.id) + delta)

    @Slot(str, int)
    def move_to(self, job_id: str, position: int) -> None:
        """Put a queued job at ``position`` among the queued jobs (0 = next to run)."""
        order = [j.id for j in self.queue.pending()]
        queued = [j.id for j in self.queue.pending() if j.state is JobState.QUEUED]
        if job_id not in queued:
            return
        index = queue_index(order, queued, job_id, max(0, position))
        self.ops.submit(lambda: self.queue.move(job_id, index))

    @Slot()
    def remove_selected(self) -> None:
        """Delete: a queued job leaves the queue; the running one is cancelled (it stays)."""
        job = self.selected_job()
        if job is None:
            return
        if job.state is JobState.RUNNING:
            if self.controller.current_job_id == job.id:
                self.controller.cancel()
                self.message.emit(f"Cancelling job {job.id[:6]}")
            return
        if job.state is JobState.QUEUED:
            self.ops.submit(lambda: self.queue.remove(job.id),
                            lambda _: self.message.emit(f"Removed job {job.id[:6]}"))

    @Slot()
    def restart_selected(self) -> None:
        """Queue a failed / cancelled job again under its id (it resumes from its saved state)."""
        job = self.selected_job()
        if job is not None and job.state in (JobState.FAILED, JobState.CANCELLED):
            self.ops.submit(lambda: self.queue.restart(job.id), self._after_requeue)

    @Slot()
    def retry_selected(self) -> None:
        """Queue a new job with the settings of a failed / cancelled one."""
        job = self.selected_job()
        if job is not None and job.state in (JobState.FAILED, JobState.CANCELLED):
            self.ops.submit(lambda: self.queue.retry(job.id), self._after_requeue)

    def set_paused(self, paused: bool) -> None:
        """Pause (the running job finishes, no new one starts) or resume the queue."""
        self.ops.submit(lambda: self.queue.set_paused(paused), lambda _: self.reload())

    def _after_requeue(self, job: Job) -> None:
        self.message.emit(f"Queued job {job.id[:6]}")
        self.reload()

    # --- reactions --------------------------------------------------------------------------

    @Slot(bool)
    def _on_pause_triggered(self, paused: bool) -> None:
        """The toggle was clicked (``triggered`` fires for the user only, not for setChecked)."""
        self.pause_action.setText("Resume queue" if paused else "Pause queue")
        self.set_paused(paused)

    def _show_paused(self, paused: bool) -> None:
        self.pause_action.setChecked(paused)
        self.pause_action.setText("Resume queue" if paused else "Pause queue")

    @Slot(str)
    def _on_job_started(self, job_id: str) -> None:
        try:
            steps = self.queue.get(job_id).request.steps
        except KeyError:
            return
        self.model.set_progress(job_id, 0, steps)

    @Slot(object)
    def _on_progress(self, progress: ProgressEvent) -> None:
        self.model.set_progress(progress.job_id, progress.step, progress.steps)

    @Slot(bool)
    def _on_busy_changed(self, _busy: bool) -> None:
        self._update_actions()

    @Slot()
    def _update_actions(self, *_args) -> None:
        job = self.selected_job()
        state = job.state if job is not None else None
        queued = self.model.queued_ids()
        position = queued.index(job.id) if job is not None and job.id in queued else -1
        self.up_action.setEnabled(position > 0)
        self.down_action.setEnabled(0 <= position < len(queued) - 1)
        ours = job is not None and self.controller.current_job_id == job.id
        self.remove_action.setEnabled(state is JobState.QUEUED or ours)
        ended = state in (JobState.FAILED, JobState.CANCELLED)
        self.restart_action.setEnabled(ended)
        self.retry_action.setEnabled(ended)
