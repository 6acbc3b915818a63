"""Reproduce the shipped demo model from scratch: VAE, then latents, then DiT, then export.

``train_demo(out_dir)`` writes resumable checkpoints into ``out_dir`` (``vae.*``, ``dit.*``, the
cached latent dataset ``latents.pt``) and the finished model folder into ``out_dir/model``
(``config.json``, ``dit.safetensors``, ``vae.safetensors`` — what ``resources/models/demo``
ships), then evaluates it on held-out prompts. CUDA is used when present, the CPU otherwise.

``train_demo(out_dir, continue_from=model_dir)`` first seeds ``out_dir`` from an exported model
(:func:`continue_from_model`), so a longer recipe picks up where that model's training ended.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import logging
from pathlib import Path
from typing import Literal

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from studio.errors import CheckpointError, StudioError
from studio.media.atomic import atomic_write_bytes
from studio.models.demo.checkpoint import (
    load_ema_weights,
    read_state,
    save_checkpoint,
    write_weights,
)
from studio.models.demo.config import (
    DIT_CONFIG,
    DIT_FILE,
    VAE_ARCH,
    VAE_FILE,
    DemoConfig,
    DemoDefaults,
)
from studio.models.demo.latents import LatentDataset, build_latent_dataset
from studio.models.demo.text import MiniLMTextEncoder
from studio.models.demo.train_decoder import train_decoder_stage
from studio.models.demo.train_dit import DitRecipe, train_dit
from studio.models.demo.train_vae import VaeRecipe, train_vae
from studio.models.wan.dit import WanDiT
from studio.models.wan.vae import CausalVideoVAE, WanVAEConfig
from studio.models.wan.vae_factory import build_vae

log = logging.getLogger(__name__)

Stage = Literal["all", "vae", "dit", "decoder"]
DATASET_FILE = "latents.pt"
ORIGIN_FILE = "origin.json"
"""Written by :func:`continue_from_model`: which exported model the checkpoints started from."""
CLIPS = 384
CAPTIONS_PER_CLIP = 4


def pick_training_device(device: torch.device | str | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def train_demo(
    out_dir: Path | str,
    *,
    stage: Stage = "all",
    steps: int | None = None,
    resume: bool = True,
    device: torch.device | str | None = None,
    seed: int = 0,
    evaluate: bool = True,
    continue_from: Path | str | None = None,
) -> Path:
    """Train the demo model (``stage`` "vae", "dit" or "all") and export it.

    Args:
        out_dir: folder for checkpoints, the latent cache and the exported ``model/``.
        stage: which stage(s) to run; "dit" needs a finished VAE stage in ``out_dir``;
            "decoder" trains a new decoder for ``continue_from``'s encoder
            (:mod:`~studio.models.demo.train_decoder`) and exports that model with it.
        steps: overrides the step count of the stage(s) run.
        resume: continue from the checkpoints in ``out_dir`` (else start over).
        device: "cuda", "cpu", … (default: CUDA when available).
        seed: seeds data, initialisation and noise.
        evaluate: run the held-out evaluation on the exported model.
        continue_from: an exported demo model folder to start from (see
            :func:`continue_from_model`); ``out_dir`` must hold no checkpoints yet.

    Returns:
        The exported model folder (after the DiT stage) or ``out_dir`` (VAE stage only).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if stage == "decoder" and continue_from is None:
        raise StudioError(
            "the decoder stage trains a new decoder for an exported model's encoder",
            "name that model with --continue-from (e.g. resources/models/demo)",
        )
    if continue_from is not None and stage != "decoder":
        if not resume:
            raise StudioError("continuing from a model resumes from it",
                              "leave out --no-resume")  # fmt: skip
        continue_from_model(out_dir, Path(continue_from))
    device = pick_training_device(device)
    if device.type == "cpu":
        torch.set_num_threads(min(2, torch.get_num_threads()))
    # Denormals made CPU training and sampling ~5× slower; the flag is thread state, so it is
    # restored when training ends instead of leaking into the caller.
    torch.set_flush_denormal(device.type == "cpu")
    try:
        if stage == "decoder" and continue_from is not None:
            model_dir = train_decoder_stage(
                out_dir, Path(continue_from), steps=steps, resume=resume, device=device, seed=seed
            )
            if evaluate:
                run_evaluation(model_dir, device, out_dir)
            return model_dir
        vae_recipe, dit_recipe = stage_recipes(stage, steps)
        if stage in ("all", "vae"):
            train_vae(out_dir, VAE_ARCH, recipe=vae_recipe, resume=resume, device=device,
                      seed=seed)  # fmt: skip
            if stage == "vae":
                return out_dir
        data = prepare_latents(out_dir, vae_recipe, resume=resume, device=device, seed=seed)
        dit = train_dit(out_dir, DIT_CONFIG, data, recipe=dit_recipe, resume=resume, device=device,
                        seed=seed)  # fmt: skip
        model_dir = export_model(out_dir / "model", out_dir, dit, data, vae_recipe, dit_recipe,
                                 seed)  # fmt: skip
        if evaluate:
            run_evaluation(model_dir, device, out_dir)
        return model_dir
    finally:
        torch.set_flush_denormal(False)


