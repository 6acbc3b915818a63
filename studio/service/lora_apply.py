"""Where a LoRA patch meets a loaded model: the denoiser module, the fit check, and whether the
patch may be merged under the model's offload policy (used by the model cache and the jobs)."""

from __future__ import annotations

from torch import nn

from studio.engine.lora import MERGE, ON_THE_FLY, DenoiserPatch, check_targets
from studio.engine.model import LoadedModel
from studio.engine.offload import OffloadPolicy
from studio.errors import CheckpointError

#: Offload policies that keep the denoiser's weights on the device (merging is possible).
RESIDENT_POLICIES = ("", OffloadPolicy.NONE.value, OffloadPolicy.TEXT_ENCODER.value)


def merge_wanted(mode: str, offload: str) -> bool:
    """Whether ``mode`` merges on a model loaded with ``offload`` (auto: when the weights stay
    on the device; an explicit merge with offloaded weights is refused)."""
    if mode == ON_THE_FLY:
        return False
    resident = offload in RESIDENT_POLICIES
    if mode == MERGE and not resident:
        raise CheckpointError(f"LoRA merging needs the denoiser on the device, but the offload "
                              f"policy {offload!r} keeps it in host memory",
                              'use lora mode "on-the-fly" or "auto"')
    return resident


def check_patch(model: LoadedModel, patch: DenoiserPatch) -> None:
    """:func:`~studio.engine.lora.check_targets` for every part, with the studio's error."""
    modules = denoiser_modules(model, patch)
    try:
        for name, part_patch in patch.parts.items():
            check_targets(modules[name], part_patch)
    except ValueError as exc:
        raise CheckpointError(f"a LoRA does not fit the loaded denoiser: {exc}",
                              "rescan the model folder; the checkpoint changed since the "
                              "report") from exc


def denoiser_modules(model: LoadedModel, patch: DenoiserPatch) -> dict[str, nn.Module]:
    """The modules the patch's parts change (``modules.parts["dit"]``, an A14B's
    ``"dit_low"`` too)."""
    missing = [name for name in patch.parts if name not in model.modules.parts]
    if missing:
        raise CheckpointError(f"{model.name} has no {', '.join(missing)} part to apply a LoRA "
                              "to", "remove the LoRAs from the job")
    return {name: model.modules.parts[name] for name in patch.parts}


def denoiser_blocks(model: LoadedModel, patch: DenoiserPatch) -> dict[str, list[nn.Module]]:
    return {name: model.modules.block_list(name) or [] for name in patch.parts}
