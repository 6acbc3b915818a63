"""A job: one request and what became of it, as stored in ``jobs/<id>/job.json``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from studio.engine.request import GenerationRequest
from studio.errors import InvalidRequest
from studio.service.job_folder import JobFolder

JOB_VERSION = 1


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


LIVE_STATES = (JobState.QUEUED, JobState.RUNNING)
"""States of jobs that are in the queue (not yet in the history)."""

RESTART_HINTS = {
    JobState.QUEUED: "it will run in its turn; `studio queue run` starts the queue",
    JobState.RUNNING: "it is running now; cancel it first to run it again from its saved state",
    JobState.FINISHED: "it finished; use retry for a new run with the same settings",
}
"""Why a job in each state other than failed or cancelled is not restarted, and what to do."""


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
        return JobFolder.of(self.id).path

    @property
    def files(self) -> JobFolder:
        return JobFolder.of(self.id)

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
        """Parse a job file's contents; anything malformed raises :class:`InvalidRequest`."""
        if not isinstance(data, dict) or data.get("version") != JOB_VERSION:
            raise InvalidRequest("job", "not a job file of a supported version")
        try:
            for name in ("started", "ended"):
                if data.get(name) is not None and not isinstance(data[name], int | float):
                    raise TypeError(f"{name} is not a time")
            for name in ("error", "result"):
                if data.get(name) is not None and not isinstance(data[name], dict):
                    raise TypeError(f"{name} is not an object")
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
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise InvalidRequest("job", f"damaged job file ({exc})") from exc


