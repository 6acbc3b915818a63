"""The decoder stage: a new VAE decoder (of another width, or trained anew) for an exported demo
model's encoder.

The encoder makes the latents the DiT was trained on, so keeping it frozen keeps the DiT valid:
only the decoder, the part that draws the pixels, is replaced. ``studio train demo --stage
decoder --continue-from MODEL`` trains a decoder of :data:`~studio.models.demo.config.VAE_ARCH`'s
width on MODEL's encoder (:data:`~studio.models.demo.train_vae.DECODER_RECIPE`) and exports MODEL
with it: the same DiT, latent statistics and preview factors, the new decoder.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from studio.errors import CheckpointError
from studio.models.demo.checkpoint import write_weights
from studio.models.demo.config import DIT_CONFIG, DIT_FILE, VAE_ARCH, VAE_FILE, DemoConfig
from studio.models.demo.train_vae import DECODER_RECIPE, VaeRecipe, train_vae
from studio.models.wan.vae import CausalVideoVAE

log = logging.getLogger(__name__)

STAGE = "decoder"
_ENCODER_FIELDS = ("version", "dim", "z_dim", "dim_mult", "num_res_blocks", "temporal_downsample")


def train_decoder_stage(
    out_dir: Path,
    source_dir: Path,
    *,
    steps: int | None,
    resume: bool,
    device: torch.device,
    seed: int,
) -> Path:
    """Train the decoder stage in ``out_dir`` on ``source_dir``'s encoder; returns the export.

    Raises:
        CheckpointError: the source's DiT or encoder is not the recipe's architecture.
    """
    source = DemoConfig.load(source_dir)
    mismatched = [f for f in _ENCODER_FIELDS if getattr(source.vae, f) != getattr(VAE_ARCH, f)]
    if source.dit != DIT_CONFIG or mismatched:
        what = "DiT" if source.dit != DIT_CONFIG else f"VAE encoder ({', '.join(mismatched)})"
        raise CheckpointError(f"{source_dir} has another {what} than the recipe's",
                              "continue from an export of the same recipe")  # fmt: skip
    recipe = DECODER_RECIPE if steps is None else DECODER_RECIPE.truncated(steps)
    config = dataclasses.replace(source.vae, dec_dim=VAE_ARCH.decoder_dim)
    encoder = load_file(str(source_dir / VAE_FILE))
    vae = train_vae(out_dir, config, recipe=recipe, resume=resume, device=device, seed=seed,
                    stage=STAGE, encoder=encoder)  # fmt: skip
    return export_with_decoder(out_dir / "model", source_dir, vae, recipe, seed)


def export_with_decoder(
    model_dir: Path, source_dir: Path, vae: CausalVideoVAE, recipe: VaeRecipe, seed: int
) -> Path:
    """Write ``source_dir``'s model with ``vae`` (its new decoder) into ``model_dir``.

    The recipe metadata keeps the source's record (its step counts included, so the export can
    be continued from) and adds the decoder stage's.
    """
    source = DemoConfig.load(source_dir)
    config = dataclasses.replace(
        source, vae=dataclasses.replace(source.vae, dec_dim=vae.config.decoder_dim)
    )
    record = source_recipe(source_dir)
    record["decoder"] = {"recipe": dataclasses.asdict(recipe), "steps": recipe.steps,
                         "seed": seed, "source": str(source_dir.resolve()),
                         "command": "studio train demo --stage decoder"}  # fmt: skip
    model_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(record)
    write_weights(model_dir / DIT_FILE, load_file(str(source_dir / DIT_FILE)), text)
    write_weights(model_dir / VAE_FILE, vae.state_dict(), text)
    config.save(model_dir)
    log.info("exported the demo model with the new decoder to %s", model_dir)
    return model_dir


def source_recipe(model_dir: Path) -> dict[str, Any]:
    """The training record an exported model carries in its DiT file's metadata."""
    with safe_open(str(model_dir / DIT_FILE), "pt") as handle:
        text = (handle.metadata() or {}).get("recipe", "{}")
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{model_dir / DIT_FILE} has an unreadable training record",
                              "continue from a folder that `studio train demo` exported"
                              ) from exc  # fmt: skip
    if not isinstance(record, dict):
        raise CheckpointError(
            f"{model_dir / DIT_FILE}'s training record is not an object",
            "continue from a folder that `studio train demo` exported",
        )
    return record
