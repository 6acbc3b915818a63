"""The layers of the Wan DiT: attention, the six-way modulated block and the output head.

Module and parameter names follow the original ``wan/modules/model.py`` so that an original
state dict loads with ``strict=True``. Precision policy (the original's, written without
autocast so it behaves the same on every device): the residual stream, LayerNorm / RMSNorm,
modulation and the head run in float32; the big projections (q, k, v, o, FFN) run in the dtype of
their own weights (bf16 on GPU), and their inputs are cast to it. Projection weights kept in fp8
(scaled fp8 files on the GPU, :mod:`studio.models.fp8`) are upcast to the compute dtype, scale
applied, just before each multiply; every projection goes through :func:`linear` for that.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from studio.models.fp8 import compute_dtype, weight_of
from studio.models.wan.dit_config import WanDiTConfig
from studio.models.wan.rope import apply_rope


def linear(x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    """``layer(x)`` computed in the layer's compute dtype: its weight's, or for a weight kept in
    fp8 the dtype it was loaded for (the weight dequantized for this call only)."""
    weight = weight_of(layer)
    return F.linear(x.to(weight.dtype), weight, layer.bias)


def linear_fp32(x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    """``layer(x)`` computed in float32 whatever the weight's storage dtype."""
    bias = None if layer.bias is None else layer.bias.float()
    return F.linear(x.float(), weight_of(layer).float(), bias)


def modulated_norm(
    x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, eps: float
) -> torch.Tensor:
    """``LayerNorm(x)·(1 + scale) + shift`` in float32 (non-affine LayerNorm).

    ``x`` is ``[B, L, dim]``; ``shift``/``scale`` broadcast to it (``[B, 1, dim]`` or
    ``[B, L, dim]``).
    """
    normed = F.layer_norm(x.float(), (x.shape[-1],), eps=eps)
    return torch.addcmul(normed, normed, scale).add_(shift)


def _rms_norm(x: torch.Tensor, norm: nn.RMSNorm) -> torch.Tensor:
    """RMSNorm over the full model width in float32: ``[B, L, dim]`` → float32 ``[B, L, dim]``."""
    return F.rms_norm(x.float(), (x.shape[-1],), norm.weight.float(), norm.eps)


