"""LTX-Video's rotary position embedding and the token coordinates it reads.

Each token has a position (time in seconds, y in pixels, x in pixels) — the pixel coordinates of
its latent cell's corner, time divided by the frame rate (docs/families/ltx.md). Each axis is
mapped to a fraction of ``max_pos`` and then to [−1, 1]; ``dim // 6`` frequencies per axis,
10000^linspace(0, 1) · π/2, interleaved over the axes, every angle used for one adjacent channel
pair. The rotation covers the whole inner width (all heads at once); the first ``dim % 6``
channels are not rotated (cos 1, sin 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def rope_tables(
    coords: torch.Tensor, dim: int, theta: float, max_pos: Sequence[float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables ``[B, L, dim]`` (float32) for token coordinates ``[B, 3, L]``.

    ``coords`` are (seconds, pixels, pixels); computed in float32 whatever the model's dtype,
    as the original does (fractions of 2048 need the mantissa).
    """
    coords = coords.to(torch.float32)
    fractions = torch.stack([coords[:, i] / max_pos[i] for i in range(3)], dim=-1)  # [B, L, 3]
    count = dim // 6
    freqs = theta ** torch.linspace(0.0, 1.0, count, device=coords.device, dtype=torch.float32)
    freqs = freqs * math.pi / 2
    angles = freqs * (fractions.unsqueeze(-1) * 2 - 1)  # [B, L, 3, count]
    angles = angles.transpose(-1, -2).flatten(2)  # [B, L, count·3], the axes interleaved
    cos = angles.cos().repeat_interleave(2, dim=-1)
    sin = angles.sin().repeat_interleave(2, dim=-1)
    pad = dim % 6
    if pad:
        cos = torch.cat([torch.ones_like(cos[..., :pad]), cos], dim=-1)
        sin = torch.cat([torch.zeros_like(sin[..., :pad]), sin], dim=-1)
    return cos, sin


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent channel pairs of ``x`` ``[B, L, dim]``: (a, b) → (a·c − b·s, b·c + a·s).

    Computed in ``x``'s dtype (the tables are cast to it), as the original does.
    """
    pairs = x.unflatten(-1, (-1, 2))
    rotated = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


#: What the blocks rotate q and k with: a complex64 table ``[B, L, dim/2]`` (float32 models) or
#: the real (cos, sin) tables ``[B, L, dim]`` in the model's dtype.
Rope = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def rope_for(cos: torch.Tensor, sin: torch.Tensor, dtype: torch.dtype) -> Rope:
    """The rotation a ``dtype`` model applies. In float32 the pair rotation (a, b) → (a·c − b·s,
    b·c + a·s) is the complex product (a + ib)(c + is), one pass over q or k instead of five
    (stack, two products, a sum, a copy); the tables repeat each angle over its pair, so every
    other column is the pair's. Other dtypes keep the real tables cast to ``dtype``, computing in
    it as the original does (there is no bfloat16 complex type)."""
    if dtype == torch.float32:
        return torch.complex(cos[..., ::2].float(), sin[..., ::2].float())
    return cos.to(dtype), sin.to(dtype)


def rotate(x: torch.Tensor, rope: Rope) -> torch.Tensor:
    """Apply :func:`rope_for`'s rotation to ``x`` ``[B, L, dim]`` (contiguous for the complex
    table)."""
    if isinstance(rope, torch.Tensor):
        pairs = torch.view_as_complex(x.unflatten(-1, (-1, 2)))
        return torch.view_as_real(pairs * rope).flatten(-2)
    return apply_rope(x, *rope)


def video_coords(
    latent_frames: int, latent_height: int, latent_width: int, *, fps: float, causal: bool,
    scale: tuple[int, int, int] = (8, 32, 32), frame_offset: int = 0,
) -> torch.Tensor:
    """Token coordinates ``[3, L]`` float32 (seconds, pixels, pixels) of a latent grid.

    Tokens in (f, h, w) order, L = f·h·w. Latent indices × ``scale`` (the VAE's compression)
    give pixel corners. ``causal``: the first latent frame encodes one pixel frame, so times
    shift by 1 − scale_t and clamp at 0 (latent frames 0, 1, 2 → pixel frames 0, 1, 9).
    ``frame_offset`` (pixel frames) then moves the grid in time — keyframe tokens appended to
    the sequence sit at the frame they pin — and last the time is divided by ``fps``.
    """
    axes = [torch.arange(n, dtype=torch.float32) for n in (latent_frames, latent_height,
                                                             latent_width)]  # fmt: skip
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij")).flatten(1)  # [3, L]
    pixels = grid * torch.tensor(scale, dtype=torch.float32)[:, None]
    if causal:
        pixels[0] = (pixels[0] + 1 - scale[0]).clamp(min=0)
    pixels[0] += frame_offset
    pixels[0] = pixels[0] * (1.0 / fps)  # the original multiplies by the reciprocal
    return pixels
