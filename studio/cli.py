"""The command line: ``studio generate``, ``studio models``, ``studio queue``, ``studio train``,
``studio eval``, ``studio bench``.

One function per command; each calls the same service layer as the GUI.
"""

from __future__ import annotations

import argparse
import logging
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from studio.errors import Cancelled, StudioError
from studio.logs import setup_logging

if TYPE_CHECKING:
    from collections.abc import Callable

    from studio.service.jobs import Job, JobQueue

log = logging.getLogger("studio.cli")


def _add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate a video (the demo model unless --model is given)")
    p.add_argument("--prompt", help="what the video shows")
    p.add_argument("--negative", dest="negative_prompt", help="negative prompt")
    p.add_argument("--model", default=None, help='model folder, or "demo" (default)')
    p.add_argument("--recipe", type=Path, help="reproduce a recipe (.json, or an MP4 made here)")
    p.add_argument("--image", type=Path, help="reference frame image (image-to-video)")
    p.add_argument("--image-frame", type=int, default=0, help="frame it pins: 0 first, -1 last")
    p.add_argument("--strength", type=float, default=1.0, help="reference strength in 0…1")
    p.add_argument("--fit", choices=("fill", "fit"), default="fill", help="how the image is sized")
    p.add_argument("--seed", type=int)
    p.add_argument("--steps", type=int)
    p.add_argument("--guidance", type=float)
    p.add_argument("--shift", help='"auto" or a number')
    p.add_argument("--width", type=int)
    p.add_argument("--height", type=int)
    p.add_argument("--frames", type=int)
    p.add_argument("--fps", type=float)
    p.add_argument("--sampler", choices=("euler", "stochastic"))
    p.add_argument("--out", type=Path, help="output MP4 (default: the outputs folder)")
    p.add_argument("--queue", action="store_true", help="add to the persistent queue instead")
    p.set_defaults(func=cmd_generate)


def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="find and list model sets")
    msub = p.add_subparsers(dest="models_command", required=True)
    scan = msub.add_parser("scan", help="identify the model files in folders")
    scan.add_argument("folders", nargs="+", type=Path)
    scan.set_defaults(func=cmd_models_scan)
    lst = msub.add_parser("list", help="list the demo model and the configured folders' sets")
    lst.set_defaults(func=cmd_models_list)


def _add_train_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the demo model from scratch")
    tsub = p.add_subparsers(dest="train_command", required=True)
    demo = tsub.add_parser("demo", help="train the shipped demo model (VAE, then DiT)")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder")
    demo.add_argument("--stage", choices=("all", "vae", "dit"), default="all")
    demo.add_argument("--steps", type=int, help="override the number of steps of the stage(s)")
    demo.add_argument("--no-resume", action="store_true", help="ignore existing checkpoints")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--continue-from", type=Path, metavar="MODEL",
                      help="start from an exported demo model folder (e.g. resources/models/demo): "
                      "its weights, a fresh optimizer, the step counts it records")  # fmt: skip
    demo.set_defaults(func=cmd_train_demo)
    p = sub.add_parser("eval", help="evaluate a model")
    esub = p.add_subparsers(dest="eval_command", required=True)
    ev = esub.add_parser("demo", help="colour/direction/first-frame/stability metrics")
    ev.add_argument("--model", type=Path, help="demo model folder (default: the shipped one)")
    ev.add_argument("--prompts", type=int, default=50)
    ev.add_argument("--steps", type=int)
    ev.add_argument("--guidance", type=float)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--json", type=Path, help="also write the report as JSON")
    ev.set_defaults(func=cmd_eval_demo)


def _add_queue(sub: argparse._SubParsersAction) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="studio", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_generate(sub)
    _add_models(sub)
    _add_train_eval(sub)
    from studio.bench import add_bench_parser

    add_bench_parser(sub)
    _add_queue(sub)
    return parser


