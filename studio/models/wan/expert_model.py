"""A loaded Wan 2.2 A14B: the two experts behind one denoiser, and I2V's image channels.

The high-noise expert runs while t ≥ boundary, the low-noise one below (docs/families/wan.md
§13); each is a model part of its own (:data:`~studio.engine.model.DIT`,
:data:`~studio.engine.model.DIT_LOW`), so the ``model`` and ``blocks`` offload policies keep
only the expert a step needs on the device. I2V A14B takes the reference image as 20 extra
input channels: a 4-channel frame mask and the VAE latent of the image followed by blank frames.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import torch

from studio.engine.experts import ExpertDenoiser
from studio.engine.memory_model import ModelMemory
from studio.engine.model import DIT_LOW, ExpertSwitch, ImageChannels, LoadedModel, VideoVAE
from studio.models.family import ModelSet
from studio.models.wan.dit import WanDiT
from studio.models.wan.experts import boundary_in
from studio.models.wan.memory import published_memory
from studio.models.wan.presets import WanVariant


def with_experts(model: LoadedModel, variant: WanVariant, high: WanDiT, low: WanDiT,
                 model_set: ModelSet) -> LoadedModel:
    """``model`` (loaded around the high-noise expert) with the low-noise expert added."""
    root = Path(model_set.id)
    switch = ExpertSwitch(boundary_in(root if root.is_dir() else root.parent) or variant.boundary)
    modules = replace(model.modules, parts={**model.modules.parts, DIT_LOW: low},
                      blocks={**model.modules.blocks, DIT_LOW: "blocks"})
    memory = replace(model.memory, dit_experts=2) if model.memory is not None else None
    return replace(model, denoiser=ExpertDenoiser(high.velocity_uniform, low.velocity_uniform,
                                                  switch),
                   modules=modules, memory=memory, experts=switch)


def i2v_channels(vae: VideoVAE, temporal_factor: int) -> ImageChannels:
    """Wan I2V's conditioning input: ``[1, r + C, T', H', W']`` = the frame mask (r channels,
    1 on latent positions of given pixel frames, frame 0 counted r times as the causal VAE does)
    and the VAE latent of the clip holding the given images and zeros elsewhere."""
    r = temporal_factor

    def build(images: Mapping[int, torch.Tensor], frames: int, height: int, width: int
              ) -> torch.Tensor:
        device = next(iter(images.values())).device
        video = torch.zeros(1, 3, frames, height, width, device=device)
        mask = torch.zeros(frames, device=device)
        for index, image in images.items():
            video[:, :, index] = image
            mask[index] = 1.0
        latent = vae.encode(video)  # [1, C, T', H', W'], normalised
        latent_frames, h, w = latent.shape[2:]
        mask = torch.cat([mask[:1].repeat(r), mask[1:]]).view(latent_frames, r).transpose(0, 1)
        mask = mask[None, :, :, None, None].expand(1, r, latent_frames, h, w)
        return torch.cat([mask.to(latent.dtype), latent], dim=1)

    return build


def expert_memory(variant: WanVariant, dtype: torch.dtype, fp8: bool = False
                  ) -> ModelMemory | None:
    """Forecast inputs of a published A14B release: two 14B experts (Wan 2.1 14B's shape, their
    projections in fp8 when ``fp8``) with the Wan 2.1 VAE and UMT5-XXL."""
    single = published_memory("t2v-14b", dtype, fp8_weights=fp8)
    return replace(single, dit_experts=2) if single is not None and variant.experts else None
