"""Timestep schedules for rectified-flow sampling and training.

Units: t ∈ [0, 1] with 1 = pure noise and 0 = data (the literature's σ). A sampling schedule is
plain data: a list of N + 1 floats, decreasing from 1 to exactly 0, so the UI can draw it before
anything runs. ``1000·t`` exists only inside a model family's denoiser adapter.
"""

from __future__ import annotations

import math

import torch

OPENSORA_LIN_POINTS = ((256.0, 1.0), (4096.0, 3.0))
"""Open-Sora's straight line through (tokens per frame, α): 256 → 1, 4096 → 3 (not clamped)."""


def linear_schedule(steps: int) -> list[float]:
    """``linspace(1, 0, steps + 1)``: N steps, N + 1 points, last exactly 0."""
    if steps < 1:
        raise ValueError(f"steps must be ≥ 1, got {steps}")
    return [1.0 - i / steps for i in range(steps)] + [0.0]


def time_shift(alpha: float, t: float) -> float:
    """SD3-style shift ``α·t / (1 + (α − 1)·t)``; α > 1 spends more steps at high noise."""
    return alpha * t / (1.0 + (alpha - 1.0) * t)


def opensora_alpha(tokens_per_frame: int, latent_frames: int) -> float:
    """Open-Sora's automatic shift: ``lin(tokens per frame) · sqrt(T')``.

    ``lin`` is the straight line through (256, 1) and (4096, 3); ``tokens_per_frame`` is
    (H'/2)·(W'/2). Example: 256 tokens, T' = 5 → α = √5 ≈ 2.236068.
    """
    (x0, y0), (x1, y1) = OPENSORA_LIN_POINTS
    slope = (y1 - y0) / (x1 - x0)
    return (y0 + slope * (tokens_per_frame - x0)) * math.sqrt(latent_frames)


def make_schedule(steps: int, shift: float = 1.0) -> list[float]:
    """The sampling schedule: linear ``steps + 1`` points, then time-shifted by ``shift``."""
    if shift <= 0:
        raise ValueError(f"shift must be > 0, got {shift}")
    return [time_shift(shift, t) for t in linear_schedule(steps)]


def training_sigmas(shift: float, num_train_timesteps: int = 1000) -> torch.Tensor:
    """DiffSynth's training table: ``shift(k, linspace(1, 0, 1001)[:-1])``, shape ``[1000]``.

    The matching model timestep values are ``1000·σ``. float64.
    """
    t = torch.linspace(1.0, 0.0, num_train_timesteps + 1, dtype=torch.float64)[:-1]
    return shift * t / (1.0 + (shift - 1.0) * t)


def training_weights(shift: float, num_train_timesteps: int = 1000) -> torch.Tensor:
    """DiffSynth's Gaussian loss weights over the training table, shape ``[1000]``, float64.

    Over the timestep values x = 1000·σ: ``y = exp(−2·((x − 500)/1000)²)``, ``y −= min(y)``,
    ``w = y · 1000 / Σy``.
    """
    x = training_sigmas(shift, num_train_timesteps) * 1000.0
    y = torch.exp(-2.0 * ((x - num_train_timesteps / 2) / num_train_timesteps) ** 2)
    y = y - y.min()
    return y * num_train_timesteps / y.sum()


def training_weight_at(t: torch.Tensor, shift: float) -> torch.Tensor:
    """Look up the DiffSynth weight for each t ∈ [0, 1] at the nearest training-table entry."""
    sigmas = training_sigmas(shift).to(t.device)
    weights = training_weights(shift).to(t.device)
    index = (sigmas[None, :] - t.double().reshape(-1, 1)).abs().argmin(dim=1)
    return weights[index].reshape(t.shape).to(t.dtype)
