"""JobController: the queue ↔ worker bridge, living on the GUI thread.

It owns one long-lived QThread running the :class:`~studio.app.worker.GenerationWorker`.
Requests go into the persistent :class:`~studio.service.job_queue.JobQueue`; whenever the worker is
idle the controller takes the next queued job and hands it over through a queued signal.
Cancellation is not a signal: :meth:`cancel` sets the running job's CancelToken directly, so a
busy worker sees it at its next step. Widgets connect only to the controller's signals.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

from PySide6.QtCore import QObject, QThread, Signal, Slot

from studio.engine.cancel import CancelToken
from studio.engine.request import GenerationRequest
from studio.service.generation import GenerationService, JobResult
from studio.service.job_queue import JobQueue
from studio.service.outcome import Ending, JobOutcome, record_outcome
from studio.service.settings import Settings

from .worker import DecodeItem, GenerationWorker, JobFailure, WorkItem

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunningJob:
    job_id: str
    cancel: CancelToken
    decode: bool = False  # a "decode again" of an ended job, not a queued job


class JobController(QObject):
    """Feeds queued jobs to the worker one at a time and reports what happens.

    Signals (all emitted on the GUI thread):
        job_started(job_id), stage_changed(job_id, stage), progress(ProgressEvent),
        preview(job_id, step, list[QImage]), job_finished(job_id, JobResult),
        job_failed(job_id, JobFailure), job_cancelled(job_id), busy_changed(bool),
        model_loaded(ModelInfo, MemoryUsage), model_unloaded(MemoryUsage),
        model_failed(JobFailure).
    """

    # to the worker (queued: the worker lives on its own thread)
    run_requested = Signal(object)
    decode_requested = Signal(object)
    load_requested = Signal(str)
    unload_requested = Signal()
    settings_requested = Signal(object)

    job_started = Signal(str)
    stage_changed = Signal(str, str)
    progress = Signal(object)
    preview = Signal(str, int, object)
    job_finished = Signal(str, object)
    job_failed = Signal(str, object)
    job_cancelled = Signal(str)
    busy_changed = Signal(bool)
    model_loaded = Signal(object, object)
    model_unloaded = Signal(object)
    model_failed = Signal(object)

    def __init__(self, service: GenerationService, queue: JobQueue,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.queue = queue
        self._running: RunningJob | None = None
        self._decodes: deque[str] = deque()  # ended jobs to decode again, before queued ones
        self._closing = False
        self._thread = QThread()
        self._thread.setObjectName("generation-worker")
        self._worker = GenerationWorker(service)
        self._worker.moveToThread(self._thread)
        self._thread.finished.connect(self._worker.deleteLater)
        self._connect_worker()
        self._thread.start()

    def _connect_worker(self) -> None:
        w = self._worker
        self.run_requested.connect(w.run)
        self.decode_requested.connect(w.decode_again)
        self.load_requested.connect(w.load_model)
        self.unload_requested.connect(w.unload_model)
        self.settings_requested.connect(w.apply_settings)
        w.started.connect(self.job_started)
        w.stage.connect(self.stage_changed)
        w.progress.connect(self.progress)
        w.preview.connect(self.preview)
        w.finished.connect(self._on_finished)
        w.failed.connect(self._on_failed)
        w.cancelled.connect(self._on_cancelled)
        w.model_loaded.connect(self.model_loaded)
        w.model_unloaded.connect(self.model_unloaded)
        w.model_failed.connect(self.model_failed)

    # --- commands from the GUI -----------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._running is not None

    @property
    def current_job_id(self) -> str | None:
        return self._running.job_id if self._running else None

    @property
    def stopped(self) -> bool:
        """Whether the worker thread has ended (after :meth:`shutdown`)."""
        return self._thread.isFinished()

    def submit(self, request: GenerationRequest) -> str:
        """Queue a request (validated by the queue) and start it when the worker is idle."""
        job = self.queue.add(request)
        log.info("queued job %s", job.id)
        self.pump()
        return job.id

    def decode_again(self, job_id: str) -> None:
        """Decode an ended job's saved latent again on the worker (before the next queued job).

        A failed or cancelled job becomes finished with the new video; a finished job keeps its
        record (the new MP4 is another output), as ``studio queue decode`` does.
        """
        if job_id not in self._decodes:
            self._decodes.append(job_id)
        self.pump()

    def cancel(self) -> None:
        """Cancel the running job; the worker stops before its next model call."""
        if self._running is not None:
            log.info("cancelling job %s", self._running.job_id)
            self._running.cancel.set()

    def load_model(self, model_id: str) -> None:
        self.load_requested.emit(model_id)

    def unload_model(self) -> None:
        self.unload_requested.emit()

    def apply_settings(self, settings: Settings) -> None:
        self.settings_requested.emit(settings)

    def pump(self) -> None:
        """Hand the next queued job to the worker if it is idle."""
        if self._running is not None or self._closing:
            return
        if self._decodes:
            job_id = self._decodes.popleft()
            self._running = RunningJob(job_id, CancelToken(), decode=True)
            self.busy_changed.emit(True)
            self.decode_requested.emit(DecodeItem(job_id, self._running.cancel))
            return
        job = self.queue.take_next()
        if job is None:
            return
        self._running = RunningJob(job.id, CancelToken())
        self.busy_changed.emit(True)
        self.run_requested.emit(WorkItem(job.id, job.request, self._running.cancel))

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Cancel, stop the thread and wait for it; a job cut short goes back to the queue."""
        if self._closing:
            return self._thread.isFinished()
        self._closing = True
        running = self._running
        if running is not None:
            running.cancel.set()
        self._thread.quit()
        done = self._thread.wait(timeout_ms)
        if running is not None and not running.decode:
            self.queue.requeue(running.job_id)
            self._running = None
        if not done:
            log.error("the generation thread did not stop within %d ms", timeout_ms)
        return done

    # --- results from the worker ---------------------------------------------------------

    @Slot(str, object)
    def _on_finished(self, job_id: str, result: JobResult) -> None:
        if self._ended(JobOutcome(job_id, Ending.FINISHED, result=result)):
            self.job_finished.emit(job_id, result)
            self._after_job()

    @Slot(str, object)
    def _on_failed(self, job_id: str, failure: JobFailure) -> None:
        if self._ended(JobOutcome(job_id, Ending.FAILED, failure=failure)):
            self.job_failed.emit(job_id, failure)
            self._after_job()

    @Slot(str)
    def _on_cancelled(self, job_id: str) -> None:
        if self._ended(JobOutcome(job_id, Ending.CANCELLED)):
            self.job_cancelled.emit(job_id)
            self._after_job()

    def _ended(self, outcome: JobOutcome) -> bool:
        """Record how the running job ended and mark the worker idle; False while the window
        closes (:meth:`shutdown` has put the job back in the queue)."""
        if self._closing:
            return False
        decode = self._running is not None and self._running.decode
        record_outcome(self.queue, outcome, decode=decode)
        self._running = None
        return True

    def _after_job(self) -> None:
        """The worker is idle again: say so, then start the next queued job, if any."""
        self.busy_changed.emit(False)
        self.pump()
