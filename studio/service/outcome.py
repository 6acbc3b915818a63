"""How a job ended, and the one place that writes it into the queue.

Every runner of jobs — the desktop worker thread and ``studio queue run`` — runs a job through
:func:`run_to_outcome`, which turns whatever happened into a :class:`JobOutcome` (finished with
its result, failed with a :class:`JobFailure` a person can act on, or cancelled), and records it
with :func:`record_outcome`.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from studio.errors import Cancelled, StudioError
from studio.service.generation import JobResult
from studio.service.job_queue import JobQueue
from studio.service.job_record import JobState

log = logging.getLogger(__name__)


class Ending(StrEnum):
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class JobFailure:
    """What a person sees when something fails: title, message, hint, and the traceback."""

    title: str
    message: str
    hint: str = ""
    details: str = ""


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """How one run of a job ended: ``result`` when finished, ``failure`` when failed."""

    job_id: str
    ending: Ending
    result: JobResult | None = None
    failure: JobFailure | None = None


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


def run_to_outcome(job_id: str, work: Callable[[], JobResult]) -> JobOutcome:
    """Run ``work`` and say how it ended; only ``BaseException``s that are not ``Exception``
    (``KeyboardInterrupt``) pass through."""
    try:
        result = work()
    except Cancelled:
        log.info("job %s cancelled", job_id)
        return JobOutcome(job_id, Ending.CANCELLED)
    except Exception as exc:  # a runner of jobs survives any job
        if isinstance(exc, StudioError):
            log.warning("job %s failed: %s", job_id, exc)
        else:
            log.exception("job %s: internal error", job_id)
        return JobOutcome(job_id, Ending.FAILED, failure=describe_failure(exc))
    return JobOutcome(job_id, Ending.FINISHED, result=result)


def record_outcome(queue: JobQueue, outcome: JobOutcome, *, decode: bool = False,
                   cancelled_stays_queued: bool = False) -> None:
    """Write ``outcome`` into the job's record.

    Args:
        decode: the run decoded an ended job's saved latent again: a finished job keeps its
            record (the new MP4 is another output); a failed or cancelled decode changes
            nothing; a successful one makes a failed or cancelled job finished.
        cancelled_stays_queued: a cancelled job goes back to its place in the queue (``studio
            queue run`` stopped by Ctrl+C) instead of into the history.
    """
    job_id = outcome.job_id
    if outcome.ending is Ending.FINISHED:
        if not decode or _not_finished(queue, job_id):
            queue.mark_finished(job_id, outcome.result.to_record())
    elif decode:
        return
    elif outcome.ending is Ending.FAILED:
        failure = outcome.failure
        queue.mark_failed(job_id, failure.title, failure.message, failure.hint)
    elif cancelled_stays_queued:
        queue.requeue(job_id)
    else:
        queue.mark_cancelled(job_id)


def _not_finished(queue: JobQueue, job_id: str) -> bool:
    try:
        return queue.get(job_id).state is not JobState.FINISHED
    except KeyError:  # deleted meanwhile
        return False
