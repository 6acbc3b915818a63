"""Jobs, the persistent queue and the history — nothing is ever only in memory.

Every job is one JSON file ``STUDIO_HOME/jobs/<id>/job.json`` (written atomically on every
change) and the queue order is ``STUDIO_HOME/queue.json``. On start the queue is rebuilt from
disk: a job that was running when the process died is put back at the head of the queue, never
dropped. Qt-free and thread-safe; the app wraps it in an item model.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from studio.engine.request import GenerationRequest
from studio.errors import InvalidRequest, StudioError
from studio.media.atomic import atomic_write_json
from studio.paths import studio_home

log = logging.getLogger(__name__)

JOB_VERSION = 1


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Job:
    """One request and what became of it.

    Attributes:
        id: hex id, also the job folder's name.
        request: the request (the recipe's core).
        state: see :class:`JobState`.
        created, started, ended: UNIX times (s).
        error: ``{"title", "message", "hint"}`` for failed jobs.
        result: ``{"video_path", "latent_path", "recipe_path", "seconds", "model_name",
            "frames"}`` for finished jobs.
        attempts: how many times the job was started (a crash-restart increments it).
    """

    id: str
    request: GenerationRequest
    state: JobState = JobState.QUEUED
    created: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    error: dict[str, str] | None = None
    result: dict[str, Any] | None = None
    attempts: int = 0

    @property
    def folder(self) -> Path:
        return jobs_root() / self.id

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": JOB_VERSION,
            "id": self.id,
            "request": self.request.to_dict(),
            "state": self.state.value,
            "created": self.created,
            "started": self.started,
            "ended": self.ended,
            "error": self.error,
            "result": self.result,
            "attempts": self.attempts,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        if not isinstance(data, dict) or data.get("version") != JOB_VERSION:
            raise InvalidRequest("job", "not a job file of a supported version")
        try:
            return cls(
                id=str(data["id"]),
                request=GenerationRequest.from_dict(data["request"]),
                state=JobState(data["state"]),
                created=float(data["created"]),
                started=data.get("started"),
                ended=data.get("ended"),
                error=data.get("error"),
                result=data.get("result"),
                attempts=int(data.get("attempts", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidRequest("job", f"damaged job file ({exc})") from exc


def jobs_root() -> Path:
    path = studio_home() / "jobs"
    path.mkdir(parents=True, exist_ok=True)
    return path


Listener = Callable[[], None]


class JobQueue:
    """Queued jobs in order, plus the history of ended ones; persisted on every change."""

    def __init__(self, root: Path | None = None) -> None:
        self._root = root or studio_home()
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}
        self._order: list[str] = []
        self._paused = False
        self._listeners: list[Listener] = []
        self._load()

    # --- observation -----------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener()`` after every change (from the thread that made it)."""
        self._listeners.append(listener)

    @property
    def paused(self) -> bool:
        return self._paused

    def get(self, job_id: str) -> Job:
        with self._lock:
            return self._jobs[job_id]

    def pending(self) -> list[Job]:
        """Queued and running jobs in queue order."""
        with self._lock:
            return [self._jobs[i] for i in self._order]

    def history(self) -> list[Job]:
        """Ended jobs, newest first."""
        with self._lock:
            ended = [j for j in self._jobs.values() if j.id not in self._order]
        return sorted(ended, key=lambda j: j.ended or j.created, reverse=True)

    # --- changes ---------------------------------------------------------------------------

    def add(self, request: GenerationRequest) -> Job:
        request.validate()
        job = Job(uuid.uuid4().hex[:12], request)
        with self._lock:
            self._jobs[job.id] = job
            self._order.append(job.id)
            self._save_job(job)
            self._save_order()
        self._notify()
        return job

    def move(self, job_id: str, index: int) -> None:
        """Move a queued job to ``index`` in the queue (clamped)."""
        with self._lock:
            if job_id not in self._order:
                raise KeyError(job_id)
            self._order.remove(job_id)
            self._order.insert(max(0, min(index, len(self._order))), job_id)
            self._save_order()
        self._notify()

    def remove(self, job_id: str) -> None:
        """Take a queued job out of the queue (and delete it); a running job must be cancelled."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise KeyError(job_id)
            if job.state is JobState.RUNNING:
                raise StudioError("the job is running", "cancel it first")
            self._order = [i for i in self._order if i != job_id]
            self._save_order()
            self._delete_files(job)
            del self._jobs[job_id]
        self._notify()

    def delete(self, job_id: str) -> None:
        """Delete an ended job from the history together with its files (video, recipe, latent)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise KeyError(job_id)
            if job_id in self._order:
                raise StudioError("the job is still queued", "remove it from the queue instead")
            for key in ("video_path", "recipe_path"):
                value = (job.result or {}).get(key)
                if value:
                    Path(value).unlink(missing_ok=True)
            self._delete_files(job)
            del self._jobs[job_id]
        self._notify()

    def set_paused(self, paused: bool) -> None:
        with self._lock:
            self._paused = paused
            self._save_order()
        self._notify()

    def take_next(self) -> Job | None:
        """Mark the first queued job running and return it (None when paused or empty)."""
        with self._lock:
            if self._paused:
                return None
            for job_id in self._order:
                job = self._jobs[job_id]
                if job.state is JobState.QUEUED:
                    job = replace(job, state=JobState.RUNNING, started=time.time(),
                                  attempts=job.attempts + 1, error=None)
                    self._put(job)
                    break
            else:
                return None
        self._notify()
        return job

    def requeue(self, job_id: str) -> None:
        """Put a running job back at the head of the queue (e.g. after an interrupted shutdown)."""
        self._end(job_id, JobState.QUEUED, keep_in_queue=True)

    def mark_finished(self, job_id: str, result: dict[str, Any]) -> None:
        self._end(job_id, JobState.FINISHED, result=result)

    def mark_failed(self, job_id: str, title: str, message: str, hint: str = "") -> None:
        self._end(job_id, JobState.FAILED, error={"title": title, "message": message, "hint": hint})

    def mark_cancelled(self, job_id: str) -> None:
        self._end(job_id, JobState.CANCELLED)

    def retry(self, job_id: str) -> Job:
        """Queue a new job with the same request as an ended one."""
        return self.add(self.get(job_id).request)

    # --- persistence -----------------------------------------------------------------------

    def _end(self, job_id: str, state: JobState, *, keep_in_queue: bool = False, **values) -> None:
        with self._lock:
            job = replace(self._jobs[job_id], state=state, **values)
            if not keep_in_queue:
                job = replace(job, ended=time.time())
                self._order = [i for i in self._order if i != job_id]
            self._put(job)
            self._save_order()
        self._notify()

    def _put(self, job: Job) -> None:
        self._jobs[job.id] = job
        self._save_job(job)

    def _save_job(self, job: Job) -> None:
        folder = self._root / "jobs" / job.id
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(folder / "job.json", job.to_dict())

    def _save_order(self) -> None:
        atomic_write_json(self._root / "queue.json", {"order": self._order, "paused": self._paused})

    def _delete_files(self, job: Job) -> None:
        shutil.rmtree(self._root / "jobs" / job.id, ignore_errors=True)

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener()

    def _load(self) -> None:
        folder = self._root / "jobs"
        for path in sorted(folder.glob("*/job.json")) if folder.is_dir() else []:
            try:
                job = Job.from_dict(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, StudioError) as exc:
                log.warning("skipping unreadable job file %s: %s", path, exc)
                continue
            self._jobs[job.id] = job
        order, self._paused = self._read_order()
        live = [i for i in order if i in self._jobs and self._jobs[i].state in
                (JobState.QUEUED, JobState.RUNNING)]
        # Jobs that are queued or running on disk but missing from queue.json are appended.
        for job in sorted(self._jobs.values(), key=lambda j: j.created):
            if job.state in (JobState.QUEUED, JobState.RUNNING) and job.id not in live:
                live.append(job.id)
        self._order = live
        for job_id in live:
            if self._jobs[job_id].state is JobState.RUNNING:
                log.info("job %s was running when the studio stopped; queued again", job_id)
                self._put(replace(self._jobs[job_id], state=JobState.QUEUED))
        self._save_order()

    def _read_order(self) -> tuple[list[str], bool]:
        path = self._root / "queue.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            order = [str(i) for i in data.get("order", [])]
            return order, bool(data.get("paused", False))
        except FileNotFoundError:
            return [], False
        except (OSError, ValueError, AttributeError, TypeError) as exc:
            log.warning("queue file %s is damaged (%s); rebuilding it from the job files", path, exc)
            return [], False
