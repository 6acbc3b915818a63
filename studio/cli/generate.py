"""``studio generate`` and ``studio models``: options → a validated request → the service."""

from __future__ import annotations

import argparse
import logging
import uuid
from pathlib import Path

from studio.cli.requests import request_from_args
from studio.errors import StudioError

log = logging.getLogger("studio.cli")

def add_generate(sub: argparse._SubParsersAction) -> None:
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


def cmd_generate(args: argparse.Namespace) -> int:
    from studio.service.generation import GenerationService, ProgressEvent, StageEvent
    from studio.service.settings import load_settings

    settings = load_settings()
    service = GenerationService(settings)
    request = request_from_args(args, service)
    if args.queue:
        from studio.service.job_queue import JobQueue

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
    from studio.models.registry import scan
    from studio.models.scan_table import format_scan_table

    for folder in args.folders:
        if not folder.is_dir():
            raise StudioError(f"{folder} is not a folder", "pass folders that hold model files")
    print(format_scan_table(scan(list(args.folders))))
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    from studio.models.scan_table import format_scan_table
    from studio.service.catalog import list_models
    from studio.service.settings import load_settings

    print(format_scan_table(list_models(load_settings())))
    return 0
