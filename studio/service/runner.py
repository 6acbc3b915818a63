"""Working through the persistent queue one job at a time (``studio queue run``).

The runner takes the first queued job, runs it through :class:`GenerationService` and records
the outcome in the :class:`JobQueue`: finished (with its files), failed (with the error's title,
message and hint; the next job still runs) or — when cancelled, e.g. by Ctrl+C — put back in the
queue at its place, keeping its sampling checkpoint, and the run stops. Only one process works
through the queue at a time: it holds ``STUDIO_HOME/runner.lock`` while it does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from studio.engine.cancel import NEVER, CancelToken
from studio.errors import StudioError
from studio.paths import studio_home
from studio.service.generation import EventSink, GenerationService
from studio.service.job_queue import Job, JobQueue
from studio.service.locks import FileLock
from studio.service.outcome import record_outcome, run_to_outcome

log = logging.getLogger(__name__)

RUNNER_LOCK = "runner.lock"


def runner_lock(root: Path | None = None) -> FileLock:
    """The lock whose holder is the one process running queued jobs (app or command line)."""
    return FileLock((root or studio_home()) / RUNNER_LOCK)


@dataclass(slots=True)
class RunSummary:
    """What a :meth:`QueueRunner.run` did: job ids by outcome, in order."""

    finished: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)


class QueueRunner:
    """Runs queued jobs until the queue is empty or paused, or the run is cancelled."""

    def __init__(
        self,
        queue: JobQueue,
        service: GenerationService,
        on_event: EventSink = lambda event: None,
        on_outcome: Callable[[Job, str], None] | None = None,
    ) -> None:
        """``on_event`` receives every job's events; ``on_outcome(job, outcome)`` each ending
        ("finished", "failed", "cancelled"), after the queue recorded it."""
        self.queue = queue
        self.service = service
        self.on_event = on_event
        self.on_outcome = on_outcome

    def run(self, cancel: CancelToken = NEVER, *, max_jobs: int | None = None) -> RunSummary:
        """Process jobs in queue order; returns when none is left to start.

        Raises :class:`StudioError` when another process is already running the queue.
        """
        lock = runner_lock()
        if not lock.try_acquire():
            raise StudioError("another Flow Studio process is already running the queue",
                              "let it finish, or close it (its job stays queued) and try again")
        summary = RunSummary()
        try:
            while not cancel.is_set and (max_jobs is None or len(_done(summary)) < max_jobs):
                job = self.queue.take_next()
                if job is None:
                    break
                outcome = self.run_job(job, cancel)
                getattr(summary, outcome).append(job.id)
                if self.on_outcome is not None:
                    self.on_outcome(self.queue.get(job.id), outcome)
                if outcome == "cancelled":
                    break
        finally:
            lock.release()
        return summary

    def run_job(self, job: Job, cancel: CancelToken = NEVER) -> str:
        """Run one job taken with :meth:`JobQueue.take_next`; "finished", "failed" or "cancelled".

        A cancelled job (and one interrupted by ``KeyboardInterrupt``, which is re-raised) goes
        back into the queue, so its next run resumes from its saved state.
        """
        log.info("running job %s (attempt %d)", job.id, job.attempts)
        try:
            outcome = run_to_outcome(job.id, lambda: self.service.run(
                job.id, job.request, self.on_event, cancel))
        except BaseException:
            self.queue.requeue(job.id)
            raise
        record_outcome(self.queue, outcome, cancelled_stays_queued=True)
        return outcome.ending.value


def _done(summary: RunSummary) -> list[str]:
    return summary.finished + summary.failed