class WanAttention(nn.Module):
    """Multi-head attention with q/k RMSNorm over the full width (``self_attn`` / ``cross_attn``).

    Parameters: ``q``, ``k``, ``v``, ``o`` (Linear dim → dim) and ``norm_q``, ``norm_k``
    (RMSNorm weights ``[dim]``); with ``image`` (the cross-attention of Wan 2.1 I2V/FLF2V-14B)
    also ``k_img``, ``v_img`` and ``norm_k_img`` for the CLIP image tokens.
    """

    def __init__(self, dim: int, num_heads: int, eps: float, image: bool = False) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)
        self.norm_q = nn.RMSNorm(dim, eps=eps)
        self.norm_k = nn.RMSNorm(dim, eps=eps)
        if image:
            self.k_img = nn.Linear(dim, dim)
            self.v_img = nn.Linear(dim, dim)
            self.norm_k_img = nn.RMSNorm(dim, eps=eps)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, L, dim]`` → ``[B, n, L, d]`` (a view)."""
        return x.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                image: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Scaled dot-product attention on ``[B, n, L, d]`` heads (plus the attention over the
        image keys and values, when given), then the output projection."""
        y = F.scaled_dot_product_attention(q, k, v)
        if image is not None:
            y = y + F.scaled_dot_product_attention(q, *image)
        return linear(y.transpose(1, 2).flatten(2), self.o)

    def self_attention(self, x: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
        """Self-attention with 3D RoPE on q and k.

        Args:
            x: tokens ``[B, L, dim]`` (any dtype; cast to the weights' dtype).
            rope: complex64 rotation table ``[L, d/2]`` for the token grid.

        Returns:
            ``[B, L, dim]`` in the weights' dtype.
        """
        dtype = compute_dtype(self.q)
        x = x.to(dtype)
        q = apply_rope(self._heads(_rms_norm(linear(x, self.q), self.norm_q)), rope).to(dtype)
        k = apply_rope(self._heads(_rms_norm(linear(x, self.k), self.norm_k)), rope).to(dtype)
        v = self._heads(linear(x, self.v))
        return self._attend(q, k, v)

    def cross_attention(self, x: torch.Tensor, context: torch.Tensor,
                        image: torch.Tensor | None = None) -> torch.Tensor:
        """Unmasked attention of ``x`` ``[B, L, dim]`` over ``context`` ``[B, L_ctx, dim]``, and
        over the embedded image tokens ``image`` ``[B, N, dim]`` when given.

        Returns ``[B, L, dim]`` in the weights' dtype.
        """
        dtype = compute_dtype(self.q)
        q = self._heads(_rms_norm(linear(x, self.q), self.norm_q)).to(dtype)
        k = self._heads(_rms_norm(linear(context, self.k), self.norm_k)).to(dtype)
        v = self._heads(linear(context, self.v))
        image_kv = None
        if image is not None:
            k_img = _rms_norm(linear(image, self.k_img), self.norm_k_img)
            image_kv = (self._heads(k_img).to(dtype), self._heads(linear(image, self.v_img)))
        return self._attend(q, k, v, image_kv)


class WanBlock(nn.Module):
    """One transformer block: modulated self-attention, cross-attention, modulated FFN.

    ``modulation`` ``[1, 6, dim]`` is added to the shared timestep projection e0; the six rows
    are (shift, scale, gate) for self-attention then for the FFN. ``norm3`` is the affine
    LayerNorm before cross-attention; the two modulated norms have no parameters.
    """

    def __init__(self, config: WanDiTConfig) -> None:
        super().__init__()
        dim = config.dim
        self.eps = config.eps
        self.self_attn = WanAttention(dim, config.num_heads, config.eps)
        self.norm3 = nn.LayerNorm(dim, eps=config.eps, elementwise_affine=True)
        self.cross_attn = WanAttention(dim, config.num_heads, config.eps,
                                       image=config.image_dim > 0)
        self.ffn = nn.Sequential(
            nn.Linear(dim, config.ffn_dim),
            nn.GELU(approximate="tanh"),
            nn.Linear(config.ffn_dim, dim),
        )
        self.modulation = nn.Parameter(torch.randn(1, 6, dim) / dim**0.5)

    def forward(
        self,
        x: torch.Tensor,
        e0: torch.Tensor,
        context: torch.Tensor,
        rope: torch.Tensor,
        image: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Advance the residual stream.

        Args:
            x: float32 tokens ``[B, L, dim]``.
            e0: float32 timestep projection ``[B, 1, 6, dim]`` (one t per sample) or
                ``[B, L, 6, dim]`` (per-token t).
            context: embedded text ``[B, L_ctx, dim]``.
            rope: complex64 RoPE rotation table ``[L, d/2]``.
            image: embedded CLIP image tokens ``[B, N, dim]`` (I2V/FLF2V-14B only).

        Returns:
            float32 ``[B, L, dim]``.
        """
        table = self.modulation.float()[0]

        def mod(i: int) -> torch.Tensor:  # [B, 1 or L, dim], float32, made when needed
            return e0[:, :, i] + table[i]

        h = modulated_norm(x, mod(0), mod(1), self.eps)
        x = torch.addcmul(x, self.self_attn.self_attention(h, rope).float(), mod(2))
        norm3 = self.norm3
        h = F.layer_norm(
            x, norm3.normalized_shape, norm3.weight.float(), norm3.bias.float(), norm3.eps
        )
        x = x + self.cross_attn.cross_attention(h, context, image).float()
        h = modulated_norm(x, mod(3), mod(4), self.eps)
        y = linear(F.gelu(linear(h, self.ffn[0]), approximate="tanh"), self.ffn[2])
        return torch.addcmul(x, y.float(), mod(5))


class WanHead(nn.Module):
    """Output head: ``head(LN(x)·(1 + scale) + shift)`` with (shift, scale) = modulation + e.

    Note the head is modulated by e (the time embedding), not by the projection e0.
    ``head`` maps dim → out_dim·p_t·p_h·p_w.
    """

    def __init__(self, config: WanDiTConfig) -> None:
        super().__init__()
        self.eps = config.eps
        self.head = nn.Linear(config.dim, config.out_dim * config.patch_volume)
        self.modulation = nn.Parameter(torch.randn(1, 2, config.dim) / config.dim**0.5)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """``x`` float32 ``[B, L, dim]``, ``e`` float32 ``[B, 1 or L, dim]`` → float32
        ``[B, L, out_dim·p_t·p_h·p_w]``."""
        table = self.modulation.float()[0]
        h = modulated_norm(x, e + table[0], e + table[1], self.eps)
        return linear_fp32(h, self.head)
