"""The Wan family (Wan 2.1 T2V 1.3B / 14B, Wan 2.2 TI2V-5B): the one object the registry knows.

Files are identified by key names and shapes (:mod:`~studio.models.wan.identify`), assembled
and paired per folder (:mod:`~studio.models.wan.sets`), loaded by
:mod:`~studio.models.wan.loader`; the published releases' memory figures come from
:mod:`~studio.models.wan.memory` and their defaults from :mod:`~studio.models.wan.presets`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from studio.engine.cancel import NEVER, CancelToken
from studio.engine.memory_model import ModelMemory
from studio.engine.model import FamilyDefaults, FewStepPreset, LoadedModel
from studio.models.bench_config import BenchConfig
from studio.models.family import Component, FamilyBase, FolderFindings, ModelSet
from studio.models.fp8 import is_fp8_precision
from studio.models.wan import sets
from studio.models.wan.clip_model import clip_memory
from studio.models.wan.expert_model import expert_memory
from studio.models.wan.identify import (
    FAMILY_NAME,
    TOKENIZER_FILES,
    describe_tokenizer,
    describe_weights,
)
from studio.models.wan.keys import diffusers_module_name
from studio.models.wan.loader import load_wan_model
from studio.models.wan.lora import WAN_FEW_STEP, wan_lora_parts, wan_lora_targets
from studio.models.wan.memory import published_memory
from studio.models.wan.presets import VARIANTS
from studio.models.weight_files import WeightFiles


class WanFamily(FamilyBase):
    """Wan 2.1 and 2.2 from the original, diffusers and single-file layouts."""

    name = FAMILY_NAME
    title = "Wan 2.1 / 2.2"

    def identify(self, weights: WeightFiles) -> Component | None:
        return describe_weights(weights)

    def identify_folder(self, folder: Path, names: Sequence[str]) -> Component | None:
        if any(name in TOKENIZER_FILES for name in names):
            return describe_tokenizer(folder, names)
        return None

    def set_root(self, folder: Path) -> Path | None:
        return sets.set_root(folder)

    def assemble(self, root: Path, found: FolderFindings) -> list[ModelSet]:
        return sets.assemble(root, found)

    def defaults_for(self, model_set: ModelSet) -> FamilyDefaults | None:
        variant = VARIANTS.get(model_set.variant)
        return variant.defaults if variant is not None else None

    def planned_memory(self, model_set: ModelSet, dtype: torch.dtype) -> ModelMemory | None:
        """Published figures; an fp8 set keeps its projections in fp8 off the CPU."""
        fp8 = is_fp8_precision(model_set.dtype) and dtype != torch.float32
        variant = VARIANTS.get(model_set.variant)
        if variant is not None and variant.experts:
            return expert_memory(variant, dtype, fp8)
        if variant is not None and variant.clip:
            return clip_memory(variant, dtype, fp8)
        return published_memory(model_set.variant, dtype, fp8_weights=fp8)

    def load(self, model_set: ModelSet, device: torch.device, dtype: torch.dtype,
             cancel: CancelToken = NEVER) -> LoadedModel:
        return load_wan_model(model_set, device, dtype, cancel)

    def lora_targets(self, model_set: ModelSet) -> dict[str, tuple[int, ...]]:
        return wan_lora_targets(model_set)

    def lora_module_name(self, name: str) -> str | None:
        return diffusers_module_name(name)

    def few_step_preset(self, model_set: ModelSet) -> FewStepPreset | None:
        return WAN_FEW_STEP

    def lora_parts(self, model_set: ModelSet, file_name: str) -> tuple[tuple[str, ...], str]:
        return wan_lora_parts(model_set, file_name)

    def bench_configs(self) -> Sequence[BenchConfig]:
        from studio.models.wan.bench_configs import BENCH_CONFIGS

        return BENCH_CONFIGS


WAN_FAMILY = WanFamily()
