"""The Open-Sora 2.0 MMDiT blocks: double-stream, single-stream and the final layer.

Names follow the original's unfused layout (``fused_qkv=False``, the inference config's) so an
original state dict loads strictly; verified against hpcaitech/Open-Sora at
7ad6a96a135feb81f755c84fb391818718f6beb2 (``opensora/models/mmdit/layers.py``):

* ``Modulation.lin`` reads ``SiLU(vec)``; its output is chunked in the order (shift, scale,
  gate) — twice, attention then MLP, in double blocks; once in single blocks;
* double block, per stream (img / txt): ``LayerNorm → (1 + scale)·x + shift → q_proj, k_proj,
  v_proj`` → per-head qk-norm → joint attention over ``[txt; img]`` → ``proj`` added with the
  gate; then ``LayerNorm → modulate → mlp.0 → GELU(tanh) → mlp.2`` added with the gate;
* single block over ``[txt; img]``: ``LayerNorm → modulate`` → ``q_proj``, ``k_proj`` and
  ``v_mlp`` (V and the MLP input fused: the first ``hidden`` outputs are V) → attention and
  GELU(tanh) of the MLP part, concatenated → ``linear2``, added with the gate. Its
  ``q_proj`` / ``k_proj`` always have a bias (``qkv_bias`` only concerns double blocks);
* final layer: ``adaLN_modulation.1`` chunked (shift, scale) — the reverse of diffusers'
  ``norm_out`` — then LayerNorm, modulation and ``linear``.

Shapes: streams ``[B, L, D]`` float32 (the residual stream), ``vec`` float32 ``[B, D]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from studio.models.opensora.mmdit_config import MMDiTConfig
from studio.models.opensora.mmdit_layers import (
    QKNorm,
    attention,
    linear,
    linear_fp32,
    modulate,
    split_heads,
)

Rope = torch.Tensor  # complex64 rotations [B, L, 1, head_dim/2] (rope_tables)


class Modulation(nn.Module):
    """``lin(SiLU(vec))`` in float32, split into ``count`` tensors ``[B, 1, D]``."""

    def __init__(self, dim: int, count: int) -> None:
        super().__init__()
        self.count = count
        self.lin = nn.Linear(dim, count * dim, bias=True)

    def forward(self, vec: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return linear_fp32(F.silu(vec.float()), self.lin)[:, None].chunk(self.count, dim=-1)


class SelfAttention(nn.Module):
    """One stream's attention weights in a double block: q/k/v projections, qk-norm, ``proj``."""

    def __init__(self, config: MMDiTConfig) -> None:
        super().__init__()
        dim, bias = config.hidden_size, config.qkv_bias
        self.num_heads = config.num_heads
        self.q_proj = nn.Linear(dim, dim, bias=bias)
        self.k_proj = nn.Linear(dim, dim, bias=bias)
        self.v_proj = nn.Linear(dim, dim, bias=bias)
        self.norm = QKNorm(config.head_dim)
        self.proj = nn.Linear(dim, dim)

    def qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Modulated ``[B, L, D]`` → normed float32 q, k and v, each ``[B, L, H, head_dim]``."""
        q = split_heads(linear(x, self.q_proj), self.num_heads)
        k = split_heads(linear(x, self.k_proj), self.num_heads)
        v = split_heads(linear(x, self.v_proj), self.num_heads)
        return self.norm.query_norm(q), self.norm.key_norm(k), v


def _mlp(config: MMDiTConfig) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(config.hidden_size, config.mlp_hidden),
        nn.GELU(approximate="tanh"),
        nn.Linear(config.mlp_hidden, config.hidden_size),
    )


def _run_mlp(mlp: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    hidden = F.gelu(linear(x, mlp[0]), approximate="tanh")
    return linear(hidden, mlp[2]).float()


class DoubleStreamBlock(nn.Module):
    """Separate image and text weights, one joint attention (``double_blocks.N``)."""

    def __init__(self, config: MMDiTConfig) -> None:
        super().__init__()
        dim = config.hidden_size
        self.img_mod = Modulation(dim, 6)
        self.img_attn = SelfAttention(config)
        self.img_mlp = _mlp(config)
        self.txt_mod = Modulation(dim, 6)
        self.txt_attn = SelfAttention(config)
        self.txt_mlp = _mlp(config)

    def forward(
        self, img: torch.Tensor, txt: torch.Tensor, vec: torch.Tensor, rope: Rope
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``img`` ``[B, L_img, D]``, ``txt`` ``[B, L_txt, D]`` → both updated (float32)."""
        img_mod, txt_mod = self.img_mod(vec), self.txt_mod(vec)
        img_q, img_k, img_v = self.img_attn.qkv(modulate(img, img_mod[0], img_mod[1]))
        txt_q, txt_k, txt_v = self.txt_attn.qkv(modulate(txt, txt_mod[0], txt_mod[1]))
        joint = attention(torch.cat((txt_q, img_q), dim=1), torch.cat((txt_k, img_k), dim=1),
                          torch.cat((txt_v, img_v), dim=1), rope)  # fmt: skip
        txt_out, img_out = joint[:, : txt.shape[1]], joint[:, txt.shape[1] :]
        img = self._finish(img, img_out, img_mod, self.img_attn, self.img_mlp)
        txt = self._finish(txt, txt_out, txt_mod, self.txt_attn, self.txt_mlp)
        return img, txt

    @staticmethod
    def _finish(
        x: torch.Tensor, attn_out: torch.Tensor, mod: tuple[torch.Tensor, ...],
        attn: SelfAttention, mlp: nn.Sequential,
    ) -> torch.Tensor:  # fmt: skip
        """The gated attention output, then the gated MLP, added to one stream."""
        x = torch.addcmul(x.float(), mod[2], linear(attn_out, attn.proj).float())
        return torch.addcmul(x, mod[5], _run_mlp(mlp, modulate(x, mod[3], mod[4])))


