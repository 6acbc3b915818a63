"""Short background tasks (scan folders, read an image, decode a video, copy a file).

The GUI thread never waits on disk or ffmpeg. :meth:`TaskRunner.submit` runs a plain function on
a small thread pool; its result (or a :class:`~studio.app.worker.JobFailure`) comes back through a
queued signal to a slot of the runner, which lives on the GUI thread, and only then is the
callback called — so callbacks may touch widgets. Results should be plain data or QImages.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

from .worker import JobFailure, describe_failure

log = logging.getLogger(__name__)

DoneCallback = Callable[[Any], None]
ErrorCallback = Callable[[JobFailure], None]


class _Task(QRunnable):
    def __init__(self, runner: TaskRunner, task_id: int, fn: Callable[[], Any]) -> None:
        super().__init__()
        self._runner = runner
        self._id = task_id
        self._fn = fn

    def run(self) -> None:
        try:
            result = self._fn()
        except Exception as exc:  # reported to the GUI, never lost
            log.info("background task %d failed: %s", self._id, exc, exc_info=True)
            self._runner.task_done.emit(self._id, None, describe_failure(exc))
        else:
            self._runner.task_done.emit(self._id, result, None)


class TaskRunner(QObject):
    """Runs functions off the GUI thread and calls back on it.

    Signals:
        task_done(task_id, result, failure_or_None): emitted on the pool thread, delivered to
            :meth:`_deliver` on the GUI thread.
        idle(): no task is pending any more.
    """

    task_done = Signal(int, object, object)
    idle = Signal()

    def __init__(self, parent: QObject | None = None, threads: int = 2) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(threads)
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[DoneCallback, ErrorCallback | None]] = {}
        self.task_done.connect(self._deliver)
        self.on_unhandled_error: ErrorCallback | None = None

    @property
    def pending(self) -> int:
        return len(self._pending)

    def submit(self, fn: Callable[[], Any], on_done: DoneCallback,
               on_error: ErrorCallback | None = None) -> int:
        """Run ``fn()`` in the pool; then ``on_done(result)`` or ``on_error(failure)``."""
        task_id = next(self._ids)
        self._pending[task_id] = (on_done, on_error)
        self._pool.start(_Task(self, task_id, fn))
        return task_id

    def wait(self, timeout_ms: int = 10_000) -> bool:
        """Block until every running task ended (for shutdown); True when all did."""
        return self._pool.waitForDone(timeout_ms)

    @Slot(int, object, object)
    def _deliver(self, task_id: int, result: Any, failure: JobFailure | None) -> None:
        on_done, on_error = self._pending.pop(task_id, (None, None))
        if on_done is None:
            return
        if failure is None:
            on_done(result)
        elif on_error is not None:
            on_error(failure)
        elif self.on_unhandled_error is not None:
            self.on_unhandled_error(failure)
        else:
            log.error("%s: %s", failure.title, failure.message)
        if not self._pending:
            self.idle.emit()
