"""Where a LoRA patch meets a loaded model: the denoiser module, the fit check, and whether the
patch may be merged under the model's offload policy (used by the model cache and the jobs)."""

from __future__ import annotations

from torch import nn

from studio.engine.lora import MERGE, ON_THE_FLY, WeightPatch, check_targets
from studio.engine.model import DIT, LoadedModel
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


def check_patch(module: nn.Module, patch: WeightPatch) -> None:
    """:func:`~studio.engine.lora.check_targets` with the studio's error."""
    try:
        check_targets(module, patch)
    except ValueError as exc:
        raise CheckpointError(f"a LoRA does not fit the loaded denoiser: {exc}",
                              "rescan the model folder; the checkpoint changed since the "
                              "report") from exc


def denoiser_module(model: LoadedModel) -> nn.Module:
    """The module LoRAs patch (``modules.parts["dit"]``)."""
    module = model.modules.parts.get(DIT)
    if module is None:
        raise CheckpointError(f"{model.name} exposes no denoiser module to apply a LoRA to",
                              "remove the LoRAs from the job")
    return module
