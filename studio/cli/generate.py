"""``studio generate`` and ``studio models``: options → a validated request → the service."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from studio.cli.image_spec import IMAGE_FORM, IMAGE_HELP
from studio.cli.interrupt import sigint_cancels
from studio.cli.lora import add_lora_options
from studio.cli.requests import request_from_args
from studio.engine.request import SAMPLERS
from studio.errors import StudioError

log = logging.getLogger("studio.cli")


def add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate a video (the demo model unless --model is given)")
    p.add_argument("--prompt", help="what the video shows")
    p.add_argument("--negative", dest="negative_prompt", help="negative prompt")
    p.add_argument("--model", default=None, help='model folder, or "demo" (default)')
    p.add_argument("--recipe", type=Path, help="reproduce a recipe (.json, or an MP4 made here)")
    p.add_argument("--image", action="append", metavar=IMAGE_FORM, help=IMAGE_HELP)
    p.add_argument("--image-frame", type=int, default=0,
                   help="frame an --image without @FRAME pins: 0 first (default), -1 last")
    p.add_argument("--strength", type=float, default=1.0,
                   help="strength of an --image without :STRENGTH, in 0…1 (default 1: kept)")
    p.add_argument("--fit", choices=("fill", "fit"), default="fill", help="how the image is sized")
    p.add_argument("--seed", type=int)
    p.add_argument("--steps", type=int)
    p.add_argument("--guidance", type=float, help="guidance (a two-expert model's high-noise "
                   "expert's)")
    p.add_argument("--guidance-low", type=float,
                   help="guidance of a two-expert model's low-noise expert (Wan 2.2 A14B)")
    p.add_argument("--guidance-image", type=float, metavar="G",
                   help="image guidance, with a reference image (Open-Sora 2.0; default: the "
                   "model's)")
    p.add_argument("--oscillate", metavar="LIST",
                   help='guidance oscillation: a comma-separated subset of text,image,temporal, '
                   'or "none" (Open-Sora 2.0; default: the model\'s)')
    p.add_argument("--prompt-suffix", metavar="TEXT",
                   help='text appended to the prompt, as the model\'s training did ("" for none; '
                   "default: the model's)")
    p.add_argument("--shift", help='"auto" or a number')
    p.add_argument("--timesteps", metavar="LIST",
                   help="an explicit schedule, comma-separated from 1 down without the final 0 "
                   '(sets the step count; "none": from --steps; default: the model\'s, e.g. '
                   "a distilled LTX-Video's list)")
    p.add_argument("--stg", type=float, metavar="S",
                   help="spatio-temporal guidance scale, 0 = off (LTX-Video; default: the "
                   "model's)")
    p.add_argument("--stg-rescale", type=float, metavar="R",
                   help="r in v·(r·σ(v_c)/σ(v) + 1 − r): the guided velocity's spread pulled "
                   "towards the prompt pass's; 0 and 1 leave it (LTX-Video; default: the "
                   "model's)")
    p.add_argument("--reference-noise", type=float, metavar="S",
                   help="noise on pinned reference frames before each step, times t² "
                   "(LTX-Video's image_cond_noise_scale; default: the model's)")
    p.add_argument("--width", type=int)
    p.add_argument("--height", type=int)
    p.add_argument("--frames", type=int)
    p.add_argument("--fps", type=float)
    p.add_argument("--sampler", choices=SAMPLERS)
    p.add_argument("--cache", metavar="POLICY[:THRESHOLD]",
                   help="step caching: magcache (threshold 0.01) or magcache:T; off: magcache:0")
    add_lora_options(p)
    p.add_argument("--out", type=Path, help="output MP4 (default: the outputs folder)")
    p.add_argument("--queue", action="store_true", help="add to the persistent queue instead")
    p.add_argument("--dry-run", action="store_true",
                   help="load nothing: print the memory forecast and the offload policy")
    p.add_argument("--vram", type=float, metavar="GIB",
                   help="with --dry-run: plan for a GPU with this much free memory")
    p.add_argument("--trust-recipe-paths", action="store_true",
                   help="use the reference images a --recipe names even when they are not "
                   "beside it")  # fmt: skip
    p.set_defaults(func=cmd_generate)


def add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="find and list model sets")
    msub = p.add_subparsers(dest="models_command", required=True)
    scan = msub.add_parser("scan", help="identify the model files in folders")
    scan.add_argument("folders", nargs="+", type=Path)
    scan.set_defaults(func=cmd_models_scan)
    lst = msub.add_parser("list", help="list the demo model and the configured folders' sets")
    lst.set_defaults(func=cmd_models_list)
    tok = msub.add_parser("tokenizer", help="choose the google/umt5-xxl tokenizer folder for Wan "
                          "sets that have none (ComfyUI's files)")  # fmt: skip
    tok.add_argument("folder", type=Path, help="the folder holding tokenizer.json / spiece.model")
    tok.set_defaults(func=cmd_models_tokenizer)


def cmd_generate(args: argparse.Namespace) -> int:
    """Generate one video now. The run is a job of the persistent queue (taken at once), so one
    cut short — Ctrl+C, a failure, a killed process — continues with ``studio queue restart``
    (or runs again from the queue) from its saved state."""
    from studio.media.video import check_video_target
    from studio.service.generation import GenerationService
    from studio.service.job_queue import JobQueue
    from studio.service.settings import load_settings

    if args.dry_run:
        from studio.cli.dry_run import dry_run

        return dry_run(args)
    if args.out is not None:
        args.out = check_video_target(args.out)  # before any work is spent
    settings = load_settings()
    service = GenerationService(settings)
    request = request_from_args(args, service)
    queue = JobQueue()
    job = queue.add(request)
    if args.queue:
        print(f"queued job {job.id}")
        return 0
    if queue.take_next(job.id) is None:
        print(f"job {job.id} was started by another Flow Studio process; it finishes there")
        return 0
    return _run_taken(queue, job.id, service, args.out)


def _run_taken(queue: Any, job_id: str, service: Any, out: Path | None) -> int:
    """Run a job this process took, with a progress bar; Ctrl+C cancels it at the next step."""
    from studio.engine.cancel import CancelToken
    from studio.service.outcome import Ending, record_outcome, run_to_outcome

    cancel = CancelToken()
    with _progress_bar() as on_event, sigint_cancels(cancel):
        outcome = run_to_outcome(job_id, lambda: service.run(
            job_id, queue.get(job_id).request, on_event, cancel, output_path=out))
    record_outcome(queue, outcome)
    if outcome.ending is Ending.FINISHED:
        result = outcome.result
        skipped = (f", {result.forwards} forwards run and {result.skipped_forwards} skipped"
                   if result.skipped_forwards else "")
        print(f"wrote {result.video_path} ({result.frames} frames, {result.seconds:.1f} s"
              f"{skipped})")
        return 0
    restart = f"`studio queue restart {job_id}` continues it from its saved state"
    if outcome.ending is Ending.CANCELLED:
        print(f"cancelled; {restart}", file=sys.stderr)
        return 130
    failure = outcome.failure
    hint = f"{failure.hint} " if failure.hint else ""
    raise StudioError(failure.message, f"{hint}Then {restart}.".strip())


@contextlib.contextmanager
def _progress_bar() -> Iterator[Callable[[object], None]]:
    """An event sink drawing the sampling steps as a bar; closed (with its line ended) before
    anything else is printed."""
    from tqdm import tqdm

    from studio.service.generation import ProgressEvent, StageEvent

    bar: list[tqdm] = []

    def close() -> None:
        while bar:
            bar.pop().close()

    def on_event(event: object) -> None:
        if isinstance(event, StageEvent):
            log.info("%s", event.stage)
            if event.stage != "sampling":
                close()
        elif isinstance(event, ProgressEvent):
            if not bar:
                bar.append(tqdm(total=event.steps, desc="sampling", unit="step"))
            bar[0].update(event.step - bar[0].n)

    try:
        yield on_event
    finally:
        close()


def cmd_models_scan(args: argparse.Namespace) -> int:
    from studio.models.registry import scan
    from studio.models.scan_table import format_scan_table
    from studio.service.settings import load_settings

    for folder in args.folders:
        if not folder.is_dir():
            raise StudioError(f"{folder} is not a folder", "pass folders that hold model files")
    shared = load_settings().shared_model_folders  # the UMT5 tokenizer, when chosen
    print(format_scan_table(scan(list(args.folders), shared=shared)))
    return 0


def cmd_models_tokenizer(args: argparse.Namespace) -> int:
    """Check a folder as the UMT5 tokenizer Wan sets without one use, and save it."""
    from studio.service.settings import load_settings, save_settings, umt5_tokenizer_problem

    folder = args.folder.expanduser().resolve()
    problem = umt5_tokenizer_problem(folder)
    if problem:
        raise StudioError(problem, "choose the google/umt5-xxl folder: the one beside a Wan "
                          "release's models_t5_umt5-xxl-enc-bf16.pth, or the tokenizer files of "
                          "huggingface.co/google/umt5-xxl")  # fmt: skip
    save_settings(load_settings().with_changes(umt5_tokenizer=str(folder)))
    print(f"UMT5 tokenizer: {folder} (saved; Wan sets without a tokenizer folder use it)")
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    from studio.models.scan_table import format_scan_table
    from studio.service.catalog import list_models
    from studio.service.settings import load_settings

    print(format_scan_table(list_models(load_settings())))
    return 0
