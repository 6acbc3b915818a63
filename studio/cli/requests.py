"""``studio generate``'s options → a validated request.

Precedence: explicit options > the recipe given with ``--recipe`` > the model's defaults. A
recipe's model and reference images are used only when they are the user's own or confirmed
(:mod:`studio.service.recipe_check`); relative image paths become absolute, so a queued job runs
the same from any folder.
"""

from __future__ import annotations

import argparse
from typing import Any

from studio.cli.image_spec import parse_image
from studio.cli.lora import lora_changes
from studio.engine.request import OSCILLATION, ConditioningItem, GenerationRequest
from studio.engine.step_cache import DEFAULT_THRESHOLD
from studio.errors import InvalidRequest

_OPTION_FIELDS = ("prompt", "negative_prompt", "seed", "steps", "guidance", "guidance_low",
                  "guidance_image", "prompt_suffix", "width", "height", "frames", "fps",
                  "sampler", "stg", "stg_rescale", "reference_noise")


def request_from_args(args: argparse.Namespace, service: Any) -> GenerationRequest:
    """Build and validate the request for ``studio generate``."""
    from studio.service.model_info import default_request, model_info

    # A malformed --image stops the command before a model is loaded.
    images = tuple(_image_item(text, args) for text in args.image or ())
    if args.recipe is not None:
        base = _recipe_request(args, service.settings)
    else:
        if not args.prompt:
            raise InvalidRequest("prompt", "is missing", 'pass --prompt "..." or --recipe FILE')
        model = service.cache.get(args.model or "")
        base = default_request(model_info(model), args.prompt)
    changes = option_changes(args)
    if args.cache is not None:
        changes["step_cache"] = parse_cache(args.cache)
    if images:  # the queue stores them absolute (recipe_check.absolute_paths)
        changes["conditioning"] = images
    changes.update(lora_changes(args, service, base))
    return base.with_changes(**changes).validate()


def _image_item(text: str, args: argparse.Namespace) -> ConditioningItem:
    """``PATH[@FRAME][:STRENGTH]``; what it leaves out takes ``--image-frame`` and
    ``--strength`` (:func:`studio.cli.image_spec.parse_image`), and every item ``--fit``."""
    return parse_image(text, args.image_frame, args.strength, args.fit)


def option_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The request fields given explicitly on the command line."""
    changes: dict[str, Any] = {
        name: getattr(args, name) for name in _OPTION_FIELDS if getattr(args, name) is not None
    }
    if args.shift is not None:
        changes["shift"] = _parse_shift(args.shift)
    if args.oscillate is not None:
        changes["oscillation"] = parse_oscillation(args.oscillate)
    if args.timesteps is not None:
        changes["timesteps"] = parse_timesteps(args.timesteps)
    if changes.get("timesteps"):
        changes["steps"] = len(changes["timesteps"])
    elif args.steps is not None:
        changes["timesteps"] = None  # a step count replaces a distilled model's list
    return changes


def parse_timesteps(text: str) -> tuple[float, ...] | None:
    """``--timesteps``: comma-separated times from 1 down (without the final 0), or "none"
    (the schedule from ``--steps``); the request checks their order and range."""
    if text.strip().lower() == "none":
        return None
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError as exc:
        raise InvalidRequest("timesteps", f"{text!r} is not a list of numbers",
                             'use e.g. 1,0.9937,0.9875,0.9812,0.975,0.9094,0.725, or "none"'
                             ) from exc


def parse_oscillation(text: str) -> tuple[str, ...]:
    """``--oscillate``: a comma-separated subset of :data:`OSCILLATION`, or "none" → ()."""
    if text.strip().lower() == "none":
        return ()
    names = [name.strip().lower() for name in text.split(",")]
    for name in names:
        if name not in OSCILLATION:
            raise InvalidRequest("oscillation", f"{name!r} is not an oscillation option",
                                 f"use a comma-separated subset of {','.join(OSCILLATION)}, "
                                 'or "none"')
    return tuple(name for name in OSCILLATION if name in names)


def _recipe_request(args: argparse.Namespace, settings: Any) -> GenerationRequest:
    """The recipe's request, refusing what it points at unless it is the user's or confirmed."""
    from studio.service.catalog import list_models
    from studio.service.recipe import read_recipe
    from studio.service.recipe_check import check_recipe

    known = [] if args.model is not None else [s.id for s in list_models(settings)]
    check = check_recipe(read_recipe(args.recipe), args.recipe, known)
    if check.unknown_model:
        raise InvalidRequest(
            "model", f"the recipe {args.recipe} names the model {check.unknown_model}, which is "
            "not one of your model sets",
            "pass --model with the model to use (after checking it), or add its folder to the "
            "model folders",
        )
    request = check.original if args.trust_recipe_paths else check.request
    if check.outside_images and not args.trust_recipe_paths and not args.image:
        raise InvalidRequest(
            "conditioning.image", f"the recipe's reference image {check.outside_images[0]} is "
            f"not beside the recipe {args.recipe}",
            "pass --image to choose the image, or --trust-recipe-paths to use it as named",
        )
    return request.with_changes(model=args.model) if args.model is not None else request


#: The step-cache policies ``--cache`` names, with their default threshold.
CACHE_POLICIES = {"magcache": DEFAULT_THRESHOLD}


def parse_cache(text: str) -> float:
    """``POLICY[:THRESHOLD]`` → the request's ``step_cache`` threshold."""
    policy, _, threshold = text.partition(":")
    if policy not in CACHE_POLICIES:
        raise InvalidRequest("cache", f"{policy!r} is not a step-cache policy",
                             f"use one of {', '.join(CACHE_POLICIES)}, e.g. magcache:0.01")
    try:
        return float(threshold) if threshold else CACHE_POLICIES[policy]
    except ValueError as exc:
        raise InvalidRequest("cache", f"{threshold!r} is not a threshold",
                             "use a number in 0…1, e.g. magcache:0.01") from exc


def _parse_shift(text: str) -> float | str:
    if text == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError as exc:
        raise InvalidRequest("shift", f"{text!r} is not allowed", 'use "auto" or a number') from exc
