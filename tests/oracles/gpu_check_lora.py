"""Section 5 of ``gpu_check.py``: LoRAs on the device, on the shipped demo model (a Wan DiT).

A seeded rank-32 LoRA on every linear layer of the blocks is written in the original key format
and read through the studio's own path (``read_lora`` → ``match_lora``). Rows: merged against
on the fly on the device (the same weights, so the same numbers); one guided denoiser call with
no LoRA, merged and on the fly, timed interleaved; and what a distillation LoRA's settings
(Wan's few-step preset: 4 steps, guidance 1) save against the model's own defaults.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import torch
from gpu_check_common import Context, Row, cuda_verdict, verdict
from safetensors.torch import save_file

from studio.bench.measure import denoiser_inputs
from studio.bench.timing import compare, paired_ratio
from studio.engine.fastpath import accelerate
from studio.engine.lora import WeightPatch, merge_patch, patched_on_the_fly
from studio.engine.model import DIT
from studio.models.demo.loader import load_demo_model
from studio.models.lora_file import read_lora
from studio.models.lora_match import match_lora
from studio.models.wan.keys import diffusers_module_name
from studio.models.wan.lora import WAN_FEW_STEP

RANK = 32
#: Merged and on the fly compute the patched weight the same way: equal up to kernel order.
LORA_MAX_REL = 1e-6
#: Time of a guided call with the LoRA / without: merged weights cost nothing; on the fly
#: rebuilds each patched weight per call (rank·in·out multiply-adds per linear layer).
MERGED_RATIO_MAX, ON_THE_FLY_RATIO_MAX = 1.05, 1.5


def random_lora(dit: torch.nn.Module, folder: Path, seed: int = 9) -> Path:
    """A rank-``RANK`` LoRA on every block linear layer, original key format with alpha."""
    generator = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    for name, param in dit.named_parameters():
        if name.startswith("blocks.") and name.endswith(".weight") and param.ndim == 2:
            module, (out, inp) = f"diffusion_model.{name[:-7]}", param.shape
            tensors[f"{module}.lora_down.weight"] = torch.randn(RANK, inp, generator=generator)
            tensors[f"{module}.lora_up.weight"] = 0.01 * torch.randn(out, RANK,
                                                                    generator=generator)
            tensors[f"{module}.alpha"] = torch.tensor(float(RANK))
    path = folder / "gpu_check_lora.safetensors"
    save_file(tensors, str(path))
    return path


def studio_patch(dit: torch.nn.Module, device: torch.device) -> WeightPatch:
    """The LoRA read and matched as a job would, on ``device``."""
    targets = {name: tuple(p.shape) for name, p in dit.named_parameters()}
    with tempfile.TemporaryDirectory() as folder:
        lora = read_lora(random_lora(dit, Path(folder)))
    matched = match_lora(lora, targets, "demo", diffusers_module_name)
    patch = WeightPatch(fingerprint="gpu-check")
    for delta in matched.deltas:
        patch.add(delta, 1.0)
    return patch.moved(device)


def lora(ctx: Context) -> list[Row]:
    """Section 5: merged = on the fly on the device, their cost, and the few-step saving."""
    model = accelerate(load_demo_model(None, ctx.device))
    dit = model.modules.parts[DIT]
    patch = studio_patch(dit, ctx.device)
    merged = copy.deepcopy(dit)
    merge_patch(merged, patch)
    inputs = _inputs(model, ctx.device)

    def call(module: torch.nn.Module) -> torch.Tensor:
        with torch.inference_mode():
            return module.velocity(inputs.x, inputs.t_tok, inputs.context)

    def on_the_fly() -> torch.Tensor:
        with patched_on_the_fly(dit, list(dit.blocks), patch):
            return call(dit)

    rel = _rel(ctx.device_output(on_the_fly()), call(merged).float().cpu())
    repeat = 1 if ctx.dry else 5
    times = compare({"none": lambda: call(dit), "merged": lambda: call(merged),
                     "fly": on_the_fly}, ctx.device, repeat=repeat, warmup=1)
    merged_ratio = paired_ratio(times["merged"], times["none"])
    fly_ratio = paired_ratio(times["fly"], times["none"])
    return [Row(f"demo, rank {RANK} on {len(patch.changes)} layers: on the fly vs merged",
                f"{rel:.1e}", f"≤ {LORA_MAX_REL:g} max |Δ|/max |ref|",
                verdict(rel <= LORA_MAX_REL)),
            Row("guided call, merged / no LoRA (paired)", f"{merged_ratio:.2f}×",
                f"≤ {MERGED_RATIO_MAX:g}×", cuda_verdict(ctx, merged_ratio <= MERGED_RATIO_MAX)),
            Row("guided call, on the fly / no LoRA (paired)", f"{fly_ratio:.2f}×",
                f"≤ {ON_THE_FLY_RATIO_MAX:g}×",
                cuda_verdict(ctx, fly_ratio <= ON_THE_FLY_RATIO_MAX)),
            _few_step_row(model)]  # fmt: skip


def _few_step_row(model) -> Row:  # noqa: ANN001 - a LoadedModel
    """Denoiser forwards at the model's defaults against Wan's few-step preset (guidance 1
    skips the unconditional pass)."""
    defaults = model.defaults
    full = defaults.steps * (2 if defaults.guidance != 1.0 else 1)
    few = WAN_FEW_STEP.steps * (2 if WAN_FEW_STEP.guidance != 1.0 else 1)
    return Row(f"few-step settings ({WAN_FEW_STEP.label}) vs defaults: denoiser passes",
               f"{few} vs {full} ({full / few:.1f}× fewer)", "recorded", "INFO")


def _inputs(model, device: torch.device):  # noqa: ANN001, ANN202
    width, height = model.defaults.sizes[0]
    shape = model.geometry.latent_shape(model.defaults.frames, height, width)
    context = model.text_encoder.encode(["a red circle moving right", ""])
    return denoiser_inputs((2, *shape[1:]), tuple(context.shape[1:]), device, model.dtype)


def _rel(got: torch.Tensor, reference: torch.Tensor) -> float:
    return float((got - reference).abs().max() / reference.abs().max().clamp_min(1e-12))
