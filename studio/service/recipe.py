"""The recipe: everything needed to reproduce an output, embedded in it and saved beside it."""

from __future__ import annotations

import platform
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from studio import __version__
from studio.engine.model import LoadedModel
from studio.engine.pipeline import GenerationPlan
from studio.engine.request import GenerationRequest
from studio.errors import InvalidRequest, MediaError
from studio.media.json_file import read_json_file
from studio.service.hashing import sha256_file

RECIPE_VERSION = 1


def model_files_record(files: Iterable[Path]) -> list[dict[str, Any]]:
    """``[{"path", "size", "sha256"}]`` for every file of a model set."""
    return [
        {"path": str(f), "size": Path(f).stat().st_size, "sha256": sha256_file(Path(f))}
        for f in sorted({Path(f) for f in files})
    ]


def build_recipe(
    plan: GenerationPlan,
    model: LoadedModel,
    model_files: list[dict[str, Any]],
    timings: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The recipe dict (JSON-ready) for one output: the request and the plan it ran."""
    request = plan.request
    experts = {"experts": {"boundary": model.experts.boundary,
                           "guidance_low": plan.guidance_low}} if model.experts else {}
    if plan.guidance_image is not None or plan.oscillation or plan.prompt_suffix:
        experts["model_options"] = {"guidance_image": plan.guidance_image,
                                    "oscillation": list(plan.oscillation),
                                    "prompt_suffix": plan.prompt_suffix}
    return {
        "recipe_version": RECIPE_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "request": request.to_dict(),
        "model": {
            "id": model.id,
            "name": model.name,
            "family": model.family,
            "variant": model.variant,
            "files": model_files,
        },
        "precision": str(model.dtype).removeprefix("torch."),
        "device": model.device.type,
        "sampler": request.sampler,
        "shift": plan.shift,
        "schedule": list(plan.schedule),
        "latent_shape": list(plan.latent_shape),
        # the initial noise: torch.randn on a CPU generator seeded with the request's seed, in
        # float32, then moved (engine/noise.py) — some originals draw it on the GPU instead
        "noise": {"generator": "cpu", "dtype": "float32", "seed": request.seed},
        **experts,
        "timings_s": dict(timings or {}),
        "versions": {
            "studio": __version__,
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "python": platform.python_version(),
        },
    }


def request_from_recipe(recipe: dict[str, Any]) -> GenerationRequest:
    """The request inside a recipe (or a bare request dict), validated."""
    if not isinstance(recipe, dict):
        raise InvalidRequest("recipe", "expected a JSON object")
    if "request" in recipe:
        version = recipe.get("recipe_version", RECIPE_VERSION)
        if type(version) is not int or version != RECIPE_VERSION:
            raise InvalidRequest(
                "recipe_version",
                f"{recipe.get('recipe_version')!r} is not supported",
                f"this studio reads recipe version {RECIPE_VERSION}",
            )
        return GenerationRequest.from_dict(recipe["request"])
    return GenerationRequest.from_dict(recipe)


def read_recipe(path: Path) -> GenerationRequest:
    """A request from a recipe JSON file or from an MP4 that carries one."""
    if path.suffix.lower() in (".mp4", ".m4v", ".mov"):
        from studio.media.video import read_video_metadata

        recipe = read_video_metadata(path)
        if not recipe:
            raise MediaError(f"{path} carries no Flow Studio recipe",
                             "use a video made by Flow Studio, or its .json recipe")
        return request_from_recipe(recipe)
    return request_from_recipe(read_json_file(path, "recipe"))
