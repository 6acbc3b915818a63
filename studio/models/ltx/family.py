"""The LTX-Video family: the one object the registry knows (docs/families/ltx.md).

Files and folders are identified by :mod:`~studio.models.ltx.identify`, assembled by
:mod:`~studio.models.ltx.sets`, loaded by :mod:`~studio.models.ltx.loader`. The defaults follow
the checkpoint: a distilled one brings guidance 1, no STG and its timestep list. LoRAs are not
supported (the :class:`FamilyBase` answers: no targets).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from studio.engine.cancel import NEVER, CancelToken
from studio.engine.memory_model import ModelMemory
from studio.engine.model import FamilyDefaults, LoadedModel
from studio.models.bench_config import BenchConfig
from studio.models.family import VAE, Component, FamilyBase, FolderFindings, ModelSet
from studio.models.ltx import sets
from studio.models.ltx.identify import (
    FAMILY_NAME,
    TOKENIZER_FILES,
    describe_folder,
    describe_weights,
    set_root,
)
from studio.models.ltx.presets import TITLE, defaults_for
from studio.models.weight_files import WeightFiles


class LTXFamily(FamilyBase):
    """LTX-Video 0.9.x (2B / 13B transformer, causal video VAE, T5-v1.1-XXL)."""

    name = FAMILY_NAME
    title = TITLE

    def identify(self, weights: WeightFiles) -> Component | None:
        return describe_weights(weights)

    def identify_folder(self, folder: Path, names: Sequence[str]) -> Component | None:
        if "config.json" in names or any(n in TOKENIZER_FILES for n in names):
            return describe_folder(folder, names)
        return None

    def set_root(self, folder: Path) -> Path | None:
        return set_root(folder)

    def assemble(self, root: Path, found: FolderFindings) -> list[ModelSet]:
        return sets.assemble(root, found)

    def defaults_for(self, model_set: ModelSet) -> FamilyDefaults | None:
        return defaults_for(model_set.variant) if model_set.variant != "-" else None

    def planned_memory(self, model_set: ModelSet, dtype: torch.dtype) -> ModelMemory | None:
        """The published figures of the set's size and VAE version."""
        from studio.models.ltx.memory import published_memory

        size = model_set.variant.split("-")[0]
        if size not in ("2b", "13b"):
            return None
        vae = model_set.component(VAE)
        return published_memory(size, vae.variant if vae is not None else "0.9.1", dtype)

    def load(self, model_set: ModelSet, device: torch.device, dtype: torch.dtype,
             cancel: CancelToken = NEVER) -> LoadedModel:
        from studio.models.ltx.loader import load_ltx_model

        return load_ltx_model(model_set, device, dtype, cancel)

    def bench_configs(self) -> Sequence[BenchConfig]:
        """``ltx-tiny``, ``ltx-small``, ``ltx-2b-768x512``: random weights."""
        from studio.models.ltx.bench_configs import BENCH_CONFIGS

        return BENCH_CONFIGS


LTX_FAMILY = LTXFamily()
