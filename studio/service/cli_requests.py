"""Turning command-line options (and recipes) into a :class:`GenerationRequest`.

Precedence: explicit options > the recipe given with ``--recipe`` > the model's defaults.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from studio.engine.request import ConditioningItem, GenerationRequest
from studio.errors import InvalidRequest, MediaError
from studio.models.family import LoadedModel
from studio.service.catalog import ModelCache
from studio.service.recipe import request_from_recipe
from studio.service.settings import Settings

_OPTION_FIELDS = ("prompt", "negative_prompt", "seed", "steps", "guidance", "width", "height",
                  "frames", "fps", "sampler")


def read_recipe(path: Path) -> GenerationRequest:
    """A request from a recipe JSON file or from an MP4 that carries one."""
    if path.suffix.lower() in (".mp4", ".m4v", ".mov"):
        from studio.media.video import read_video_metadata

        recipe = read_video_metadata(path)
        if not recipe:
            raise MediaError(f"{path} carries no Flow Studio recipe",
                             "use a video made by Flow Studio, or its .json recipe")
        return request_from_recipe(recipe)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InvalidRequest("recipe", f"{path} does not exist") from exc
    except (OSError, ValueError) as exc:
        raise InvalidRequest("recipe", f"{path} is not a readable JSON recipe ({exc})") from exc
    return request_from_recipe(data)


def defaults_request(model: LoadedModel, prompt: str) -> GenerationRequest:
    """A request with the model's default settings."""
    d = model.defaults
    width, height = d.sizes[0]
    return GenerationRequest(
        prompt=prompt, steps=d.steps, guidance=d.guidance, shift=d.shift, width=width,
        height=height, frames=d.frames, fps=d.fps, model=model.id,
    )


def request_from_args(
    args: argparse.Namespace, settings: Settings, cache: ModelCache
) -> GenerationRequest:
    """Build and validate the request for ``studio generate``."""
    if args.recipe is not None:
        base = read_recipe(args.recipe)
        if args.model is not None:
            base = base.with_changes(model=args.model)
    else:
        if not args.prompt:
            raise InvalidRequest("prompt", "is missing", 'pass --prompt "..." or --recipe FILE')
        model = cache.get(args.model or "")
        base = defaults_request(model, args.prompt)
    changes: dict[str, Any] = {
        name: getattr(args, name) for name in _OPTION_FIELDS if getattr(args, name) is not None
    }
    if args.shift is not None:
        changes["shift"] = _parse_shift(args.shift)
    if args.image is not None:
        changes["conditioning"] = (
            ConditioningItem(str(args.image), args.image_frame, args.strength, args.fit),
        )
    return base.with_changes(**changes).validate()


def _parse_shift(text: str) -> float | str:
    if text == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError as exc:
        raise InvalidRequest("shift", f"{text!r} is not allowed", 'use "auto" or a number') from exc
