"""Building blocks of the Open-Sora 2.0 MMDiT: embeddings, rotary tables, qk-norm, attention.

Verified against hpcaitech/Open-Sora at 7ad6a96a135feb81f755c84fb391818718f6beb2
(``opensora/models/mmdit/layers.py``, ``math.py``), which follow black-forest-labs/flux at
802fb4713906133fcbd0d8dc5351620ca4773036 (``src/flux/modules/layers.py``):

* timestep embedding: sinusoid of ``1000·t`` (t ∈ [0, 1], 1 = noise), 256 channels, the
  frequencies ``10000^(−i/128)``, laid out ``[cos, sin]``;
* ``MLPEmbedder``: ``out_layer(SiLU(in_layer(x)))`` (``time_in``, ``vector_in``);
* RoPE: ids ``[B, L, 3]`` (t, h, w); axis i turns ``axes_dim[i] / 2`` adjacent channel pairs
  ``(2j, 2j+1)`` by ``pos · theta^(−2j/axes_dim[i])``; the axes' pairs are concatenated in
  order t, h, w; angles in float64 as the original;
* qk-norm: RMSNorm over the head dimension (eps 1e-6) with a learned ``.scale``, applied to q
  and k before the rotation; attention is plain softmax(q·kᵀ/√d)·v over all heads.

Precision policy (as the studio's Wan DiT): the timestep embedding, the MLP embedders, the
modulation, norms and the rotation run in float32; big projections in their weights' dtype.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

QK_NORM_EPS = 1e-6
TIME_FACTOR = 1000.0
MAX_PERIOD = 10000.0


def linear(x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    """``layer(x)`` in the dtype of the layer's weight (``x`` is cast to it)."""
    return F.linear(x.to(layer.weight.dtype), layer.weight, layer.bias)


def linear_fp32(x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    """``layer(x)`` computed in float32 whatever the weight's storage dtype."""
    bias = None if layer.bias is None else layer.bias.float()
    return F.linear(x.float(), layer.weight.float(), bias)


def timestep_embedding(t: torch.Tensor, dim: int = 256) -> torch.Tensor:
    """Float32 sinusoid ``[B, dim]`` (``[cos, sin]``) of ``1000·t`` for ``t`` ``[B]`` in [0, 1]."""
    half = dim // 2
    exponent = torch.arange(half, dtype=torch.float32, device=t.device) / half
    freqs = torch.exp(-math.log(MAX_PERIOD) * exponent)
    args = (TIME_FACTOR * t.float())[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class MLPEmbedder(nn.Module):
    """``out_layer(SiLU(in_layer(x)))``: ``[B, in_dim]`` → float32 ``[B, hidden]``."""

    def __init__(self, in_dim: int, hidden: int) -> None:
        super().__init__()
        self.in_layer = nn.Linear(in_dim, hidden, bias=True)
        self.out_layer = nn.Linear(hidden, hidden, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear_fp32(F.silu(linear_fp32(x, self.in_layer)), self.out_layer)


class RMSNorm(nn.Module):
    """RMSNorm over the last dimension with weight ``scale`` (Flux's name), float32 result."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x.float(), (x.shape[-1],), self.scale.float(), QK_NORM_EPS)


class QKNorm(nn.Module):
    """The per-head ``query_norm`` / ``key_norm`` pair (``.norm`` of an attention)."""

    def __init__(self, head_dim: int) -> None:
        super().__init__()
        self.query_norm = RMSNorm(head_dim)
        self.key_norm = RMSNorm(head_dim)


def rope_tables(ids: torch.Tensor, axes_dim: tuple[int, ...], theta: float) -> torch.Tensor:
    """Complex64 rotations ``[B, L, 1, Σaxes_dim/2]`` (``cos + i·sin`` of the angles) for
    position ids ``[B, L, n]``; angles formed in float64 as the original."""
    dtype = torch.float64 if ids.device.type != "mps" else torch.float32
    angles = []
    for axis, dim in enumerate(axes_dim):
        exponent = torch.arange(0, dim, 2, dtype=dtype, device=ids.device) / dim
        omega = 1.0 / torch.pow(theta, exponent)
        angles.append(ids[..., axis].to(dtype)[..., None] * omega)
    table = torch.cat(angles, dim=-1)[:, :, None]
    return torch.complex(torch.cos(table).float(), torch.sin(table).float())


def apply_rope(x: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent channel pairs of ``x`` ``[B, L, H, D]`` (float32 in and out).

    One complex multiply per pair: the arithmetic of ``(x₀·cos − x₁·sin, x₀·sin + x₁·cos)``.
    """
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))
    return torch.view_as_real(pairs * rotation).flatten(-2)


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``[B, L, H·D]`` → ``[B, L, H, D]`` (a view: norms and rotation work in this layout)."""
    return x.unflatten(-1, (num_heads, -1))


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rotation: torch.Tensor
              ) -> torch.Tensor:  # fmt: skip
    """Rotary softmax attention: q, k (float32, normed), v ``[B, L, H, D]`` → ``[B, L, H·D]``.

    The rotated q and k are cast to v's dtype (the projection dtype) for the product.
    """
    q = apply_rope(q, rotation).to(v.dtype).transpose(1, 2)
    k = apply_rope(k, rotation).to(v.dtype).transpose(1, 2)
    out = F.scaled_dot_product_attention(q, k, v.transpose(1, 2))
    return out.transpose(1, 2).flatten(-2)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``LayerNorm(x)·(1 + scale) + shift`` in float32 (non-affine LayerNorm, eps 1e-6).

    ``x`` is ``[B, L, D]``; ``shift`` / ``scale`` are ``[B, 1, D]``.
    """
    normed = F.layer_norm(x.float(), (x.shape[-1],), eps=1e-6)
    return torch.addcmul(shift, normed, 1 + scale)
