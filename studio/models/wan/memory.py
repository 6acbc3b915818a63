"""The Wan family's memory model: weight bytes and working sets for the memory forecast.

Two sources: the modules of a loaded set (:func:`loaded_memory`, exact whatever their dtypes)
and the configuration of a published release when nothing is loaded yet
(:func:`published_memory`, used to choose an offload policy before loading). The per-pixel VAE
figures of the published VAEs were measured with
:func:`~studio.engine.memory_model.measure_vae_bytes_per_pixel`; the tests re-measure them.

fp8 weights: loaded modules are counted as they are (a weight kept in fp8 is one byte per
element, plus its 4-byte scale); the published figures count them so when asked
(``fp8_weights``: the set's DiT is fp8 and the device keeps it so, i.e. CUDA). The UMT5 encoder
and the VAE are always dequantized, so they count in their compute dtypes.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from studio.engine.memory_model import (
    ModelMemory,
    TextEncoderShape,
    TransformerShape,
    itemsize,
    measure_vae_bytes_per_pixel,
    module_bytes,
)
from studio.engine.shapes import LatentGeometry
from studio.models.wan.dit import WanDiT
from studio.models.wan.dit_config import WAN21_T2V_1_3B, WAN21_T2V_14B, WAN22_TI2V_5B, WanDiTConfig
from studio.models.wan.presets import UMT5_XXL_SIZES, WAN21_GEOMETRY, WAN22_GEOMETRY
from studio.models.wan.vae import WAN21_VAE, WAN22_VAE, CausalVideoVAE, WanVAEConfig
from studio.models.wan.vae_factory import build_vae

#: VAE working set in bytes per output pixel (one latent-frame chunk, float32): decode excludes
#: the output video and the two latent-sized tensors; encode is one 4-frame chunk plus frame 0.
VAE_PER_PIXEL: dict[WanVAEConfig, tuple[float, float]] = {
    WAN21_VAE: (18710.0, 16370.0),
    WAN22_VAE: (16381.5, 6895.5),
}
_PUBLISHED = {"t2v-1.3b": (WAN21_T2V_1_3B, WAN21_VAE, WAN21_GEOMETRY),
              "t2v-14b": (WAN21_T2V_14B, WAN21_VAE, WAN21_GEOMETRY),
              "ti2v-5b": (WAN22_TI2V_5B, WAN22_VAE, WAN22_GEOMETRY)}  # fmt: skip


def transformer_shape(config: WanDiTConfig) -> TransformerShape:
    return TransformerShape(config.dim, config.ffn_dim, config.num_layers, config.text_len)


def dit_parameter_counts(config: WanDiTConfig) -> tuple[int, int]:
    """(parameters kept in float32, other parameters) of a :class:`WanDiT` (analytic)."""
    d, f, n = config.dim, config.ffn_dim, config.num_layers
    pv = config.patch_volume
    fp32 = (config.freq_dim * d + d + d * d + d  # time_embedding
            + 6 * d * d + 6 * d  # time_projection
            + n * (4 * d + 2 * d + 6 * d)  # norm_q/k ×2, norm3, modulation
            + 2 * d)  # head.modulation
    other = (d * config.in_dim * pv + d  # patch embedding
             + config.text_dim * d + d + d * d + d  # text embedding
             + n * (8 * (d * d + d) + d * f + f + f * d + d)  # attention ×2, ffn
             + d * config.out_dim * pv + config.out_dim * pv)  # head
    return fp32, other


def dit_fp8_counts(config: WanDiTConfig) -> tuple[int, int]:
    """(weights, layers) a :class:`WanDiT` keeps in fp8 (``WanDiT.keeps_fp8``): q, k, v, o of
    both attentions and the FFN of every block, and the text MLP."""
    d, f, n = config.dim, config.ffn_dim, config.num_layers
    return n * (8 * d * d + 2 * d * f) + config.text_dim * d + d * d, 10 * n + 2


def _fp8_saving(weights: int, layers: int, dtype: torch.dtype) -> int:
    """Bytes saved by keeping ``weights`` in fp8 (1 byte, not itemsize) with a float32 scale
    per layer."""
    return (itemsize(dtype) - 1) * weights - 4 * layers


def dit_weight_bytes(config: WanDiTConfig, dtype: torch.dtype, fp8: bool = False) -> int:
    """Bytes of the DiT's weights when loaded in ``dtype`` (fp32 groups stay float32); with
    ``fp8`` the projections stay fp8 (:func:`dit_fp8_counts`)."""
    fp32, other = dit_parameter_counts(config)
    saving = _fp8_saving(*dit_fp8_counts(config), dtype) if fp8 else 0
    return 4 * fp32 + itemsize(dtype) * other - saving


def umt5_weight_bytes(vocab_size: int, d_model: int, d_ff: int, num_layers: int, num_heads: int,
                      d_kv: int, buckets: int, dtype: torch.dtype) -> int:
    """Bytes of a UMT5 encoder (tied embedding counted once) in ``dtype``."""
    return itemsize(dtype) * (vocab_size * d_model + d_model) + num_layers * umt5_layer_bytes(
        d_model, d_ff, num_heads, d_kv, buckets, dtype)


def umt5_layer_bytes(d_model: int, d_ff: int, num_heads: int, d_kv: int, buckets: int,
                     dtype: torch.dtype) -> int:
    """Bytes of one UMT5 encoder layer (attention with its own position bias, gated FFN)."""
    inner = num_heads * d_kv
    return itemsize(dtype) * (4 * d_model * inner + buckets * num_heads + 2 * d_model
                              + 3 * d_model * d_ff)


@functools.lru_cache(maxsize=16)
def vae_weight_bytes(config: WanVAEConfig) -> int:
    """Bytes of a Wan VAE in float32 (counted on a module built on the meta device)."""
    with torch.device("meta"):
        vae = build_vae(config)
    return 4 * sum(p.numel() for p in vae.parameters())


@functools.lru_cache(maxsize=16)
def vae_bytes_per_pixel(config: WanVAEConfig) -> tuple[float, float]:
    """(decode, encode) working set per output pixel of a Wan VAE, float32: the published
    configurations' constants, else measured once per configuration on the meta device."""
    if config in VAE_PER_PIXEL:
        return VAE_PER_PIXEL[config]
    with torch.device("meta"):
        vae = build_vae(config)
    geometry = LatentGeometry(config.z_dim, config.temporal_factor, config.spatial_factor)
    return measure_vae_bytes_per_pixel(vae, geometry)


