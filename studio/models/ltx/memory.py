"""LTX-Video's memory model: weight bytes and working sets for the memory forecast.

From the modules of a loaded set (:func:`loaded_memory`), or, before anything is loaded, from
the published configuration built on the ``meta`` device (:func:`published_memory`). The
transformer is described as one stack of ``num_layers`` blocks over the latent tokens (patch 1,
per-token time: conditioning tokens carry their own t), reading 256 T5 rows.
"""

from __future__ import annotations

import functools
import logging

import torch
from torch import nn
from transformers import T5Config, T5EncoderModel

from studio.engine.memory_model import (
    ModelMemory,
    TextEncoderShape,
    TransformerShape,
    measure_vae_bytes_per_pixel,
    module_bytes,
)
from studio.engine.shapes import LatentGeometry
from studio.models.ltx.presets import GEOMETRY
from studio.models.ltx.text import TEXT_LEN
from studio.models.ltx.transformer import LTXTransformer
from studio.models.ltx.transformer_config import published
from studio.models.ltx.vae_config import LTXVAEConfig

log = logging.getLogger(__name__)

#: T5-v1.1-XXL's encoder sizes (``google/t5-v1_1-xxl``, the PixArt text encoder).
T5_XXL = dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24,
              num_heads=64, feed_forward_proj="gated-gelu")  # fmt: skip
#: (decode, encode) bytes per output pixel of a float32 LTX VAE when it cannot be measured
#: (:func:`vae_per_pixel`): a generous bound, several times the published VAEs' figures.
DEFAULT_VAE_PER_PIXEL = (12000.0, 8000.0)


def loaded_memory(transformer: LTXTransformer, vae: nn.Module, t5: nn.Module,
                  geometry: LatentGeometry = GEOMETRY, *, text_len: int = TEXT_LEN,
                  vae_per_pixel: tuple[float, float] | None = None) -> ModelMemory:
    """The forecast inputs of loaded modules (bytes as they are held)."""
    config = transformer.config
    decode, encode = vae_per_pixel or DEFAULT_VAE_PER_PIXEL
    blocks = transformer.transformer_blocks
    return ModelMemory(
        dit_bytes=module_bytes(transformer), dit_block_bytes=max(module_bytes(b) for b in blocks),
        text_encoder_bytes=module_bytes(t5), vae_bytes=module_bytes(vae),
        dit=TransformerShape(config.dim, 4 * config.dim, config.num_layers, text_len),
        act_bytes=transformer.patchify_proj.weight.element_size(), per_token_time=True,
        text=TextEncoderShape(int(t5.config.d_model), int(t5.config.num_heads), text_len),
        text_act_bytes=next(t5.parameters()).element_size(),
        vae_decode_per_pixel=decode, vae_encode_per_pixel=encode, geometry=geometry,
        text_block_bytes=max(module_bytes(b) for b in t5.encoder.block),
        text_layers=len(t5.encoder.block), guidance_rows=3,  # uncond, cond, STG-perturbed
    )  # fmt: skip


@functools.lru_cache(maxsize=8)
def published_memory(size: str, vae_version: str, dtype: torch.dtype) -> ModelMemory:
    """A published set's forecast inputs (``size`` "2b" / "13b", the VAE's version), the
    transformer and T5 in ``dtype``, the VAE in float32; built on the meta device."""
    from studio.models.ltx.vae import LTXVideoVAE
    from studio.models.ltx.vae_presets import PUBLISHED

    vae_config = PUBLISHED.get(vae_version, PUBLISHED["0.9.1"])
    with torch.device("meta"):
        transformer = LTXTransformer(published("ltx-13b" if size == "13b" else "ltx-2b"))
        transformer = transformer.to(dtype)
        vae = LTXVideoVAE(vae_config)
        t5 = T5EncoderModel(T5Config(**T5_XXL)).to(dtype)
    return loaded_memory(transformer, vae, t5, vae_per_pixel=vae_per_pixel(vae_config))


@functools.lru_cache(maxsize=16)
def vae_per_pixel(config: LTXVAEConfig, geometry: LatentGeometry = GEOMETRY
                  ) -> tuple[float, float]:
    """(decode, encode) working-set bytes per output pixel of a float32 VAE of ``config``,
    measured on a meta-device copy (about 0.2 s; the published 0.9.1 decoder needs about 1700
    bytes, a CPU decode 1791); the default figures when an operation has no meta kernel."""
    from studio.models.ltx.vae import LTXVideoVAE

    with torch.device("meta"):
        vae = LTXVideoVAE(config)
    try:
        return measure_vae_bytes_per_pixel(_RawDecode(vae), geometry)
    except (NotImplementedError, RuntimeError) as exc:
        log.warning("LTX VAE working set not measurable on the meta device (%s)", exc)
        return DEFAULT_VAE_PER_PIXEL


class _RawDecode(nn.Module):
    """The VAE seen by :func:`measure_vae_bytes_per_pixel`: decode at a timestep when the
    decoder is timestep-conditioned (its working set then includes the embedder)."""

    def __init__(self, vae: nn.Module) -> None:
        super().__init__()
        self.vae = vae

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        if self.vae.timestep_conditioning:
            return self.vae.decode(z, timestep=torch.full((z.shape[0],), 0.05, device=z.device))
        return self.vae.decode(z)

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(video)
