"""The LTX transformer's time and caption embeddings (PixArt-α's, as the original uses them).

``adaln_single``: t·1000 → 256 sinusoids (cos first) → ``emb.timestep_embedder`` (Linear, SiLU,
Linear) = the embedded time ``[N, D]``; SiLU → ``linear`` → the blocks' 6·D modulation.
``caption_projection``: Linear → GELU-tanh → Linear, T5 width → D.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: Width of the sinusoidal time features.
TIME_FEATURES = 256


def time_features(t: torch.Tensor, dim: int = TIME_FEATURES) -> torch.Tensor:
    """Sinusoids ``[N, dim]`` (float32) of ``t`` ``[N]`` (already ×1000): [cos | sin], periods
    from 2π to 2π·10000."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32,
                                                       device=t.device) / half)  # fmt: skip
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


class TimestepEmbedder(nn.Module):
    """256 sinusoid features → D → D (``linear_1``, SiLU, ``linear_2``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(TIME_FEATURES, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(features)))


class _TimeEmbedding(nn.Module):
    """Holder giving the checkpoint's ``emb.timestep_embedder`` path."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.timestep_embedder = TimestepEmbedder(dim)


class AdaLNSingle(nn.Module):
    """Time → (the blocks' modulation ``[N, 6·D]``, the embedded time ``[N, D]``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.emb = _TimeEmbedding(dim)
        self.linear = nn.Linear(dim, 6 * dim)

    def forward(self, t: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """``t`` ``[N]`` in the network's units (σ·1000); the features enter in ``dtype``."""
        embedded = self.emb.timestep_embedder(time_features(t).to(dtype))
        return self.linear(F.silu(embedded)), embedded


class CaptionProjection(nn.Module):
    """Text-encoder features ``[B, Lc, C]`` → ``[B, Lc, D]``."""

    def __init__(self, in_features: int, dim: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(in_features, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.gelu(self.linear_1(x), approximate="tanh"))