def _blocks_bytes(module: nn.Module, path: str) -> tuple[int, int]:
    """(bytes of one repeated block, block count) at ``path`` inside ``module``."""
    blocks = list(module.get_submodule(path))
    return module_bytes(blocks[0]), len(blocks)


def loaded_memory(dit: WanDiT, vae: CausalVideoVAE, encoder: nn.Module, text: TextEncoderShape,
                  geometry: LatentGeometry, *, per_token_time: bool,
                  text_blocks: str | None = None,
                  vae_per_pixel: tuple[float, float] | None = None) -> ModelMemory:
    """Forecast inputs counted on loaded modules (call before any offload moves them).

    ``vae_per_pixel`` gives the VAE's (decode, encode) working set when it was measured
    beforehand; otherwise it is looked up or measured (about a second) once per configuration.
    """
    text_block, text_layers = _blocks_bytes(encoder, text_blocks) if text_blocks else (0, 0)
    decode, encode = vae_per_pixel or vae_bytes_per_pixel(vae.config)
    text_dtype = next(encoder.parameters()).dtype
    return ModelMemory(
        dit_bytes=module_bytes(dit), dit_block_bytes=_blocks_bytes(dit, "blocks")[0],
        text_encoder_bytes=module_bytes(encoder), vae_bytes=module_bytes(vae),
        dit=transformer_shape(dit.config), act_bytes=itemsize(dit.dtype),
        per_token_time=per_token_time, text=text, text_act_bytes=itemsize(text_dtype),
        vae_decode_per_pixel=decode, vae_encode_per_pixel=encode, geometry=geometry,
        text_block_bytes=text_block, text_layers=text_layers,
    )  # fmt: skip


def published_memory(variant: str, dtype: torch.dtype,
                     fp8_weights: bool = False) -> ModelMemory | None:
    """Forecast inputs of a published Wan release from its configuration (nothing loaded):
    DiT and UMT5-XXL in ``dtype``, VAE in float32; with ``fp8_weights`` the DiT's projections
    count one byte each (an fp8 file loaded on CUDA). None for other variants."""
    if variant not in _PUBLISHED:
        return None
    dit, vae, geometry = _PUBLISHED[variant]
    per_block_fp32 = 12 * dit.dim
    per_block = 8 * (dit.dim**2 + dit.dim) + 2 * dit.dim * dit.ffn_dim + dit.ffn_dim + dit.dim
    block_saving = _fp8_saving(8 * dit.dim**2 + 2 * dit.dim * dit.ffn_dim, 10, dtype) \
        if fp8_weights else 0
    decode, encode = vae_bytes_per_pixel(vae)
    umt5 = {**UMT5_XXL_SIZES, "d_kv": 64, "buckets": 32}
    layer = {k: v for k, v in umt5.items() if k not in ("vocab_size", "num_layers")}
    return ModelMemory(
        dit_bytes=dit_weight_bytes(dit, dtype, fp8_weights),
        dit_block_bytes=4 * per_block_fp32 + itemsize(dtype) * per_block - block_saving,
        text_encoder_bytes=umt5_weight_bytes(dtype=dtype, **umt5),
        vae_bytes=vae_weight_bytes(vae), dit=transformer_shape(dit), act_bytes=itemsize(dtype),
        per_token_time=dit.in_dim == 48,  # TI2V takes reference frames; T2V runs uniform t
        text=TextEncoderShape(4096, 64, dit.text_len), text_act_bytes=itemsize(dtype),
        vae_decode_per_pixel=decode, vae_encode_per_pixel=encode, geometry=geometry,
        text_block_bytes=umt5_layer_bytes(dtype=dtype, **layer),
        text_layers=UMT5_XXL_SIZES["num_layers"],
    )  # fmt: skip
