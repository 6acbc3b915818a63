"""The Open-Sora 2.0 family: the one object the registry knows (docs/families/opensora.md).

Files and folders are identified by :mod:`~studio.models.opensora.identify`, assembled by
:mod:`~studio.models.opensora.sets`, loaded by :mod:`~studio.models.opensora.loader`. LoRAs are
not supported (the :class:`FamilyBase` answers: no targets).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from studio.engine.cancel import NEVER, CancelToken
from studio.engine.memory_model import ModelMemory
from studio.engine.model import FamilyDefaults, LoadedModel
from studio.models.bench_config import BenchConfig
from studio.models.family import Component, FamilyBase, FolderFindings, ModelSet
from studio.models.opensora import sets
from studio.models.opensora.identify import FAMILY_NAME, describe_folder, describe_weights
from studio.models.opensora.loader import load_opensora_model
from studio.models.opensora.memory import published_memory
from studio.models.opensora.presets import DEFAULTS
from studio.models.weight_files import WeightFiles


class OpenSoraFamily(FamilyBase):
    """Open-Sora 2.0 (11B MMDiT, HunyuanVideo VAE, T5-XXL + CLIP-L)."""

    name = FAMILY_NAME
    title = "Open-Sora 2.0"

    def identify(self, weights: WeightFiles) -> Component | None:
        return describe_weights(weights)

    def identify_folder(self, folder: Path, names: Sequence[str]) -> Component | None:
        return describe_folder(folder) if "config.json" in names else None

    def set_root(self, folder: Path) -> Path | None:
        return sets.set_root(folder)

    def assemble(self, root: Path, found: FolderFindings) -> list[ModelSet]:
        return sets.assemble(root, found)

    def defaults_for(self, model_set: ModelSet) -> FamilyDefaults | None:
        return DEFAULTS

    def planned_memory(self, model_set: ModelSet, dtype: torch.dtype) -> ModelMemory | None:
        """The published figures (any Open-Sora 2.0 set has the published sizes)."""
        return published_memory(dtype)

    def load(self, model_set: ModelSet, device: torch.device, dtype: torch.dtype,
             cancel: CancelToken = NEVER) -> LoadedModel:
        return load_opensora_model(model_set, device, dtype, cancel)

    def bench_configs(self) -> Sequence[BenchConfig]:
        """``opensora-tiny``, ``opensora-small``, ``opensora-256px``: random weights."""
        from studio.models.opensora.bench_configs import BENCH_CONFIGS

        return BENCH_CONFIGS


OPENSORA_FAMILY = OpenSoraFamily()
