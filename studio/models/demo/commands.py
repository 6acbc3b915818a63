"""The demo family's commands: ``studio train demo`` and ``studio eval demo``."""

from __future__ import annotations

import argparse
from pathlib import Path

from studio.models.family import FamilyCommand


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder")
    parser.add_argument("--stage", choices=("all", "vae", "dit", "decoder"), default="all")
    parser.add_argument("--steps", type=int, help="override the number of steps of the stage(s)")
    parser.add_argument("--no-resume", action="store_true", help="ignore existing checkpoints")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--continue-from", type=Path, metavar="MODEL",
                        help="start from an exported demo model folder (e.g. "
                        "resources/models/demo): its weights, a fresh optimizer, the step counts "
                        "it records")  # fmt: skip


def _train(args: argparse.Namespace) -> int:
    from studio.models.demo.train import train_demo

    train_demo(
        args.out,
        stage=args.stage,
        steps=args.steps,
        resume=not args.no_resume,
        seed=args.seed,
        continue_from=args.continue_from,
    )
    return 0


def _eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, help="demo model folder (default: the shipped one)")
    parser.add_argument("--prompts", type=int, default=50, help="text-to-video clips")
    parser.add_argument("--images", type=int, default=10,
                        help="image-to-video clips (the first prompts again, with their first "
                        "frame given)")  # fmt: skip
    parser.add_argument("--steps", type=int)
    parser.add_argument("--guidance", type=float)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the report as JSON")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))


def _eval(args: argparse.Namespace) -> int:
    import torch

    from studio.media.atomic import atomic_write_json
    from studio.models.demo.evaluate import evaluate_demo, format_report
    from studio.models.demo.loader import load_demo_model

    cuda = args.device in ("auto", "cuda") and torch.cuda.is_available()
    model = load_demo_model(args.model, device="cuda" if cuda else "cpu")
    report = evaluate_demo(
        model,
        args.prompts,
        steps=args.steps,
        guidance=args.guidance,
        seed=args.seed,
        n_image=args.images,
    )
    print(format_report(report))
    if args.json is not None:
        atomic_write_json(args.json, report.to_dict())
    return 0


COMMANDS = (
    FamilyCommand(
        "train", "train the shipped demo model (VAE, then DiT)", _train_arguments, _train
    ),
    FamilyCommand(
        "eval",
        "colour, direction, shape, background, whole: text- and image-to-video",
        _eval_arguments,
        _eval,
    ),
)
