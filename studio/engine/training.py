"""The training half of rectified flow: timestep sampling, noise injection, target and loss.

Units: t ∈ [0, 1], 1 = noise. Shapes: x0 / x1 are ``[B, C, T', H', W']`` latents (x0 = data,
x1 = noise); t is ``[B]``.
"""

from __future__ import annotations

import torch

from studio.engine.schedule import time_shift

SIGMA_MIN = 1e-5


def sample_timesteps(
    batch: int, shift: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Logit-normal timesteps ``t = shift(α, sigmoid(z))``, ``z ~ N(0, 1)``: ``[batch]`` float32."""
    z = torch.randn(batch, generator=generator, dtype=torch.float32)
    return time_shift(shift, torch.sigmoid(z))


def _expand(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], *([1] * (like.dim() - 1))).to(like.dtype)


def add_noise(
    x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor, sigma_min: float = SIGMA_MIN
) -> torch.Tensor:
    """Open-Sora's interpolation with ``t_rev = 1 − t``: ``t_rev·x0 + (1 − (1 − σ_min)·t_rev)·x1``.

    With σ_min = 0 this is ``(1 − t)·x0 + t·x1``. ``t`` is ``[B]`` or broadcastable to x0.
    """
    t_rev = 1.0 - (_expand(t, x0) if t.dim() == 1 else t.to(x0.dtype))
    return t_rev * x0 + (1.0 - (1.0 - sigma_min) * t_rev) * x1


def velocity_target(
    x0: torch.Tensor, x1: torch.Tensor, sigma_min: float = SIGMA_MIN
) -> torch.Tensor:
    """The velocity the model learns: ``(1 − σ_min)·x1 − x0``."""
    return (1.0 - sigma_min) * x1 - x0


def flow_loss(
    v_pred: torch.Tensor,
    v_target: torch.Tensor,
    weight: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``mean_b w_b · MSE_b(v_pred, v_target)`` in float32.

    Args:
        weight: ``[B]`` per-sample weights (e.g.
            :func:`~studio.engine.schedule.training_weight_at`).
        mask: optional ``[B, 1, T', H', W']``; 1 where the loss counts (conditioning frames that
            were given to the model clean are excluded by passing 0 there).
    """
    err = (v_pred.float() - v_target.float()) ** 2
    if mask is not None:
        m = mask.float().expand_as(err)
        per_sample = (err * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp(min=1.0)
    else:
        per_sample = err.flatten(1).mean(1)
    if weight is not None:
        per_sample = per_sample * weight.float()
    return per_sample.mean()
