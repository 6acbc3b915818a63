"""One LTX-Video transformer block and its parts (``BasicTransformerBlock`` of the original).

Block, for tokens ``[B, L, D]`` and per-token (or per-sample) modulation:
RMSNorm → ·(1 + scale) + shift → self-attention (q/k RMSNorm with weight, RoPE) → ·gate, residual;
cross-attention on the *un-normalized* tokens (text bias −10000 on padding, no RoPE), residual;
RMSNorm → ·(1 + scale) + shift → GELU-tanh MLP (4·D) → ·gate, residual.
Parameter names follow the original checkpoint (``attn1.to_q``, ``attn1.q_norm``, ``ff.net.2`` …).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from studio.models.ltx.rope import Rope, rotate

#: The original ``SkipLayerStrategy`` modes (spatio-temporal guidance), by their config names.
SKIP_MODES = ("attention_values", "attention_skip", "residual", "transformer_block")
#: The q/k norms' epsilon, fixed in the original's ``Attention`` (block norms: the config's).
QK_NORM_EPS = 1e-5


def rms_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """RMS-normalize the last axis, the statistics in float32, the result in ``x``'s dtype."""
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


class RMSNorm(nn.Module):
    """RMS norm with a learned per-channel weight (the attentions' ``q_norm`` / ``k_norm``)."""

    def __init__(self, dim: int, eps: float = QK_NORM_EPS) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.eps).to(self.weight.dtype) * self.weight


@dataclass(frozen=True, eq=False)
class SkipBlocks:
    """Perturb ``blocks`` for the batch rows where ``batch`` (bool ``[B]``) is true.

    Spatio-temporal guidance compares the conditional pass with such a perturbed one. ``mode``:
    ``"attention_values"`` — the self-attention's output projection reads its value projection
    instead of the attention result; ``"attention_skip"`` — it reads the attention's input;
    ``"residual"`` — changes nothing (the original applies it only to attentions with a residual
    connection, and LTX has none); ``"transformer_block"`` — the block passes its input through.
    """

    blocks: tuple[int, ...]
    batch: torch.Tensor
    mode: str = "attention_values"

    def __post_init__(self) -> None:
        if self.mode not in SKIP_MODES:
            raise ValueError(f"skip mode {self.mode!r} is not one of {SKIP_MODES}")
        if self.batch.dtype != torch.bool or self.batch.ndim != 1:
            raise ValueError(f"batch must be a bool [B] tensor, got {self.batch.dtype} "
                             f"{tuple(self.batch.shape)}")  # fmt: skip

    def rows(self, device: torch.device) -> torch.Tensor:
        """``batch`` shaped ``[B, 1, 1]`` on ``device``, to select whole token sequences."""
        return self.batch.to(device, non_blocking=True).view(-1, 1, 1)


class Attention(nn.Module):
    """Multi-head attention over the full inner width; q/k RMS-normalized over all heads."""

    def __init__(self, dim: int, heads: int, head_dim: int) -> None:
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.to_q = nn.Linear(dim, inner)
        self.to_k = nn.Linear(dim, inner)
        self.to_v = nn.Linear(dim, inner)
        self.to_out = nn.ModuleList([nn.Linear(inner, dim)])
        self.q_norm = RMSNorm(inner)
        self.k_norm = RMSNorm(inner)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None,
        bias: torch.Tensor | None = None, rope: Rope | None = None,
        skip: SkipBlocks | None = None,
    ) -> torch.Tensor:
        """``x`` ``[B, L, D]`` attends to ``context`` ``[B, Lc, D]`` (itself if None).

        ``bias`` ``[B, 1, Lc]`` is added to the scores; ``rope`` rotates q and k
        (:func:`~studio.models.ltx.rope.rope_for`).
        """
        source = x if context is None else context
        q = self.q_norm(self.to_q(x))
        k = self.k_norm(self.to_k(source))
        v = self.to_v(source)
        if rope is not None:
            q, k = rotate(q, rope), rotate(k, rope)
        out = self._attend(q, k, v, bias)
        if skip is not None and skip.mode == "attention_values":
            out = torch.where(skip.rows(out.device), v, out)
        elif skip is not None and skip.mode == "attention_skip":
            out = torch.where(skip.rows(out.device), x, out)
        return self.to_out[0](out)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                bias: torch.Tensor | None) -> torch.Tensor:  # fmt: skip
        heads = [t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in (q, k, v)]
        mask = None if bias is None else bias.unsqueeze(1).to(q.dtype)  # [B, 1, 1, Lc]
        out = F.scaled_dot_product_attention(*heads, attn_mask=mask)
        return out.transpose(1, 2).flatten(2).to(q.dtype)


class GeluProjection(nn.Module):
    """``proj`` then tanh-approximated GELU (the MLP's first layer, ``ff.net.0``)."""

    def __init__(self, dim: int, inner: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, inner)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.proj(x), approximate="tanh")


class FeedForward(nn.Module):
    """D → 4·D (GELU-tanh) → D; index 1 is the original's (parameter-free) dropout."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        inner = 4 * dim
        self.net = nn.ModuleList([GeluProjection(dim, inner), nn.Identity(), nn.Linear(inner, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class LTXBlock(nn.Module):
    """Self-attention, cross-attention and MLP with adaLN-single modulation (6 values)."""

    def __init__(self, dim: int, heads: int, head_dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.scale_shift_table = nn.Parameter(torch.randn(6, dim) / dim**0.5)
        self.attn1 = Attention(dim, heads, head_dim)
        self.attn2 = Attention(dim, heads, head_dim)
        self.ff = FeedForward(dim)

    def forward(
        self, x: torch.Tensor, temb: torch.Tensor, context: torch.Tensor, bias: torch.Tensor,
        rope: Rope, skip: SkipBlocks | None = None,
    ) -> torch.Tensor:
        """Tokens ``[B, L, D]``; ``temb`` ``[B, 1 or L, 6·D]`` (the time embedding's
        projection); ``context`` ``[B, Lc, D]`` projected captions; ``bias`` ``[B, 1, Lc]``.
        ``skip`` perturbs this block (the caller passes it only to the listed blocks)."""
        ada = self.scale_shift_table[None, None] + temb.unflatten(-1, (6, -1))  # [B, ·, 6, D]
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = ada.unbind(dim=2)
        # Modulations and gated residuals as one addcmul each: one pass over [B, L, D] where
        # a product and a sum take two (and allocate twice).
        h = torch.addcmul(shift_msa, rms_norm(x, self.eps), 1 + scale_msa)
        out = torch.addcmul(x, gate_msa, self.attn1(h, rope=rope, skip=skip))
        out = out.add_(self.attn2(out, context, bias))  # out is this block's own tensor
        h = torch.addcmul(shift_mlp, rms_norm(out, self.eps), 1 + scale_mlp)
        out = out.addcmul_(gate_mlp, self.ff(h))
        if skip is not None and skip.mode == "transformer_block":
            out = torch.where(skip.rows(out.device), x, out)
        return out
