"""Seeded initial noise, identical on every machine for a given seed."""

from __future__ import annotations

import torch


def make_noise(
    shape: tuple[int, ...],
    seed: int,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard normal noise of ``shape`` (e.g. ``[B, C, T', H', W']``).

    Drawn **in float32 on the CPU** from a generator seeded with ``seed``, then moved and cast,
    so the same seed gives the same video on any device and in any precision.
    """
    generator = torch.Generator(device="cpu").manual_seed(seed)
    noise = torch.randn(shape, generator=generator, dtype=torch.float32, device="cpu")
    return noise.to(device=device, dtype=dtype)
