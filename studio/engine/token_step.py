"""LTX-Video's scheduler step with a time per token (docs/families/ltx.md).

Units: t ∈ [0, 1], 1 = noise; v is the velocity (x̂₀ = x − t·v). The schedule is the engine's
N + 1 list ending at 0 (a list without the final 0 behaves the same: 0 is the fallback).

Supported layouts (``x``, ``v`` and, matching them, the per-token times ``t_tok``):

* latent grid: ``x`` ``[B, C, T', H', W']`` (any rank ≥ 4, channels at dim 1) with ``t_tok``
  ``[B, T', H', W']`` (x's shape without dim 1);
* token sequence: ``x`` ``[B, L, C]`` (rank 3, channels last) with ``t_tok`` ``[B, L]``;
* a 0-d ``t_tok`` (one global time) with either.

The engine's sampler (:func:`studio.engine.sampler.sample_euler` / ``sample_stochastic``) is this
step plus :func:`pipeline_update` when every token's time is min(t, 1 − m) and t is on the
schedule; tests/engine/test_token_step.py checks that equivalence.
"""

from __future__ import annotations

import torch

from studio.engine.conditioning import T_EPS


def next_scheduled(t_tok: torch.Tensor, schedule: list[float]) -> torch.Tensor:
    """Per token, the largest scheduled time strictly below ``t − 1e-6`` (0 if none).

    A time that is not on the schedule still steps to the next lower scheduled value, and a
    token at t = 0 stays at 0. Same shape and dtype as ``t_tok``.
    """
    sched = torch.tensor(schedule, dtype=t_tok.dtype, device=t_tok.device)
    sched = sched.reshape(-1, *([1] * t_tok.dim()))
    below = sched < (t_tok - T_EPS).unsqueeze(0)
    # Masked-out entries become 0, which is also the answer when nothing lies below.
    return torch.where(below, sched, torch.zeros_like(sched)).amax(dim=0)


def per_token(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape token-shaped ``values`` (e.g. times or update flags) to broadcast against ``x``.

    ``[B, T', H', W']`` → ``[B, 1, T', H', W']`` for a latent grid, ``[B, L]`` → ``[B, L, 1]``
    for a ``[B, L, C]`` token sequence; a 0-d tensor is returned as is.
    """
    if values.dim() == 0:
        return values
    if x.dim() == 3:
        expected, out = tuple(x.shape[:-1]), values.unsqueeze(-1)
    else:
        expected, out = (x.shape[0], *x.shape[2:]), values.unsqueeze(1)
    if tuple(values.shape) != expected:
        raise ValueError(f"per-token shape {tuple(values.shape)} does not match a latent "
                         f"{tuple(x.shape)} (expected {expected})")
    return out


def token_step(
    x: torch.Tensor,
    v: torch.Tensor,
    t_tok: torch.Tensor,
    schedule: list[float],
    *,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """One scheduler step from each token's time to its :func:`next_scheduled` time.

    Deterministic (``noise`` None): ``prev = x − (t − t_next)·v``. Stochastic: the clean
    estimate ``x̂₀ = x − t·v`` is re-noised to the next time, ``prev = (1 − t_next)·x̂₀ +
    t_next·noise`` (``noise`` shaped like ``x``, standard normal). Shapes: see the module
    docstring. Times are cast to ``x``'s dtype for the update, so the latent keeps its dtype.
    """
    t_next = next_scheduled(t_tok, schedule)
    t = per_token(t_tok, x).to(x.dtype)
    t_next = per_token(t_next, x).to(x.dtype)
    if noise is None:
        return x - (t - t_next) * v
    x0_hat = x - t * v
    return (1.0 - t_next) * x0_hat + t_next * noise.to(x.dtype)


def pipeline_update(t: float, mask: torch.Tensor) -> torch.Tensor:
    """Which tokens take the stepped value: ``t − 1e-6 < 1 − m``, with t the *global* time.

    ``mask`` holds the conditioning strength m ∈ [0, 1] per token (any shape); the result is a
    bool tensor of the same shape. A token with strength m therefore starts moving only once
    the global time is below 1 − m, and m = 1 never moves. Use :func:`per_token` to apply it:
    ``torch.where(per_token(pipeline_update(t, m), x), prev, x)``.
    """
    return (t - T_EPS) < (1.0 - mask.float())
