"""``studio queue``: list, run, pause, resume, reorder, restart and decode persistent jobs."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from studio.errors import StudioError

if TYPE_CHECKING:
    from collections.abc import Callable

    from studio.service.job_queue import Job, JobQueue

log = logging.getLogger("studio.cli")


def add_queue(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("queue", help="list and run the persistent job queue")
    qsub = p.add_subparsers(dest="queue_command", required=True)
    lst = qsub.add_parser("list", help="queued jobs in order (and the history with --all)")
    lst.add_argument("--all", action="store_true", help="also list ended jobs, newest first")
    lst.set_defaults(func=cmd_queue_list)
    run = qsub.add_parser("run", help="run queued jobs one by one (Ctrl+C leaves a job queued)")
    run.add_argument("--max", type=int, default=None, help="stop after this many jobs")
    run.set_defaults(func=cmd_queue_run)
    qsub.add_parser("pause", help="start no new job").set_defaults(func=cmd_queue_pause)
    qsub.add_parser("resume", help="start queued jobs again").set_defaults(func=cmd_queue_resume)
    rm = qsub.add_parser("remove", help="take queued jobs out of the queue (deletes them)")
    rm.add_argument("jobs", nargs="+", help="job ids (a unique prefix is enough)")
    rm.set_defaults(func=cmd_queue_remove)
    mv = qsub.add_parser("move", help="move a queued job to a position (1 = next)")
    mv.add_argument("job", help="job id (a unique prefix is enough)")
    mv.add_argument("position", type=int, help="new position, 1 = first")
    mv.set_defaults(func=cmd_queue_move)
    rs = qsub.add_parser("restart", help="queue a failed or cancelled job again; it continues "
                         "from its saved latent or sampling checkpoint")
    rs.add_argument("job", help="job id (a unique prefix is enough)")
    rs.set_defaults(func=cmd_queue_restart)
    dec = qsub.add_parser("decode", help="decode and export a job's saved latent again")
    dec.add_argument("job", help="job id (a unique prefix) or a latent .safetensors file")
    dec.add_argument("--out", type=Path, help="output MP4 (default: the outputs folder)")
    dec.add_argument("--fps", type=float, help="playback rate (default: the recipe's)")
    dec.set_defaults(func=cmd_queue_decode)


def cmd_queue_list(args: argparse.Namespace) -> int:
    from studio.service.job_folder import JobFolder
    from studio.service.job_queue import JobQueue
    from studio.service.resume import saved_progress

    queue = JobQueue()
    rows = [(str(n), job) for n, job in enumerate(queue.pending(), start=1)]
    if args.all:
        rows += [("-", job) for job in queue.history()]
    print(f"queue: {len(queue.pending())} job(s){' (paused)' if queue.paused else ''}")
    if not rows:
        return 0
    print(f"{'#':>3}  {'id':12}  {'state':9}  {'size':>12}  {'steps':>5}  {'saved':14}  prompt")
    for position, job in rows:
        r = job.request
        size = f"{r.width}x{r.height}x{r.frames}"
        saved = saved_progress(JobFolder.of(job.id).path) if job.state.value != "finished" else ""
        prompt = r.prompt if len(r.prompt) <= 50 else r.prompt[:49] + "…"
        print(f"{position:>3}  {job.id:12}  {job.state.value:9}  {size:>12}  {r.steps:>5}  "
              f"{saved:14}  {prompt}")
        if job.error:
            print(f"{'':5}{job.error.get('title')}: {job.error.get('message')}")
    return 0


def _queue_printer(
    queue: JobQueue,
) -> tuple[Callable[[object], None], Callable[[Job, str], None]]:
    """``(on_event, on_outcome)`` for ``studio queue run``: a tqdm bar per job, one line per end."""
    from tqdm import tqdm

    from studio.service.generation import ProgressEvent, StageEvent

    bar: tqdm | None = None

    def close_bar() -> None:
        nonlocal bar
        if bar is not None:
            bar.close()
            bar = None

    def on_event(event: object) -> None:
        nonlocal bar
        if isinstance(event, StageEvent):
            if event.stage == "loading":
                print(f"job {event.job_id}: {queue.get(event.job_id).request.prompt}")
            if event.stage != "sampling":
                close_bar()
        elif isinstance(event, ProgressEvent):
            if bar is None:  # a resumed job starts part-way
                bar = tqdm(total=event.steps, initial=event.step - 1, desc="sampling",
                           unit="step")
            bar.update(event.step - bar.n)

    def on_outcome(job: Job, outcome: str) -> None:
        close_bar()
        if outcome == "finished":
            print(f"job {job.id}: wrote {(job.result or {}).get('video_path')}")
        elif outcome == "failed":
            error = job.error or {}
            print(f"job {job.id} failed: {error.get('message')}", file=sys.stderr)
            if error.get("hint"):
                print(f"hint: {error['hint']}", file=sys.stderr)
        else:
            print(f"job {job.id} cancelled; it stays queued and resumes from its last "
                  "checkpoint", file=sys.stderr)

    return on_event, on_outcome


def cmd_queue_run(args: argparse.Namespace) -> int:
    from studio.cli.interrupt import sigint_cancels
    from studio.engine.cancel import CancelToken
    from studio.service.generation import GenerationService
    from studio.service.job_queue import JobQueue
    from studio.service.runner import QueueRunner
    from studio.service.settings import load_settings

    queue = JobQueue()
    if queue.paused:
        print("the queue is paused; `studio queue resume` starts it again")
        return 0
    cancel = CancelToken()
    with sigint_cancels(cancel):
        runner = QueueRunner(queue, GenerationService(load_settings()), *_queue_printer(queue))
        summary = runner.run(cancel, max_jobs=args.max)
    print(f"{len(summary.finished)} finished, {len(summary.failed)} failed, "
          f"{len(queue.pending())} still queued")
    return 130 if summary.cancelled else 1 if summary.failed else 0


def cmd_queue_pause(args: argparse.Namespace) -> int:
    from studio.service.job_queue import JobQueue

    JobQueue().set_paused(True)
    print("queue paused (a running job finishes; no new one starts)")
    return 0


def cmd_queue_resume(args: argparse.Namespace) -> int:
    from studio.service.job_queue import JobQueue

    JobQueue().set_paused(False)
    print("queue resumed")
    return 0


def cmd_queue_remove(args: argparse.Namespace) -> int:
    from studio.service.job_queue import JobQueue

    queue = JobQueue()
    for prefix in args.jobs:
        job = queue.find(prefix)
        if job.state.value not in ("queued", "running"):
            raise StudioError(f"job {job.id} is not queued",
                              "only queued jobs can be removed from the queue")
        queue.remove(job.id)
        print(f"removed job {job.id}")
    return 0


def cmd_queue_move(args: argparse.Namespace) -> int:
    from studio.service.job_queue import JobQueue

    queue = JobQueue()
    job = queue.find(args.job)
    try:
        queue.move(job.id, args.position - 1)
    except KeyError as exc:
        raise StudioError(f"job {job.id} is not queued", "only queued jobs can be moved") from exc
    position = [j.id for j in queue.pending()].index(job.id) + 1
    print(f"job {job.id} is now number {position} in the queue")
    return 0


def cmd_queue_restart(args: argparse.Namespace) -> int:
    from studio.service.job_queue import JobQueue

    queue = JobQueue()
    job = queue.restart(queue.find(args.job).id)
    print(f"job {job.id} queued again (number {len(queue.pending())})")
    return 0


def cmd_queue_decode(args: argparse.Namespace) -> int:
    from studio.service.generation import GenerationService
    from studio.service.job_queue import JobQueue
    from studio.service.settings import load_settings

    queue, job = JobQueue(), None
    source = args.job
    if not Path(source).suffix:
        job = queue.find(source)
        source = job.id
    result = GenerationService(load_settings()).decode_again(source, output_path=args.out,
                                                             fps=args.fps)
    if job is not None and job.state.value in ("failed", "cancelled"):
        queue.mark_finished(job.id, result.to_record())
    print(f"wrote {result.video_path} ({result.frames} frames, {result.seconds:.1f} s)")
    return 0