class SingleStreamBlock(nn.Module):
    """Parallel attention and MLP over the joint ``[txt; img]`` sequence (``single_blocks.N``)."""

    def __init__(self, config: MMDiTConfig) -> None:
        super().__init__()
        dim = config.hidden_size
        self.num_heads = config.num_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_mlp = nn.Linear(dim, dim + config.mlp_hidden)
        self.linear2 = nn.Linear(dim + config.mlp_hidden, dim)
        self.norm = QKNorm(config.head_dim)
        self.modulation = Modulation(dim, 3)

    def forward(self, x: torch.Tensor, vec: torch.Tensor, rope: Rope) -> torch.Tensor:
        """``x`` ``[B, L_txt + L_img, D]`` → updated ``x`` (float32)."""
        shift, scale, gate = self.modulation(vec)
        x_mod = modulate(x, shift, scale)
        q = self.norm.query_norm(split_heads(linear(x_mod, self.q_proj), self.num_heads))
        k = self.norm.key_norm(split_heads(linear(x_mod, self.k_proj), self.num_heads))
        v, mlp = self._v_and_mlp(x_mod)
        attn = attention(q, k, split_heads(v, self.num_heads), rope)
        out = linear(torch.cat((attn, F.gelu(mlp, approximate="tanh")), dim=-1), self.linear2)
        return torch.addcmul(x.float(), gate, out.float())

    def _v_and_mlp(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``v_mlp(x)`` as two products over its row halves (V, MLP input): each contiguous."""
        dim, weight, bias = x.shape[-1], self.v_mlp.weight, self.v_mlp.bias
        x = x.to(weight.dtype)
        return F.linear(x, weight[:dim], bias[:dim]), F.linear(x, weight[dim:], bias[dim:])


class LastLayer(nn.Module):
    """``final_layer``: adaLN (shift, scale) over a non-affine LayerNorm, then ``linear``."""

    def __init__(self, config: MMDiTConfig) -> None:
        super().__init__()
        dim = config.hidden_size
        self.linear = nn.Linear(dim, config.in_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))

    def forward(self, x: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, L_img, D]``, ``vec`` ``[B, D]`` → ``[B, L_img, in_channels]``."""
        mod = linear_fp32(F.silu(vec.float()), self.adaLN_modulation[1])[:, None]
        shift, scale = mod.chunk(2, dim=-1)
        return linear(modulate(x, shift, scale), self.linear)
