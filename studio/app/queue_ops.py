"""The app's view of the persistent job queue: changes and re-reads off the GUI thread.

Every write to the queue fsyncs its files, and a re-read scans the job folders, so neither runs
on the GUI thread: :class:`QueueOps` sends them to a one-thread pool (so they apply in the order
they were asked for) and calls back on the GUI thread. In-process changes arrive through
:meth:`JobQueue.subscribe`, changes by other processes (``studio queue …`` in a terminal) through
a :meth:`JobQueue.refresh` every :data:`REFRESH_MS`; either way :attr:`QueueOps.changed` fires on
the GUI thread, where views re-read the queue's memory (cheap, no disk).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot

from studio.service.job_queue import JobQueue

from .tasks import TaskRunner
from .worker import JobFailure

log = logging.getLogger(__name__)

REFRESH_MS = 1000
"""How often the queue is re-read for changes made by other processes (ms)."""


class QueueOps(QObject):
    """Queue changes and refreshes on a background thread; change notices on the GUI thread.

    Signals:
        changed(): the queue (order, pause, a job's state) changed; emitted on the GUI thread.
        failed(JobFailure): a change could not be made (locked queue, full disk, gone job).
        done(): an operation asked through :meth:`submit` ended (tests wait for it).
    """

    changed = Signal()
    failed = Signal(object)
    done = Signal()
    _notice = Signal()

    def __init__(self, queue: JobQueue, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.queue = queue
        self._closed = False
        self._refreshing = False
        self._tasks = TaskRunner(self, threads=1)
        self._notice.connect(self.changed, Qt.ConnectionType.QueuedConnection)
        queue.subscribe(self._on_queue_changed)
        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self.refresh)
        self.timer.start()

    def submit(self, change: Callable[[], Any],
               on_done: Callable[[Any], None] | None = None) -> None:
        """Run ``change()`` (a queue method call) off the GUI thread; ``on_done(result)`` after."""
        def finished(result: Any) -> None:
            if on_done is not None:
                on_done(result)
            self.done.emit()

        def failed(failure: JobFailure) -> None:
            log.warning("queue change failed: %s", failure.message)
            self.failed.emit(failure)
            self.done.emit()

        self._tasks.submit(change, finished, failed)

    @Slot()
    def refresh(self) -> None:
        """Re-read the queue from disk in the background (skipped while one is under way)."""
        if self._refreshing or self._closed:
            return
        self._refreshing = True
        self._tasks.submit(self.queue.refresh, self._refreshed, self._refresh_failed)

    def wait(self, timeout_ms: int = 10_000) -> bool:
        """Block until the changes asked so far are on disk (their callbacks come later)."""
        return self._tasks.wait(timeout_ms)

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Stop refreshing and wait for changes under way; True when all ended."""
        self._closed = True
        self.timer.stop()
        return self._tasks.wait(timeout_ms)

    def _refreshed(self, _result: object) -> None:
        self._refreshing = False

    def _refresh_failed(self, failure: JobFailure) -> None:
        self._refreshing = False
        log.debug("queue refresh failed: %s", failure.message)

    def _on_queue_changed(self) -> None:
        """Listener (any thread): forward the notice to the GUI thread."""
        if not self._closed:
            self._notice.emit()