def stage_recipes(stage: Stage, steps: int | None) -> tuple[VaeRecipe, DitRecipe]:
    """The recipes of a run: ``steps`` cuts or stretches the stages run (stage "dit" runs on
    the finished VAE, so its recipe stays whole)."""
    vae, dit = VaeRecipe(), DitRecipe()
    if steps is None:
        return vae, dit
    return (vae if stage == "dit" else vae.truncated(steps)), dit.truncated(steps)


def exported_steps(model_dir: Path) -> dict[str, int]:
    """How many steps the VAE and the DiT of an exported model were trained for (its metadata)."""
    with safe_open(str(model_dir / DIT_FILE), "pt") as handle:
        recipe = json.loads((handle.metadata() or {}).get("recipe", "{}"))
    try:
        return {"vae": int(recipe["steps"]["vae"]), "dit": int(recipe["steps"]["dit"])}
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{model_dir / DIT_FILE} records no training step counts",
                              "continue from a folder that `studio train demo` exported"
                              ) from exc  # fmt: skip


def continue_from_model(out_dir: Path, model_dir: Path) -> None:
    """Seed empty checkpoints in ``out_dir`` from the exported model in ``model_dir``.

    An export holds only EMA weights, so both the trained model and its EMA start from them and
    AdamW starts with no state; each stage resumes at the step count the export records. This is
    how the shipped weights are trained further without the original checkpoints (the restart of
    the optimizer state is the one way the result differs from an uninterrupted run).
    """
    if any(read_state(out_dir, stage) for stage in ("vae", "dit")):
        raise StudioError(f"{out_dir} already holds training checkpoints",
                          "resume them without --continue-from, or choose an empty --out folder"
                          )  # fmt: skip
    config = DemoConfig.load(model_dir)
    if config.dit != DIT_CONFIG:
        raise CheckpointError(f"{model_dir} has another DiT architecture than the recipe's",
                              "continue from an export of the same recipe")  # fmt: skip
    stats = {"latent_mean": VAE_ARCH.latent_mean, "latent_std": VAE_ARCH.latent_std}
    if dataclasses.replace(config.vae, **stats) != VAE_ARCH:
        raise CheckpointError(f"{model_dir} has another VAE architecture than the recipe's",
                              "give it the recipe's decoder first: studio train demo --stage "
                              "decoder --continue-from MODEL")  # fmt: skip
    steps = exported_steps(model_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    vae = build_vae(VAE_ARCH)
    dit = WanDiT(DIT_CONFIG)
    for stage, module, name in (("vae", vae, VAE_FILE), ("dit", dit, DIT_FILE)):
        module.load_state_dict(load_file(str(model_dir / name)), strict=True)
        save_checkpoint(out_dir, stage, steps[stage], module, copy.deepcopy(module), None)
    origin = {"model": str(model_dir.resolve()), "steps": steps,
              "note": "EMA weights of the export; fresh AdamW state"}  # fmt: skip
    atomic_write_bytes(out_dir / ORIGIN_FILE, json.dumps(origin, indent=2).encode("utf-8"))
    log.info("continuing from %s (VAE step %d, DiT step %d)", model_dir, steps["vae"],
             steps["dit"])  # fmt: skip


def trained_vae(out_dir: Path, config: WanVAEConfig, device: torch.device) -> CausalVideoVAE:
    """The VAE stage's EMA weights in a VAE built with ``config``."""
    with torch.device("meta"):
        vae = build_vae(config)
    vae.load_state_dict(load_ema_weights(out_dir, "vae"), strict=True, assign=True)
    return vae.to(device).eval().requires_grad_(False)


def prepare_latents(
    out_dir: Path, recipe: VaeRecipe, *, resume: bool, device: torch.device, seed: int
) -> LatentDataset:
    """Load the cached latent dataset, or build it with the (frozen-encoder) VAE and cache it."""
    path = out_dir / DATASET_FILE
    if resume and path.is_file():
        return LatentDataset.from_dict(torch.load(path, weights_only=True))
    done = getattr(read_state(out_dir, "vae"), "step", 0)
    if done < recipe.encoder_steps:
        raise StudioError(f"the VAE stage has run {done} of its {recipe.encoder_steps} encoder "
                          "steps", "run the VAE stage first (--stage vae)")  # fmt: skip
    vae = trained_vae(out_dir, VAE_ARCH, device)
    text = MiniLMTextEncoder(device=device)
    data = build_latent_dataset(vae, text, CLIPS, CAPTIONS_PER_CLIP, seed)
    buffer = io.BytesIO()
    torch.save(data.to_dict(), buffer)
    atomic_write_bytes(path, buffer.getvalue())
    log.info("latent dataset: %s, std of raw latents %s", tuple(data.latents.shape),
             [round(v, 3) for v in data.std.tolist()])  # fmt: skip
    return data


def export_model(
    model_dir: Path,
    out_dir: Path,
    dit: WanDiT,
    data: LatentDataset,
    vae_recipe: VaeRecipe,
    dit_recipe: DitRecipe,
    seed: int,
) -> Path:
    """Write ``config.json`` and the float32 weights (recipe in the safetensors metadata)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    vae_config = dataclasses.replace(
        VAE_ARCH,
        latent_mean=tuple(round(v, 6) for v in data.mean.tolist()),
        latent_std=tuple(round(v, 6) for v in data.std.tolist()),
    )
    defaults = DemoDefaults(shift=dit_recipe.shift)
    config = DemoConfig(dit=DIT_CONFIG, vae=vae_config, defaults=defaults, preview=data.preview)
    vae = trained_vae(out_dir, vae_config, torch.device("cpu"))
    origin_file = out_dir / ORIGIN_FILE
    origin = json.loads(origin_file.read_text("utf-8")) if origin_file.is_file() else None
    recipe = json.dumps({
        "vae": dataclasses.asdict(vae_recipe), "dit": dataclasses.asdict(dit_recipe),
        "steps": {stage: read_state(out_dir, stage).step for stage in ("vae", "dit")},
        "clips": data.latents.shape[0], "captions_per_clip": data.captions_per_clip,
        "seed": seed, "command": "studio train demo", "continued_from": origin,
    })  # fmt: skip
    for module, name in ((dit, DIT_FILE), (vae, VAE_FILE)):
        write_weights(model_dir / name, module.state_dict(), recipe)
    config.save(model_dir)
    log.info("exported the demo model to %s", model_dir)
    return model_dir


def run_evaluation(model_dir: Path, device: torch.device, out_dir: Path) -> None:
    """Evaluate the exported model on held-out prompts; the report goes to the log and a file."""
    from studio.models.demo.evaluate import evaluate_demo, format_report
    from studio.models.demo.loader import load_demo_model

    report = evaluate_demo(load_demo_model(model_dir, device=device))
    text = format_report(report)
    log.info("evaluation:\n%s", text)
    atomic_write_bytes(out_dir / "evaluation.txt", (text + "\n").encode("utf-8"))
