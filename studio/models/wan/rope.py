"""Wan's 3D rotary position embedding and sinusoidal timestep embedding.

RoPE: each head's d channels form d/2 adjacent pairs (2i, 2i+1), each rotated as one complex
number. The pairs are split between the axes (t, h, w) as
``[d/2 − 2·⌊d/2/3⌋, ⌊d/2/3⌋, ⌊d/2/3⌋]`` (``[22, 21, 21]`` for d = 128); within an axis of D
real channels pair j turns by ``pos · 10000^(−2j/D)`` with ``pos`` the integer grid index
(starting at 0) of the token's latent frame / row / column. Angles are computed in float64, as the
original does, and stored as complex64 unit phasors, cached per (grid, device).
"""

from __future__ import annotations

from collections import OrderedDict

import torch

ROPE_THETA = 10000.0
TIMESTEP_MAX_PERIOD = 10000.0


def _float64_ok(device: torch.device) -> bool:
    return device.type != "mps"


def axis_angles(positions: int, real_dim: int, device: torch.device) -> torch.Tensor:
    """Rotation angles ``[positions, real_dim / 2]`` (float64 where the device has it)."""
    dtype = torch.float64 if _float64_ok(device) else torch.float32
    exponents = torch.arange(0, real_dim, 2, dtype=dtype, device=device) / real_dim
    inv_freq = 1.0 / torch.pow(ROPE_THETA, exponents)
    return torch.outer(torch.arange(positions, dtype=dtype, device=device), inv_freq)


def grid_angles(
    grid: tuple[int, int, int], pairs: tuple[int, int, int], device: torch.device
) -> torch.Tensor:
    """Angles ``[F·H·W, Σpairs]`` for a token grid ``(F, H, W)``, tokens in (f, h, w) order."""
    f, h, w = grid
    at = axis_angles(f, 2 * pairs[0], device)[:, None, None, :].expand(f, h, w, pairs[0])
    ah = axis_angles(h, 2 * pairs[1], device)[None, :, None, :].expand(f, h, w, pairs[1])
    aw = axis_angles(w, 2 * pairs[2], device)[None, None, :, :].expand(f, h, w, pairs[2])
    return torch.cat([at, ah, aw], dim=-1).reshape(f * h * w, sum(pairs))


class RopeCache:
    """Complex64 rotation tables ``[L, d/2]`` (unit phasors) per token grid and device, a small LRU.

    The tables are plain tensors, not module buffers, so they never appear in a state dict.
    """

    def __init__(self, pairs: tuple[int, int, int], max_entries: int = 8) -> None:
        self.pairs = pairs
        self.max_entries = max_entries
        self._tables: OrderedDict[tuple, torch.Tensor] = OrderedDict()

    def get(self, grid: tuple[int, int, int], device: torch.device) -> torch.Tensor:
        key = (tuple(grid), device)
        table = self._tables.get(key)
        if table is None:
            angles = grid_angles(grid, self.pairs, device)
            table = torch.polar(torch.ones_like(angles), angles).to(torch.complex64)
            self._tables[key] = table
            while len(self._tables) > self.max_entries:
                self._tables.popitem(last=False)
        else:
            self._tables.move_to_end(key)
        return table

    def clear(self) -> None:
        self._tables.clear()


def apply_rope(x: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent channel pairs (2i, 2i+1) of ``x`` ``[B, n, L, d]`` as complex numbers.

    ``rotation`` is a complex64 table ``[L, d/2]`` from :class:`RopeCache`. Math in float32
    (one complex multiply, the same arithmetic as x₀·cos − x₁·sin, x₀·sin + x₁·cos); returns a
    contiguous float32 ``[B, n, L, d]`` for any layout of ``x`` whose last dim is contiguous.
    """
    x = x.float()
    if x.stride(-1) != 1 or any(s % 2 for s in x.stride()[:-1]):
        x = x.contiguous()
    pairs = torch.view_as_complex(x.unflatten(-1, (-1, 2)))
    return torch.view_as_real(pairs * rotation).flatten(-2)


def timestep_embedding(timestep: torch.Tensor, freq_dim: int) -> torch.Tensor:
    """Sinusoidal embedding ``[..., freq_dim]`` = [cos(t·ω), sin(t·ω)], ω_i = 10000^(−i/half).

    ``timestep`` is in Wan units (1000·t, float, any shape). The products are formed in float64
    as in the original; the result is float32.
    """
    dtype = torch.float64 if _float64_ok(timestep.device) else torch.float32
    half = freq_dim // 2
    exponents = torch.arange(half, dtype=dtype, device=timestep.device) / half
    omega = torch.pow(TIMESTEP_MAX_PERIOD, -exponents)
    angles = timestep.to(dtype)[..., None] * omega
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1).float()


__all__ = [
    "RopeCache",
    "apply_rope",
    "axis_angles",
    "grid_angles",
    "timestep_embedding",
]
