"""Jobs, the persistent queue and the history — nothing is ever only in memory.

On disk (``STUDIO_HOME``):

* ``jobs/<id>/job.json`` — one file per job, rewritten atomically on every change;
* ``queue.json`` — ``{"order": [ids], "paused": bool}``, the queue order;
* ``queue.lock`` — taken by whoever changes the queue, so the desktop app and ``studio queue``
  commands in other terminals can share one queue;
* ``jobs/<id>/run.lock`` — held for as long as a process runs that job.

The files are the truth: every change first re-reads them under ``queue.lock``, then writes, and
only then updates memory, so a failed write (a full disk) leaves memory and disk as they were.
A job found "running" whose ``run.lock`` nobody holds was running in a process that died: it is
queued again at its place in the queue (the generation service resumes it from its saved state),
never dropped. A damaged ``queue.json`` is rebuilt from the job files; a damaged ``job.json`` is
skipped with a warning and left on disk. Qt-free and thread-safe; the app wraps it in an item
model and calls :meth:`JobQueue.refresh` to see what other processes changed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from studio.engine.request import GenerationRequest
from studio.errors import InvalidRequest, StudioError
from studio.media.atomic import atomic_write_json
from studio.media.json_file import MAX_JSON_BYTES, parse_json_text
from studio.paths import studio_home
from studio.safe_files import read_bytes_bounded
from studio.service.job_folder import JobFolder, jobs_root
from studio.service.job_record import JOB_VERSION, LIVE_STATES, RESTART_HINTS, Job, JobState
from studio.service.locks import FileLock, LockTimeout, is_locked_elsewhere
from studio.service.recipe_check import absolute_paths

log = logging.getLogger(__name__)

QUEUE_LOCK_TIMEOUT_S = 30.0

Listener = Callable[[], None]


class JobQueue:
    """Queued jobs in order, plus the history of ended ones; persisted on every change.

    Reading methods (:meth:`get`, :meth:`pending`, :meth:`history`) answer from memory; every
    changing method re-reads the files first, so it acts on what other processes did too.
    Changes raise :class:`~studio.errors.MediaError` when the disk is full (nothing changed).
    """

    def __init__(self, root: Path | None = None) -> None:
        self._root = Path(root) if root is not None else studio_home()
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}
        self._order: list[str] = []
        self._paused = False
        self._listeners: list[Listener] = []
        self._run_locks: dict[str, FileLock] = {}
        self._stamps: dict[str, int | None] = {}  # job.json modification times last read
        self.refresh()

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

    def find(self, prefix: str) -> Job:
        """The job whose id is ``prefix`` or starts with it (as ``studio queue`` accepts)."""
        with self._lock:
            if prefix in self._jobs:
                return self._jobs[prefix]
            matches = [j for i, j in self._jobs.items() if prefix and i.startswith(prefix)]
        if len(matches) != 1:
            what = "no job" if not matches else f"{len(matches)} jobs"
            raise StudioError(f"{what} with an id starting with {prefix!r}",
                              "see `studio queue list --all` for the job ids")
        return matches[0]

    def pending(self) -> list[Job]:
        """Queued and running jobs in queue order."""
        with self._lock:
            return [self._jobs[i] for i in self._order]

    def history(self) -> list[Job]:
        """Ended jobs, newest first."""
        with self._lock:
            ended = [j for j in self._jobs.values() if j.id not in self._order]
        return sorted(ended, key=lambda j: j.ended or j.created, reverse=True)

    def refresh(self) -> None:
        """Re-read the queue from disk (changes by other processes); listeners hear of changes."""
        with self._transaction():
            pass

    # --- changes ---------------------------------------------------------------------------

    def add(self, request: GenerationRequest) -> Job:
        """Queue ``request``; its reference image paths are stored absolute."""
        job = Job(uuid.uuid4().hex[:12], absolute_paths(request.validate()))
        with self._transaction():
            self._write_job(job)
            try:
                self._write_order([*self._order, job.id], self._paused)
            except BaseException:
                shutil.rmtree(self._folder(job.id), ignore_errors=True)
                raise
            self._jobs[job.id] = job
            self._order.append(job.id)
        return job

    def move(self, job_id: str, index: int) -> None:
        """Move a queued job to ``index`` in the queue (clamped)."""
        with self._transaction():
            if job_id not in self._order:
                raise KeyError(job_id)
            order = [i for i in self._order if i != job_id]
            order.insert(max(0, min(index, len(order))), job_id)
            self._write_order(order, self._paused)
            self._order = order

    def remove(self, job_id: str) -> None:
        """Take a queued job out of the queue (and delete it); a running job must be cancelled."""
        with self._transaction():
            job = self._jobs.get(job_id)
            if job is None:
                raise KeyError(job_id)
            if job.state is JobState.RUNNING:
                raise StudioError("the job is running", "cancel it first")
            order = [i for i in self._order if i != job_id]
            self._write_order(order, self._paused)
            self._order = order
            shutil.rmtree(self._folder(job_id), ignore_errors=True)
            del self._jobs[job_id]

    def delete(self, job_id: str) -> None:
        """Delete an ended job from the history together with its files (video, recipe, latent)."""
        with self._transaction():
            job = self._jobs.get(job_id)
            if job is None:
                raise KeyError(job_id)
            if job_id in self._order:
                raise StudioError("the job is still queued", "remove it from the queue instead")
            for key in ("video_path", "recipe_path"):
                value = (job.result or {}).get(key)
                if value:
                    Path(value).unlink(missing_ok=True)
            shutil.rmtree(self._folder(job_id), ignore_errors=True)
            del self._jobs[job_id]

    def set_paused(self, paused: bool) -> None:
        """Pause (no new job starts; a running one finishes) or resume the queue."""
        with self._transaction():
            self._write_order(self._order, bool(paused))
            self._paused = bool(paused)

    def take_next(self, job_id: str | None = None) -> Job | None:
        """Mark the first queued job (or ``job_id``, paused or not) running and return it; None
        when there is none, or another process took it first.

        The returned job's ``run.lock`` is held by this queue until the job ends or is requeued.
        """
        with self._transaction():
            queued = [i for i in self._order if self._jobs[i].state is JobState.QUEUED
                      and job_id in (None, i)]  # fmt: skip
            if not queued or (self._paused and job_id is None):
                return None
            job_id = queued[0]
            run_lock = FileLock(self._run_lock_path(job_id))
            if not run_lock.try_acquire():
                return None
            job = replace(self._jobs[job_id], state=JobState.RUNNING, started=time.time(),
                          attempts=self._jobs[job_id].attempts + 1, error=None)
            try:
                self._write_job(job)
            except BaseException:
                run_lock.release()
                raise
            self._jobs[job_id] = job
            self._run_locks[job_id] = run_lock
        return job

    def requeue(self, job_id: str) -> None:
        """Put a running job back in the queue at its place (cancelled by Ctrl+C, shutdown)."""
        self._end(job_id, JobState.QUEUED, keep_in_queue=True)

    def restart(self, job_id: str) -> Job:
        """Queue a failed or cancelled job again under its own id, at the end of the queue.

        Unlike :meth:`retry`, the job keeps its folder, so it continues from its saved latent
        or its last sampling checkpoint instead of starting over.
        """
        with self._transaction():
            job = self._jobs.get(job_id)
            if job is None:
                raise KeyError(job_id)
            if job.state not in (JobState.FAILED, JobState.CANCELLED):
                raise StudioError(f"job {job_id} is {job.state.value}: only failed or cancelled "
                                  "jobs are restarted", RESTART_HINTS[job.state])
            job = replace(job, state=JobState.QUEUED, error=None, ended=None)
            self._write_job(job)
            order = [*self._order, job_id]
            self._write_order(order, self._paused)
            self._jobs[job_id] = job
            self._order = order
        return job

    def mark_finished(self, job_id: str, result: dict[str, Any]) -> None:
        """End a job with its result record (also a failed one whose latent was decoded again)."""
        self._end(job_id, JobState.FINISHED, result=result, error=None)

    def mark_failed(self, job_id: str, title: str, message: str, hint: str = "") -> None:
        self._end(job_id, JobState.FAILED, error={"title": title, "message": message, "hint": hint})

    def mark_cancelled(self, job_id: str) -> None:
        self._end(job_id, JobState.CANCELLED)

    def retry(self, job_id: str) -> Job:
        """Queue a new job with the same request as an ended one."""
        return self.add(self.get(job_id).request)

    # --- persistence -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """Hold the queue (thread and ``queue.lock``), re-read the disk, run the change.

        If the change raises, memory is re-read from disk (which holds what was committed).
        """
        with self._lock:
            before = (list(self._order), self._paused, dict(self._jobs))
            queue_lock = FileLock(self._root / "queue.lock")
            try:
                queue_lock.acquire(QUEUE_LOCK_TIMEOUT_S)
            except LockTimeout as exc:
                raise StudioError("the job queue is locked by another studio process",
                                  "wait a moment and try again") from exc
            try:
                self._sync()
                try:
                    yield
                except BaseException:
                    self._sync()
                    raise
            finally:
                queue_lock.release()
            changed = (self._order, self._paused, self._jobs) != before
        if changed:
            self._notify()

    def _end(self, job_id: str, state: JobState, *, keep_in_queue: bool = False, **values) -> None:
        with self._transaction():
            if job_id not in self._jobs:
                raise KeyError(job_id)
            job = replace(self._jobs[job_id], state=state, **values)
            order = self._order
            if not keep_in_queue:
                job = replace(job, ended=time.time())
                order = [i for i in self._order if i != job_id]
            try:
                self._write_job(job)
                self._jobs[job_id] = job
                if order != self._order:
                    self._write_order(order, self._paused)
                    self._order = order
            finally:
                lock = self._run_locks.pop(job_id, None)
                if lock is not None:
                    lock.release()

    def _folder(self, job_id: str) -> Path:
        return self._root / "jobs" / job_id

    def _run_lock_path(self, job_id: str) -> Path:
        return JobFolder(self._folder(job_id)).run_lock

    def _write_job(self, job: Job) -> None:
        folder = self._folder(job.id)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(JobFolder(folder).record, job.to_dict())

    def _write_order(self, order: list[str], paused: bool) -> None:
        atomic_write_json(self._root / "queue.json", {"order": order, "paused": paused})

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener()

    def _sync(self) -> None:
        """Make memory equal to the disk (called with the queue lock held)."""
        order, paused, order_ok = self._read_order()
        names = self._job_folders()
        for job_id in [i for i in self._jobs if i not in names]:
            del self._jobs[job_id]  # deleted by another process
        self._stamps = {name: stamp for name, stamp in self._stamps.items() if name in names}
        watched = set(order) | set(self._order)
        for name in names:
            self._refresh_job(name, always=name in watched)
        live = [i for i in dict.fromkeys(order) if i in self._jobs
                and self._jobs[i].state in LIVE_STATES]
        orphans = [j for j in self._jobs.values() if j.state in LIVE_STATES and j.id not in live]
        live += [j.id for j in sorted(orphans, key=lambda j: j.created)]
        for job_id in live:
            self._requeue_if_abandoned(job_id)
        self._order, self._paused = live, paused
        if live != order or not order_ok:
            self._write_quietly(lambda: self._write_order(live, paused))

    def _requeue_if_abandoned(self, job_id: str) -> None:
        job = self._jobs[job_id]
        if job.state is not JobState.RUNNING or job_id in self._run_locks:
            return
        if is_locked_elsewhere(self._run_lock_path(job_id)):
            return  # another live process is running it
        log.info("job %s was running when its process stopped; queued again", job_id)
        job = replace(job, state=JobState.QUEUED)
        self._jobs[job_id] = job
        self._write_quietly(lambda: self._write_job(job))

    def _write_quietly(self, write: Callable[[], None]) -> None:
        """A repair write that may fail (full or read-only disk) without stopping the studio."""
        try:
            write()
        except (OSError, StudioError) as exc:
            log.warning("could not save the repaired queue state: %s", exc)

    def _job_folders(self) -> set[str]:
        folder = self._root / "jobs"
        try:
            with os.scandir(folder) as entries:
                return {e.name for e in entries if e.is_dir() and not e.name.startswith(".")}
        except FileNotFoundError:
            return set()

    def _refresh_job(self, name: str, always: bool) -> None:
        """Re-read ``jobs/<name>/job.json`` if it changed since the last read (or ``always``)."""
        path = JobFolder(self._folder(name)).record
        try:
            stamp: int | None = path.stat().st_mtime_ns
        except OSError:
            stamp = None  # a folder without a job file (e.g. a direct `studio generate` run)
        if not always and name in self._stamps and self._stamps[name] == stamp:
            return  # unchanged: an ended job, or a damaged file that was already reported
        self._stamps[name] = stamp
        job = self._read_job(path, name) if stamp is not None else None
        if job is None:
            self._jobs.pop(name, None)
        else:
            self._jobs[name] = job

    def _read_job(self, path: Path, name: str) -> Job | None:
        """The job in ``path``; None (with a warning) when it is damaged."""
        try:
            job = Job.from_dict(parse_json_text(read_bytes_bounded(path, MAX_JSON_BYTES)))
            if job.id != name:
                raise InvalidRequest("job", f"the file names job {job.id!r}, not {name!r}")
            return job
        except (OSError, ValueError, StudioError) as exc:
            log.warning("skipping unreadable job file %s (kept on disk): %s", path, exc)
            return None

    def _read_order(self) -> tuple[list[str], bool, bool]:
        """(order, paused, whether queue.json was readable or absent)."""
        path = self._root / "queue.json"
        try:
            data = parse_json_text(read_bytes_bounded(path, MAX_JSON_BYTES))
            order = data["order"]
            if not isinstance(order, list) or not isinstance(data.get("paused", False), bool):
                raise TypeError("unexpected contents")
            return [str(i) for i in order], bool(data.get("paused", False)), True
        except FileNotFoundError:
            return [], False, True
        except (OSError, ValueError, KeyError, AttributeError, TypeError) as exc:
            log.warning("queue file %s is damaged (%s); rebuilding it from the job files",
                        path, exc)
            return [], False, False


__all__ = ["JOB_VERSION", "LIVE_STATES", "Job", "JobQueue", "JobState", "jobs_root"]
