"""LoRAs on the command line: ``studio generate --lora PATH[:STRENGTH]`` and ``studio lora``.

``--lora`` may be repeated (applied in order). A LoRA recognised as step distillation — or any
LoRA with ``--few-step`` — brings its family's few-step settings (e.g. 4 steps, guidance 1,
shift 5, euler) for every one of those options not given explicitly.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from studio.engine.lora import LORA_MODES
from studio.engine.request import GenerationRequest, LoraItem
from studio.errors import InvalidRequest

_PRESET_FIELDS = ("steps", "guidance", "shift", "sampler")


def add_lora_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lora", action="append", metavar="PATH[:STRENGTH]",
                   help="apply a LoRA (repeatable; strength 1 unless given)")
    p.add_argument("--lora-mode", choices=LORA_MODES,
                   help="merge into the weights, apply on the fly, or auto (default)")
    p.add_argument("--few-step", action="store_true",
                   help="use the family's few-step settings (implied by a distillation LoRA)")


def parse_lora(text: str) -> LoraItem:
    """``PATH[:STRENGTH]`` → a LoRA item (a path may itself hold colons)."""
    path, sep, tail = text.rpartition(":")
    if sep and path:
        try:
            return LoraItem(path, float(tail))
        except ValueError:
            pass
    if not text:
        raise InvalidRequest("lora", "is empty", "use --lora PATH or --lora PATH:STRENGTH")
    return LoraItem(text)


def lora_changes(args: argparse.Namespace, service: Any, base: GenerationRequest
                 ) -> dict[str, Any]:
    """The request changes ``--lora``, ``--lora-mode`` and ``--few-step`` make."""
    changes: dict[str, Any] = {}
    if args.lora:
        changes["loras"] = tuple(parse_lora(text) for text in args.lora)
    if args.lora_mode:
        changes["lora_mode"] = args.lora_mode
    loras = changes.get("loras", base.loras)
    if loras and (args.few_step or args.lora):
        changes.update(_preset_changes(args, service, base, loras))
    return changes


def _preset_changes(args: argparse.Namespace, service: Any, base: GenerationRequest,
                    loras: tuple[LoraItem, ...]) -> dict[str, Any]:
    from studio.service.loras import few_step_preset, lora_report

    model_set = service.cache.find(args.model if args.model is not None else base.model)
    reports = [lora_report(model_set, Path(item.path).expanduser()) for item in loras]
    preset = next((p for r in reports if (p := few_step_preset(model_set, r))), None)
    if preset is None and args.few_step:
        from studio.models.registry import family

        preset = family(model_set.family).few_step_preset(model_set)
        if preset is None:
            raise InvalidRequest("few_step", f"{model_set.name or model_set.id} has no few-step "
                                 "settings", "set --steps, --guidance and --shift yourself")
    if preset is None:
        return {}
    chosen = {name: getattr(preset, name) for name in _PRESET_FIELDS
              if getattr(args, name, None) is None}
    print(f"few-step settings ({preset.label}) for the options not given")
    return chosen


def add_lora_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lora", help="LoRA files: what they change in a model")
    lsub = p.add_subparsers(dest="lora_command", required=True)
    report = lsub.add_parser("report", help="the compatibility report of LoRA files")
    report.add_argument("files", nargs="+", type=Path)
    report.add_argument("--model", default="", help='model folder, or "demo" (default)')
    report.set_defaults(func=cmd_lora_report)


def cmd_lora_report(args: argparse.Namespace) -> int:
    """Print each file's report; exit 1 when any is refused."""
    from studio.errors import StudioError
    from studio.service.catalog import find_model
    from studio.service.loras import few_step_preset, lora_report
    from studio.service.settings import load_settings

    model_set = find_model(load_settings(), args.model)
    refused = False
    for path in args.files:
        try:
            report = lora_report(model_set, path)
        except StudioError as exc:
            print(f"{path}: {exc.message}")
            refused = True
            continue
        print("\n".join(report.lines()))
        preset = few_step_preset(model_set, report)
        if preset is not None:
            print(f"  few-step settings: {preset.label}")
        refused = refused or bool(report.problem)
    return 1 if refused else 0
