"""Rectified-flow samplers: each step is a few lines over named quantities.

Units: t ∈ [0, 1], 1 = noise. The model predicts a velocity v ≈ ε − x₀ and its clean-sample
estimate at time t is x̂₀ = x − t·v. Samplers are plain functions over a schedule (N + 1 floats,
last 0); they hold no state between calls.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import torch

from studio.engine.cancel import NEVER, CancelToken
from studio.engine.conditioning import (
    Conditioning,
    perturb_pinned,
    token_timesteps,
    update_mask,
)
from studio.engine.noise import make_noise

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""v = velocity(x [B, C, T', H', W'], t_tok [B, T', H', W']) → [B, C, T', H', W']."""


@dataclass(frozen=True, slots=True)
class StepInfo:
    """What a step callback receives (after the step's update).

    Attributes:
        i: step index, 0 … n − 1.
        n: number of steps.
        t, t_next: the step went from t to t_next.
        x: the latent after the step, ``[B, C, T', H', W']``.
        x0_hat: the clean-sample estimate x − t_tok·v made at t, ``[B, C, T', H', W']``; each
            position uses the time the model saw (``min(t, 1 − m)``), so a pinned position
            previews as its conditioning latent.
    """

    i: int
    n: int
    t: float
    t_next: float
    x: torch.Tensor
    x0_hat: torch.Tensor


StepCallback = Callable[[StepInfo], None]

Update = Callable[[int, float, float, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""``update(i, t, t_next, x, v, x̂₀)`` → the candidate state after step i (the sampler's rule)."""


def integrate(
    velocity: Velocity,
    x: torch.Tensor,
    ts: list[float],
    update: Update,
    *,
    cond: Conditioning | None = None,
    on_step: StepCallback | None = None,
    cancel: CancelToken = NEVER,
    start: int = 0,
) -> torch.Tensor:
    """The loop every sampler shares: the pinned positions' noise (when the conditioning asks
    for it), per-token times, one velocity, x̂₀ = x − t·v, the sampler's ``update``, written
    only where the conditioning mask lets a position move, then the step callback. Arguments
    as :func:`sample_euler`."""
    mask = _mask_for(x, cond)
    for i, t, t_next in _schedule_steps(ts, start):
        cancel.check()
        if cond is not None:
            x = perturb_pinned(x, cond, t, i)
        t_tok = token_timesteps(t, mask)
        v = velocity(x, t_tok)
        x0_hat = x - t_tok[:, None].to(x.dtype) * v
        x = torch.where(update_mask(t, mask), update(i, t, t_next, x, v, x0_hat), x)
        if on_step is not None:
            on_step(StepInfo(i, len(ts) - 1, t, t_next, x, x0_hat))
    return x


def sample_euler(
    velocity: Velocity,
    x: torch.Tensor,
    ts: list[float],
    *,
    cond: Conditioning | None = None,
    on_step: StepCallback | None = None,
    cancel: CancelToken = NEVER,
    seed: int = 0,
    start: int = 0,
) -> torch.Tensor:
    """Deterministic Euler integration of dx/dt = v from ts[0] to ts[-1]: x' = x + (t' − t)·v.

    Args:
        velocity: the (guided) model, see :data:`Velocity`.
        x: starting latent ``[B, C, T', H', W']`` (already conditioned, see ``initial_latent``).
        ts: schedule of N + 1 decreasing times in [0, 1].
        cond: conditioning latents and mask; positions update only while t − t_eps < 1 − m.
        on_step: called after every step with a :class:`StepInfo`.
        cancel: checked before every model call.
        seed: unused (the Euler sampler is deterministic); kept for a uniform signature.
        start: index of the first step to take (0 … N); ``x`` is then the state after ``start``
            steps, e.g. from a sampling checkpoint. Resuming gives the same result, bit for bit,
            as running from step 0.
    """
    del seed

    def euler(i: int, t: float, t_next: float, x: torch.Tensor, v: torch.Tensor,
              x0_hat: torch.Tensor) -> torch.Tensor:
        return x + (t_next - t) * v

    return integrate(velocity, x, ts, euler, cond=cond, on_step=on_step, cancel=cancel,
                     start=start)


def sample_stochastic(
    velocity: Velocity,
    x: torch.Tensor,
    ts: list[float],
    *,
    cond: Conditioning | None = None,
    on_step: StepCallback | None = None,
    cancel: CancelToken = NEVER,
    seed: int = 0,
    start: int = 0,
) -> torch.Tensor:
    """Predict x̂₀ = x − t·v, then re-noise to the next time: x' = (1 − t')·x̂₀ + t'·ε.

    Fresh noise ε at step i comes from a CPU generator seeded with :func:`step_noise_seed`
    (seed, i), so a run is reproducible from the request's seed, and a run resumed at ``start``
    draws the same noise.
    Arguments as :func:`sample_euler`.
    """

    def renoise(i: int, t: float, t_next: float, x: torch.Tensor, v: torch.Tensor,
                x0_hat: torch.Tensor) -> torch.Tensor:
        eps = make_noise(tuple(x.shape), step_noise_seed(seed, i), x.device, x.dtype)
        return (1.0 - t_next) * x0_hat + t_next * eps

    return integrate(velocity, x, ts, renoise, cond=cond, on_step=on_step, cancel=cancel,
                     start=start)


def step_noise_seed(seed: int, step: int) -> int:
    """The seed of the stochastic sampler's fresh noise at ``step``: a 63-bit hash of both.

    Hashing keeps it apart from every run's initial-noise seed; a plain ``seed + 1 + step``
    re-noised run s with run s + 1's starting noise, so neighbouring seeds gave near-copies.
    """
    digest = hashlib.blake2b(f"stochastic:{seed}:{step}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def _schedule_steps(ts: list[float], start: int) -> list[tuple[int, float, float]]:
    """``(i, t, t_next)`` for the steps ``start`` … N − 1 of a schedule of N + 1 times."""
    n = len(ts) - 1
    if not 0 <= start <= n:
        raise ValueError(f"start step {start} is outside 0…{n}")
    return [(i, ts[i], ts[i + 1]) for i in range(start, n)]


def _mask_for(x: torch.Tensor, cond: Conditioning | None) -> torch.Tensor:
    if cond is None:
        b, _, t, h, w = x.shape
        return torch.zeros(b, 1, t, h, w, device=x.device)
    return cond.mask.to(x.device, torch.float32)
