"""Saved latents: a job's final latent as safetensors with its recipe, written atomically.

A saved latent lets "decode again" and "export again" run without re-sampling, and survives a
decode that fails or runs out of memory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from studio.errors import MediaError
from studio.media.atomic import atomic_write_bytes
from studio.media.json_file import parse_json_text

LATENT_KEY = "latent"


def save_latent(path: Path, latent: torch.Tensor, recipe: dict[str, Any]) -> None:
    """Write ``latent`` (``[B, C, T', H', W']``, stored float32) and the recipe as metadata.

    The file is serialised in memory (a latent is a few MB) and written with
    :func:`~studio.media.atomic.atomic_write_bytes`, so a full disk is reported as such
    (:class:`MediaError`) and leaves any previous file untouched.
    """
    tensor = latent.detach().float().cpu().contiguous()
    data = save({LATENT_KEY: tensor}, metadata={"recipe": json.dumps(recipe)})
    atomic_write_bytes(Path(path), data)


def load_latent(path: Path) -> tuple[torch.Tensor, dict[str, Any]]:
    """Read a saved latent and its recipe; damaged files raise :class:`MediaError`."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = fh.metadata() or {}
            # Copies: safetensors maps the file, and a file cut short later (by another
            # program) would crash the process when the mapped tensor is read.
            tensors = {key: fh.get_tensor(key).clone() for key in fh.keys()}  # noqa: SIM118
    except FileNotFoundError as exc:
        raise MediaError(f"the saved latent {path} does not exist", "re-run the job") from exc
    except (SafetensorError, OSError, ValueError) as exc:
        raise MediaError(f"the saved latent {path} is damaged ({exc})", "re-run the job") from exc
    if LATENT_KEY not in tensors or tensors[LATENT_KEY].dim() != 5:
        raise MediaError(f"{path} holds no 5-D latent", "re-run the job")
    try:
        recipe = parse_json_text(metadata.get("recipe", "{}"))
    except ValueError as exc:
        raise MediaError(f"the recipe stored in {path} is damaged", "re-run the job") from exc
    return tensors[LATENT_KEY], recipe
