"""Open-Sora 2.0's memory model: weight bytes and working sets for the memory forecast.

Two sources, as for Wan: the modules of a loaded set (:func:`loaded_memory`) and the published
configuration before anything is loaded (:func:`published_memory`: the modules built on the
``meta`` device and counted). The MMDiT is described to the forecast as one transformer of
``depth + depth_single_blocks`` blocks over the image tokens, reading 512 T5 rows; its block
offload streams the double- then the single-stream blocks, so the block size is the larger
(double) one. The text encoder part counts T5-XXL and CLIP-L together.
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

from studio.engine.memory_model import (
    ModelMemory,
    TextEncoderShape,
    TransformerShape,
    measure_vae_bytes_per_pixel,
    module_bytes,
)
from studio.models.opensora.hunyuan_vae import HunyuanVAE
from studio.models.opensora.hunyuan_vae_config import NO_TILING, OPENSORA_HUNYUAN_VAE
from studio.models.opensora.mmdit import OpenSoraMMDiT
from studio.models.opensora.mmdit_config import OPEN_SORA_V2
from studio.models.opensora.presets import GEOMETRY
from studio.models.opensora.text import T5_LEN

#: (decode, encode) bytes per output pixel of the published VAE in float32, measured with
#: :func:`hunyuan_vae_per_pixel` (the tests measure it again).
VAE_PER_PIXEL = (25652.0, 17336.0)

#: google/t5-v1_1-xxl (encoder) and openai/clip-vit-large-patch14 (text tower) sizes.
T5_XXL = dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24,
              num_heads=64, feed_forward_proj="gated-gelu")  # fmt: skip
CLIP_L = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
              num_attention_heads=12, max_position_embeddings=77)  # fmt: skip


def loaded_memory(mmdit: OpenSoraMMDiT, vae: nn.Module, t5: nn.Module, clip: nn.Module,
                  vae_per_pixel: tuple[float, float] | None = None,
                  text_len: int = T5_LEN) -> ModelMemory:
    """The forecast inputs of loaded modules (bytes as they are held); ``text_len``: T5 rows."""
    config = mmdit.config
    decode, encode = vae_per_pixel or VAE_PER_PIXEL
    projections = mmdit.img_in.weight
    return ModelMemory(
        dit_bytes=module_bytes(mmdit),
        dit_block_bytes=max(module_bytes(b) for b in [*mmdit.double_blocks,
                                                      *mmdit.single_blocks]),
        text_encoder_bytes=module_bytes(t5) + module_bytes(clip), vae_bytes=module_bytes(vae),
        dit=TransformerShape(config.hidden_size, config.mlp_hidden,
                             config.depth + config.depth_single_blocks, text_len),
        act_bytes=projections.element_size(), per_token_time=False,
        text=TextEncoderShape(int(t5.config.d_model), int(t5.config.num_heads), text_len),
        text_act_bytes=next(t5.parameters()).element_size(),
        vae_decode_per_pixel=decode, vae_encode_per_pixel=encode, geometry=GEOMETRY,
        guidance_rows=3,  # image-to-video: prompt + image, negative + image, negative alone
    )  # fmt: skip


@functools.lru_cache(maxsize=4)
def published_memory(dtype: torch.dtype) -> ModelMemory:
    """The published set's forecast inputs, the MMDiT and the encoders in ``dtype``, the VAE in
    float32 (as the loader holds them); built on the meta device, nothing allocated."""
    with torch.device("meta"):
        mmdit = OpenSoraMMDiT(OPEN_SORA_V2).to_dtype(dtype)
        vae = HunyuanVAE(OPENSORA_HUNYUAN_VAE, NO_TILING)
        t5 = T5EncoderModel(T5Config(**T5_XXL)).to(dtype)
        clip = CLIPTextModel(CLIPTextConfig(**CLIP_L)).to(dtype)
    return loaded_memory(mmdit, vae, t5, clip)


def hunyuan_vae_per_pixel() -> tuple[float, float]:
    """(decode, encode) working set per output pixel of the published VAE, measured on the
    meta device (the working set scales with the area, so one size serves all)."""
    with torch.device("meta"):
        vae = HunyuanVAE(OPENSORA_HUNYUAN_VAE, NO_TILING)
    return measure_vae_bytes_per_pixel(vae, GEOMETRY)