def run_cli(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(logging.DEBUG if args.verbose else logging.INFO)
    try:
        return int(args.func(args) or 0)
    except Cancelled:
        print("cancelled", file=sys.stderr)
        return 130
    except StudioError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


# --- commands --------------------------------------------------------------------------------


def cmd_generate(args: argparse.Namespace) -> int:
    from studio.service.cli_requests import request_from_args
    from studio.service.generation import GenerationService, ProgressEvent, StageEvent
    from studio.service.settings import load_settings

    settings = load_settings()
    service = GenerationService(settings)
    request = request_from_args(args, settings, service.cache)
    if args.queue:
        from studio.service.jobs import JobQueue

        job = JobQueue().add(request)
        print(f"queued job {job.id}")
        return 0
    from tqdm import tqdm

    bar: tqdm | None = None

    def on_event(event: object) -> None:
        nonlocal bar
        if isinstance(event, StageEvent):
            log.info("%s", event.stage)
            if event.stage != "sampling" and bar is not None:
                bar.close()
                bar = None
        elif isinstance(event, ProgressEvent):
            if bar is None:
                bar = tqdm(total=event.steps, desc="sampling", unit="step")
            bar.update(event.step - bar.n)

    result = service.run(uuid.uuid4().hex[:12], request, on_event, output_path=args.out)
    if bar is not None:
        bar.close()
    print(f"wrote {result.video_path} ({result.frames} frames, {result.seconds:.1f} s)")
    return 0


def cmd_models_scan(args: argparse.Namespace) -> int:
    from studio.models.registry import format_scan_table, scan

    for folder in args.folders:
        if not folder.is_dir():
            raise StudioError(f"{folder} is not a folder", "pass folders that hold model files")
    print(format_scan_table(scan(list(args.folders))))
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    from studio.models.registry import format_scan_table
    from studio.service.catalog import list_models
    from studio.service.settings import load_settings

    print(format_scan_table(list_models(load_settings())))
    return 0


def cmd_train_demo(args: argparse.Namespace) -> int:
    from studio.models.demo.train import train_demo

    train_demo(args.out, stage=args.stage, steps=args.steps, resume=not args.no_resume,
               seed=args.seed, continue_from=args.continue_from)
    return 0


def cmd_eval_demo(args: argparse.Namespace) -> int:
    from studio.media.atomic import atomic_write_json
    from studio.models.demo.evaluate import evaluate_demo, format_report
    from studio.models.demo.family import load_demo_model
    from studio.service.catalog import pick_device

    model = load_demo_model(args.model, device=pick_device("auto"))
    report = evaluate_demo(model, args.prompts, steps=args.steps, guidance=args.guidance,
                           seed=args.seed)
    print(format_report(report))
    if args.json is not None:
        atomic_write_json(args.json, report.to_dict())
    return 0


# --- studio queue ----------------------------------------------------------------------------


def cmd_queue_list(args: argparse.Namespace) -> int:
    from studio.service.jobs import JobQueue, jobs_root
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
        saved = saved_progress(jobs_root() / job.id) if job.state.value != "finished" else ""
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
    import signal

    from studio.engine.cancel import CancelToken
    from studio.service.generation import GenerationService
    from studio.service.jobs import JobQueue
    from studio.service.runner import QueueRunner
    from studio.service.settings import load_settings

    queue = JobQueue()
    if queue.paused:
        print("the queue is paused; `studio queue resume` starts it again")
        return 0
    cancel = CancelToken()

    def on_sigint(signum: int, frame: object) -> None:
        print("\ncancelling the current job (Ctrl+C again to stop at once)", file=sys.stderr)
        cancel.set()
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        runner = QueueRunner(queue, GenerationService(load_settings()), *_queue_printer(queue))
        summary = runner.run(cancel, max_jobs=args.max)
    finally:
        signal.signal(signal.SIGINT, previous)
    print(f"{len(summary.finished)} finished, {len(summary.failed)} failed, "
          f"{len(queue.pending())} still queued")
    return 130 if summary.cancelled else 1 if summary.failed else 0


def cmd_queue_pause(args: argparse.Namespace) -> int:
    from studio.service.jobs import JobQueue

    JobQueue().set_paused(True)
    print("queue paused (a running job finishes; no new one starts)")
    return 0


def cmd_queue_resume(args: argparse.Namespace) -> int:
    from studio.service.jobs import JobQueue

    JobQueue().set_paused(False)
    print("queue resumed")
    return 0


def cmd_queue_remove(args: argparse.Namespace) -> int:
    from studio.service.jobs import JobQueue

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
    from studio.service.jobs import JobQueue

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
    from studio.service.jobs import JobQueue

    queue = JobQueue()
    job = queue.restart(queue.find(args.job).id)
    print(f"job {job.id} queued again (number {len(queue.pending())})")
    return 0


def cmd_queue_decode(args: argparse.Namespace) -> int:
    from studio.service.generation import GenerationService
    from studio.service.jobs import JobQueue
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
