"""What a LoRA may change in a Wan DiT, and the settings its step-distillation LoRAs expect.

The targets are the DiT checkpoint's own tensors (names mapped to the original layout, shapes
from the headers), so a report needs no loaded model. Step-distillation LoRAs for Wan
(lightx2v's "CFG step distill" and the "Lightning" files) are made for 4 steps without
guidance at shift 5, sampled with the plain flow step (docs/lora.md §4).
"""

from __future__ import annotations

from studio.engine.model import DIT_LOW, FewStepPreset
from studio.models.family import ModelSet
from studio.models.wan.keys import DIT
from studio.models.wan.loader import mapped_part, mapped_shapes
from studio.models.wan.presets import VARIANTS

WAN_FEW_STEP = FewStepPreset(steps=4, guidance=1.0, shift=5.0, sampler="euler")


def wan_lora_targets(model_set: ModelSet) -> dict[str, tuple[int, ...]]:
    """Parameter name (original Wan layout) → shape, for the set's DiT."""
    weights, mapping = mapped_part(model_set, DIT)
    return mapped_shapes(weights, mapping)


def wan_lora_parts(model_set: ModelSet, file_name: str) -> tuple[tuple[str, ...], str]:
    """An A14B LoRA goes to the expert its file names (``…high_noise…`` / ``…low_noise…``, as
    the published pairs are named), else to both; a one-DiT release has one part."""
    variant = VARIANTS.get(model_set.variant)
    if variant is None or not variant.experts:
        return (DIT,), ""
    name = file_name.lower()
    if "low_noise" in name:
        return (DIT_LOW,), "the low-noise expert (its file name says low_noise)"
    if "high_noise" in name:
        return (DIT,), "the high-noise expert (its file name says high_noise)"
    return (DIT, DIT_LOW), "both experts"
