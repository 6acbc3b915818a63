"""What a memory forecast needs to know about a model, and the activation arithmetic behind it.

A family describes its loaded (or published) model as a :class:`ModelMemory`: weight bytes per
part, the size of one repeated block, the denoiser's transformer shape and the VAE's working set
per output pixel. :mod:`studio.engine.memory_forecast` turns that and a request into peak RAM
and VRAM. The activation formulas below were fitted to runs of the real modules on the ``meta``
device under :class:`~studio.engine.allocation_meter.AllocationMeter` (the tests re-measure them).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from studio.engine.allocation_meter import AllocationMeter
from studio.engine.shapes import LatentGeometry


@dataclass(frozen=True, slots=True)
class TransformerShape:
    """The sizes a DiT's activations depend on.

    Attributes:
        dim: width of the residual stream.
        ffn_dim: hidden width of the feed-forward network.
        num_layers: transformer blocks.
        context_len: text context rows the cross-attention reads.
    """

    dim: int
    ffn_dim: int
    num_layers: int
    context_len: int


@dataclass(frozen=True, slots=True)
class TextEncoderShape:
    """What the text encoder's activations depend on (UMT5: 4096 wide, 64 heads, 512 tokens)."""

    d_model: int
    num_heads: int
    length: int = 512


@dataclass(frozen=True, slots=True)
class ModelMemory:
    """Everything the forecast needs to know about a model set (plain numbers, no tensors).

    Attributes:
        dit_bytes / text_encoder_bytes / vae_bytes: weight bytes as loaded (by dtype).
        dit_block_bytes: weight bytes of one transformer block (block-level offload moves these).
        dit: the denoiser's transformer shape; act_bytes: bytes per element of its projections.
        per_token_time: the DiT embeds the timestep per token (e, e0 of ``[B, L, …]``).
        text: the text encoder's shape; text_act_bytes: its element size.
        vae_decode_per_pixel / vae_encode_per_pixel: working set per output pixel (bytes).
        geometry: latent geometry (channels, r, s, patch).
        text_block_bytes / text_layers: one text-encoder layer's bytes and the layer count
            (block-level offload streams those too).
        dit_experts: how many DiTs of ``dit_bytes`` each the denoiser has (2 for a two-expert
            model; one at a time is needed on the device).
        guidance_rows: the batch a guided step runs through the denoiser at once (2 for
            classifier-free guidance; 3 for Open-Sora 2.0's three passes and LTX-Video's CFG
            with STG); one row less without CFG.
    """

    dit_bytes: int
    dit_block_bytes: int
    text_encoder_bytes: int
    vae_bytes: int
    dit: TransformerShape
    act_bytes: int
    per_token_time: bool
    text: TextEncoderShape
    text_act_bytes: int
    vae_decode_per_pixel: float
    vae_encode_per_pixel: float
    geometry: LatentGeometry
    text_block_bytes: int = 0
    text_layers: int = 0
    dit_experts: int = 1
    guidance_rows: int = 2

    @property
    def all_dit_bytes(self) -> int:
        return self.dit_bytes * self.dit_experts

    @property
    def weight_bytes(self) -> int:
        return self.all_dit_bytes + self.text_encoder_bytes + self.vae_bytes


def itemsize(dtype: torch.dtype) -> int:
    """Bytes per element of ``dtype``."""
    return torch.empty((), dtype=dtype).element_size()


def module_bytes(module: nn.Module | None) -> int:
    """Bytes of a module's parameters and buffers, tied tensors counted once."""
    if module is None:
        return 0
    unique = {id(t): t for t in (*module.parameters(), *module.buffers())}
    return sum(t.numel() * t.element_size() for t in unique.values())


def dit_activation_bytes(
    shape: TransformerShape,
    tokens: int,
    batch: int,
    act_bytes: int,
    *,
    context_len: int | None = None,
    per_token_time: bool = True,
) -> int:
    """Peak bytes a DiT forward allocates (beyond weights and inputs) for ``batch`` × ``tokens``.

    ``R = B·L·dim·4`` is one float32 copy of the residual stream. The block peak is the larger
    of the FFN phase ``3R + 2·B·L·ffn_dim·a`` and the attention phase ``3R + 5·B·L·dim·a``
    (a = ``act_bytes``); per-token time embeddings add 7R; the embedded context
    ``B·L_ctx·dim·a`` and cross-attention keys/values (3 more of that) are added on top.
    Attention never materialises ``L × L`` scores (fused kernels on CUDA, blocked on the CPU).
    """
    lc = shape.context_len if context_len is None else context_len
    rows = batch * tokens
    residual = rows * shape.dim * 4
    ffn_phase = 3 * residual + 2 * rows * shape.ffn_dim * act_bytes
    attention_phase = 3 * residual + 5 * rows * shape.dim * act_bytes
    time = 7 * residual if per_token_time else 0
    context = 4 * batch * lc * shape.dim * act_bytes
    return max(ffn_phase, attention_phase) + time + context


def text_activation_bytes(shape: TextEncoderShape, batch: int, act_bytes: int) -> int:
    """Peak bytes a T5-style forward allocates: position bias and scores ``(1 + 2.5·B)·h·L²``
    plus a few ``B·L·d`` float32 hidden states."""
    scores = shape.num_heads * shape.length**2 * act_bytes
    hidden = batch * shape.length * shape.d_model * 4
    return int((1 + 2.5 * batch) * scores + 4 * hidden)


def measure_vae_bytes_per_pixel(vae: nn.Module, geometry: LatentGeometry) -> tuple[float, float]:
    """Measure (decode, encode) bytes per output pixel of a float32 causal video VAE.

    ``vae`` must be built on the meta device (nothing is allocated; about a second). Decode: a
    2-frame latent of 2×2 cells; the peak minus the output video and the two latent-sized
    tensors the decoder keeps. Encode: a 1 + r frame clip. Every tensor in such a VAE scales
    with the pixel area, so the figures hold for any size.
    """
    s, z, r = geometry.spatial_factor, geometry.channels, geometry.temporal_factor
    pixels = (2 * s) ** 2
    latent = torch.empty(1, z, 2, 2, 2, device="meta")
    with torch.inference_mode(), AllocationMeter() as meter:
        vae.decode(latent)  # type: ignore[operator]
    frames = 1 + r
    decode = (meter.peak - 3 * frames * pixels * 4 - 2 * latent.numel() * 4) / pixels
    video = torch.empty(1, 3, frames, 2 * s, 2 * s, device="meta")
    with torch.inference_mode(), AllocationMeter() as meter:
        vae.encode(video)  # type: ignore[operator]
    return decode, meter.peak / pixels
