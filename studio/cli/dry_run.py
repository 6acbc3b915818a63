"""``studio generate --dry-run``: what a job would need, without loading anything.

The request is the set's defaults (its family's answer before loading) with the options given;
the forecast comes from the family's planned memory for the device's precision. Each offload
policy's peak VRAM is printed, and the policy ``auto`` would choose for the free memory of this
machine's GPU — or for ``--vram GIB``, to plan for another one.
"""

from __future__ import annotations

import argparse

import torch

from studio.engine.memory_forecast import GIB, forecast_memory, forecasts_by_policy
from studio.engine.offload import AUTO, choose_policy, free_device_memory
from studio.engine.request import GenerationRequest
from studio.errors import StudioError


def dry_run(args: argparse.Namespace) -> int:
    """Print the forecast of ``args``' request under every policy and the one chosen."""
    from studio.cli.requests import option_changes
    from studio.models.registry import family
    from studio.service.catalog import find_model
    from studio.service.settings import load_settings

    settings = load_settings()
    model_set = find_model(settings, args.model or "")
    owner = family(model_set.family)
    defaults = owner.defaults_for(model_set)
    memory = owner.planned_memory(model_set, owner.dtype_for(torch.device("cuda")))
    if defaults is None or memory is None:
        raise StudioError(f"{model_set.name or model_set.id} has no memory plan before loading",
                          "generate without --dry-run: the app shows the forecast once loaded")
    width, height = defaults.sizes[0]
    request = GenerationRequest(
        prompt=args.prompt or "", width=width, height=height, frames=defaults.frames,
        steps=defaults.steps, guidance=defaults.guidance, guidance_low=defaults.guidance_low,
    ).with_changes(**option_changes(args)).validate()  # fmt: skip
    free = _free_bytes(args.vram)
    needs = forecasts_by_policy(memory, request)
    choice = choose_policy(needs, free, settings.offload or AUTO)
    print(f"{model_set.name or model_set.id}: {request.width}×{request.height}, "
          f"{request.frames} frames, guidance {request.guidance:g}")
    for policy, peak in needs.items():
        mark = "  ← chosen" if policy is choice.policy else ""
        print(f"  {policy.value:13} peak VRAM ≈ {peak / GIB:5.1f} GiB{mark}")
    ram = forecast_memory(memory, request, "cuda", choice.policy).ram_bytes
    print(f"offload {choice.policy.value} for {free / GIB:.1f} GiB free ({choice.reason}); "
          f"host RAM ≈ {ram / GIB:.1f} GiB")
    return 0


def _free_bytes(vram_gib: float | None) -> int:
    if vram_gib is not None:
        if not 0 < vram_gib <= 4096:
            raise StudioError(f"--vram {vram_gib:g} is not a GPU memory size",
                              "give the free GPU memory in GiB, e.g. --vram 24")
        return int(vram_gib * GIB)
    if torch.cuda.is_available():
        return free_device_memory(torch.device("cuda"))
    raise StudioError("there is no CUDA GPU here to plan for",
                      "give the GPU's free memory with --vram GIB, e.g. --vram 24")
