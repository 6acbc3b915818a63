"""The generation worker: a thin adapter from service events to Qt signals.

:class:`GenerationWorker` lives in the controller's QThread and owns the
:class:`~studio.service.generation.GenerationService` (so weights stay warm between jobs). Its
slots are called through queued signals; everything it emits is a small immutable payload:
strings, dataclasses of numbers, and QImages built here with ``.copy()``. It catches every
exception, so the thread survives any job.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal, Slot

from studio.engine.cancel import CancelToken
from studio.engine.request import GenerationRequest
from studio.errors import Cancelled, StudioError
from studio.service.generation import (
    GenerationService,
    JobEvent,
    JobResult,
    PreviewEvent,
    ProgressEvent,
    StageEvent,
)
from studio.service.model_info import model_info
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


@dataclass(frozen=True, slots=True)
class Progress:
    """Step ``step`` of ``steps`` done (1-based); t ∈ [0, 1] reached; speed and ETA in seconds."""

    job_id: str
    step: int
    steps: int
    t: float
    it_per_s: float
    eta_s: float


@dataclass(frozen=True, slots=True)
class JobFailure:
    """What a person sees when something fails: title, message, hint, and the traceback."""

    title: str
    message: str
    hint: str = ""
    details: str = ""


def describe_failure(exc: BaseException) -> JobFailure:
    """A :class:`JobFailure` for an exception; call inside the ``except`` block (traceback)."""
    details = "".join(traceback.format_exception(exc))
    if isinstance(exc, StudioError):
        return JobFailure(exc.title, exc.message, exc.hint, details)
    return JobFailure(
        "Internal error",
        f"{type(exc).__name__}: {exc}",
        "This is a bug in Flow Studio. The details below and the log file "
        "(STUDIO_HOME/logs/studio.log) help to fix it; the studio keeps running.",
        details,
    )


class GenerationWorker(QObject):
    """Runs jobs and model loads one at a time on its own thread.

    Signals:
        started(job_id), stage(job_id, stage), progress(Progress),
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
        try:
            result = work()
        except Cancelled:
            log.info("job %s cancelled", job_id)
            self.cancelled.emit(job_id)
        except Exception as exc:  # the worker must survive anything
            failure = describe_failure(exc)
            if isinstance(exc, StudioError):
                log.warning("job %s failed: %s", job_id, exc)
            else:
                log.exception("job %s: internal error", job_id)
            self.failed.emit(job_id, failure)
        else:
            self.finished.emit(job_id, result)
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
            self.progress.emit(Progress(event.job_id, event.step, event.steps, event.t,
                                        event.it_per_s, event.eta_s))
        elif isinstance(event, PreviewEvent):
            self.preview.emit(event.job_id, event.step, frames_to_qimages(event.frames))
        elif isinstance(event, StageEvent):
            self.stage.emit(event.job_id, event.stage)
