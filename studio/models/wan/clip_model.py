"""A loaded Wan 2.1 I2V/FLF2V-14B: its CLIP image encoder and the image features it gives the
DiT (docs/families/wan.md §15).

The encoder runs once per job, at the encode stage, on the device it was loaded to (the GPU
without offload; host memory under an offload policy, where one ViT-H forward is cheap beside
the sampling). Its weights are counted with the text encoder's in the memory forecast: both
are used at the encode stage only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import torch
from transformers import CLIPVisionConfig, CLIPVisionModel

from studio.engine.cancel import NEVER, CancelToken
from studio.engine.memory_model import ModelMemory, itemsize, module_bytes
from studio.engine.model import ImageContext, LoadedModel
from studio.models.family import ModelSet
from studio.models.wan.clip import WanClipEncoder, load_wan_clip
from studio.models.wan.keys import IMAGE_ENCODER
from studio.models.wan.memory import published_memory
from studio.models.wan.presets import WanVariant
from studio.models.weight_files import probe_weights

#: Wan's CLIP: open-clip XLM-RoBERTa-large ViT-H/14's vision tower.
CLIP_VIT_H = CLIPVisionConfig(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
                              num_attention_heads=16, image_size=224, patch_size=14,
                              hidden_act="gelu", layer_norm_eps=1e-5)  # fmt: skip


def with_clip(model: LoadedModel, model_set: ModelSet, dtype: torch.dtype,
              cancel: CancelToken = NEVER) -> LoadedModel:
    """``model`` with the set's CLIP image encoder loaded and its features wired to the DiT."""
    part = model_set.component(IMAGE_ENCODER)
    assert part is not None, "checked when the set was found"
    encoder = load_wan_clip(probe_weights(part.path), model.device, dtype, cancel)
    memory = model.memory
    if memory is not None:
        memory = replace(memory, text_encoder_bytes=memory.text_encoder_bytes
                         + module_bytes(encoder.model))
    return replace(model, image_context=clip_features(encoder), memory=memory)


def clip_features(encoder: WanClipEncoder) -> ImageContext:
    """The engine's image-context hook: the images in frame order (FLF2V: first, last)."""

    def features(images: Mapping[int, torch.Tensor]) -> torch.Tensor:
        return encoder.encode([images[index] for index in sorted(images)])

    return features


def clip_memory(variant: WanVariant, dtype: torch.dtype, fp8: bool = False
                ) -> ModelMemory | None:
    """Forecast inputs of a published I2V/FLF2V-14B release: Wan 2.1 14B's DiT (the image
    branch is < 1 % of it) and the CLIP vision tower beside UMT5-XXL."""
    single = published_memory("t2v-14b", dtype, fp8_weights=fp8)
    if single is None or not variant.clip:
        return None
    with torch.device("meta"):
        clip_params = sum(p.numel() for p in CLIPVisionModel(CLIP_VIT_H).parameters())
    return replace(single, text_encoder_bytes=single.text_encoder_bytes
                   + itemsize(dtype) * clip_params)
