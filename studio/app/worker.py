"""The generation worker: a thin adapter from service events to Qt signals.

:class:`GenerationWorker` lives in the controller's QThread and owns the
:class:`~studio.service.generation.GenerationService` (so weights stay warm between jobs). Its
slots are called through queued signals; everything it emits is a small immutable payload:
strings, dataclasses of numbers, and QImages built here with ``.copy()``. It catches every
exception, so the thread survives any job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal, Slot

from studio.engine.cancel import CancelToken
from studio.engine.request import GenerationRequest
from studio.service.generation import (
    GenerationService,
    JobEvent,
    JobResult,
    PreviewEvent,
    ProgressEvent,
    StageEvent,
)
from studio.service.model_info import model_info
from studio.service.outcome import Ending, JobFailure, describe_failure, run_to_outcome
from studio.service.process_memory import memory_usage
from studio.service.settings import Settings

from .images import frames_to_qimages

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One job handed to the worker; ``cancel`` is set directly by the GUI thread."""

    job_id: str
    request: GenerationRequest
    cancel: CancelToken


@dataclass(frozen=True, slots=True)
class DecodeItem:
    """Decode a finished (or failed) job's saved latent again; ``cancel`` as in WorkItem."""

    job_id: str
    cancel: CancelToken


class GenerationWorker(QObject):
    """Runs jobs and model loads one at a time on its own thread.

    Signals:
        started(job_id), stage(job_id, stage), progress(ProgressEvent — as the service sent it),
        preview(job_id, step, list[QImage] — one per latent frame),
        finished(job_id, JobResult), failed(job_id, JobFailure), cancelled(job_id),
        model_loaded(ModelInfo, MemoryUsage), model_unloaded(MemoryUsage),
        model_failed(JobFailure).
    """

    started = Signal(str)
    stage = Signal(str, str)
    progress = Signal(object)
    preview = Signal(str, int, object)
    finished = Signal(str, object)
    failed = Signal(str, object)
    cancelled = Signal(str)
    model_loaded = Signal(object, object)
    model_unloaded = Signal(object)
    model_failed = Signal(object)

    def __init__(self, service: GenerationService) -> None:
        super().__init__()
        self._service = service

    @Slot(object)
    def run(self, item: WorkItem) -> None:
        """Run one job; always ends with exactly one of finished / failed / cancelled."""
        self._run_job(item.job_id, lambda: self._service.run(
            item.job_id, item.request, self._on_event, item.cancel))

    @Slot(object)
    def decode_again(self, item: DecodeItem) -> None:
        """Decode and export a job's saved latent again (no sampling); ends like :meth:`run`."""
        self._run_job(item.job_id, lambda: self._service.decode_again(
            item.job_id, self._on_event, item.cancel))

    def _run_job(self, job_id: str, work: Callable[[], JobResult]) -> None:
        self.started.emit(job_id)
        outcome = run_to_outcome(job_id, work)
        if outcome.ending is Ending.FINISHED:
            self.finished.emit(job_id, outcome.result)
        elif outcome.ending is Ending.FAILED:
            self.failed.emit(job_id, outcome.failure)
        else:
            self.cancelled.emit(job_id)
        self._report_model()

    @Slot(str)
    def load_model(self, model_id: str) -> None:
        try:
            self._service.cache.get(model_id)
        except Exception as exc:
            log.warning("loading model %r failed: %s", model_id, exc, exc_info=True)
            self.model_failed.emit(describe_failure(exc))
            return
        self._report_model()

    @Slot()
    def unload_model(self) -> None:
        try:
            self._service.cache.unload()
        except Exception as exc:
            log.exception("unloading the model failed")
            self.model_failed.emit(describe_failure(exc))
        self._report_model()

    @Slot(object)
    def apply_settings(self, settings: Settings) -> None:
        """New domain settings (folders, device, preview cadence) for the next job."""
        self._service.settings = settings
        self._service.cache.settings = settings

    def _report_model(self) -> None:
        try:
            loaded = self._service.cache.loaded
            usage = memory_usage()
            if loaded is None:
                self.model_unloaded.emit(usage)
            else:
                self.model_loaded.emit(model_info(loaded), usage)
        except Exception:
            log.exception("could not report the loaded model")

    def _on_event(self, event: JobEvent) -> None:
        """Service event (on this thread) → signal with a small payload."""
        if isinstance(event, ProgressEvent):
            self.progress.emit(event)
        elif isinstance(event, PreviewEvent):
            self.preview.emit(event.job_id, event.step, frames_to_qimages(event.frames))
        elif isinstance(event, StageEvent):
            self.stage.emit(event.job_id, event.stage)


__all__ = ["DecodeItem", "GenerationWorker", "JobFailure", "WorkItem", "describe_failure"]
