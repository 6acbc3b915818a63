"""The toy family object: identify, assemble, plan memory, load — through the public contract."""

from __future__ import annotations

from pathlib import Path

import torch

from studio.engine.cancel import NEVER, CancelToken
from studio.engine.memory_model import ModelMemory, TextEncoderShape, TransformerShape
from studio.engine.model import FIRST_FRAME, Capabilities, FamilyDefaults, LoadedModel
from studio.models.family import Component, FamilyBase, FolderFindings, ModelSet
from studio.models.weight_files import WeightFiles
from tests.app.tiny_family import (
    DEFAULTS,
    GEOMETRY,
    PREVIEW,
    ExactDenoiser,
    HashTextEncoder,
    PoolingVAE,
)

NAME = "toy"
KEY = "toy.colour_gain"
MEMORY = ModelMemory(
    dit_bytes=1000, dit_block_bytes=100, text_encoder_bytes=500, vae_bytes=200,
    dit=TransformerShape(dim=16, ffn_dim=32, num_layers=2, context_len=4), act_bytes=4,
    per_token_time=True, text=TextEncoderShape(8, 2, 4), text_act_bytes=4,
    vae_decode_per_pixel=10.0, vae_encode_per_pixel=10.0, geometry=GEOMETRY,
)  # fmt: skip


class ToyFamily(FamilyBase):
    name = NAME
    title = "Toy (tests)"

    def identify(self, weights: WeightFiles) -> Component | None:
        tensors = weights.tensors()
        if set(tensors) != {KEY}:
            return None
        return Component(family=NAME, role="denoiser", path=weights.paths[0], files=weights.paths,
                         layout="toy", variant="analytic", dtype=weights.dominant_dtype(),
                         size=weights.size)  # fmt: skip

    def assemble(self, root: Path, found: FolderFindings) -> list[ModelSet]:
        parts = tuple(found.components[:1])
        return [ModelSet(id=str(root), family=NAME, variant="analytic", components=parts,
                         dtype=parts[0].dtype, size=parts[0].size, complete=True,
                         problems=tuple(found.errors), name=f"Toy — {root.name}")]  # fmt: skip

    def dtype_for(self, device: torch.device) -> torch.dtype:
        return torch.float32

    def defaults_for(self, model_set: ModelSet) -> FamilyDefaults | None:
        return DEFAULTS

    def planned_memory(self, model_set: ModelSet, dtype: torch.dtype) -> ModelMemory | None:
        return MEMORY

    def load(self, model_set: ModelSet, device: torch.device, dtype: torch.dtype,
             cancel: CancelToken = NEVER) -> LoadedModel:
        return LoadedModel(
            id=model_set.id, name=model_set.name, family=NAME, variant="analytic",
            geometry=GEOMETRY, defaults=DEFAULTS, preview=PREVIEW, text_encoder=HashTextEncoder(),
            denoiser=ExactDenoiser(), vae=PoolingVAE(), device=torch.device(device), dtype=dtype,
            capabilities=Capabilities(samplers=("euler",), conditioning=(FIRST_FRAME,)),
            memory=MEMORY,
        )  # fmt: skip


TOY_FAMILY = ToyFamily()
