"""UniPC for rectified flow: the predictor-corrector sampler Wan's own scripts default to.

Order 2, variant B(h) = e^(−h) − 1 ("bh2"), data prediction x̂₀ = x − t·v, integrated in
λ = log((1 − t)/t) with t ∈ [0, 1] (1 = noise). Each step first *corrects* the state the last
step produced, recomputing that step with the x̂₀ the model has just made there (UniC), then
*predicts* the next state (UniP). The predictor with ρ = ½ is the DPM-Solver++(2M) update
(:func:`studio.engine.multistep.dpm_update`); the first step and the step to t = 0 are first
order, so the run ends on the last x̂₀. Formulas: ``docs/flow-conventions.md`` §5.

The updates are those of diffusers' ``UniPCMultistepScheduler`` as Wan's diffusers checkpoints
configure it (flow sigmas, flow prediction, ``solver_order=2``, ``solver_type="bh2"``,
``predict_x0``, ``lower_order_final``, no disabled corrector, final sigma zero), tested step by
step to 1e-6. Like diffusers, the solver reads a schedule point at t = 1 (λ = −∞) as
1 − 10⁻⁶ in float32 (:func:`solver_time`).

Multistep, so as DPM-Solver++(2M): reference frames pinned with strength 1 stay pinned, soft
strengths are refused before sampling (:data:`~studio.engine.samplers.MULTISTEP_SAMPLERS`) and
a run resumed at ``start`` > 0 starts with no history.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import torch

from studio.engine.cancel import NEVER, CancelToken
from studio.engine.conditioning import Conditioning
from studio.engine.multistep import dpm_update
from studio.engine.sampler import StepCallback, Velocity, integrate

NOISE_NUDGE = 1e-6
"""How far below t = 1 the solver computes a step that starts from pure noise."""


def solver_time(t: float) -> float:
    """The time the solver's coefficients use for the schedule point ``t``: ``t`` itself, except
    within 10⁻⁶ of 1 (where λ → −∞), which becomes ``t − 10⁻⁶`` rounded to float32 (0.99999899
    for t = 1), as diffusers' flow sigmas do."""
    if abs(t - 1.0) >= NOISE_NUDGE:
        return t
    return struct.unpack("f", struct.pack("f", t - NOISE_NUDGE))[0]


def _lambda(t: float) -> float:
    """λ = log((1 − t)/t) for t ∈ (0, 1); +∞ at t = 0."""
    return math.inf if t <= 0.0 else math.log(1.0 - t) - math.log(t)


@dataclass(frozen=True, slots=True)
class UniPCMemory:
    """What one step hands to the next (this run only).

    Attributes:
        x: the corrected state the last predictor started from, ``[B, C, T', H', W']``.
        s: its solver time.
        x0: the x̂₀ made at ``s``, shape of ``x``.
        order: the last predictor's order (1 or 2); the next corrector uses the same.
        older: ``(time, x̂₀)`` of the step before ``s``, or None.
    """

    x: torch.Tensor
    s: float
    x0: torch.Tensor
    order: int
    older: tuple[float, torch.Tensor] | None


def corrector_weights(h: float, r: float | None) -> tuple[float, float]:
    """UniC's weights ``(ρ_older, ρ_new)`` for a step of size h = λ' − λ > 0 with B(h) = e^(−h) − 1.

    First order (``r`` None): (0, ½). Second order, with r = (λ_older − λ)/h < 0: the solution
    of ρ_older + ρ_new = b₁, r·ρ_older + ρ_new = b₂, where, with φ = e^(−h) − 1,
    b₁ = −(φ + h)/(h·φ) and b₂ = 2·(φ + h − h²/2)/(h²·φ) (→ ½ and ⅓ as h → 0).
    """
    if r is None:
        return 0.0, 0.5
    phi = math.expm1(-h)
    b1 = -(phi + h) / (h * phi)
    b2 = 2.0 * (phi + h - 0.5 * h * h) / (h * h * phi)
    rho_older = (b1 - b2) / (1.0 - r)
    return rho_older, b1 - rho_older


def unic_correct(memory: UniPCMemory, x0: torch.Tensor, t: float) -> torch.Tensor:
    """Redo the last step, from ``memory.s`` to ``t``, with the new x̂₀ at ``t`` (UniC).

    x_c = (t/s)·x_s − α_t·φ·(x̂₀_s + ρ_older·D + ρ_new·(x̂₀_t − x̂₀_s)), D = (x̂₀_older − x̂₀_s)/r,
    α_t = 1 − t, φ = e^(−h) − 1, h = λ(t) − λ(s); shapes as ``memory.x``.
    """
    s, lam_s = memory.s, _lambda(memory.s)
    h = _lambda(t) - lam_s
    phi = math.expm1(-h)
    older = memory.older if memory.order == 2 else None
    r = None if older is None else (_lambda(older[0]) - lam_s) / h
    rho_older, rho_new = corrector_weights(h, r)
    step = memory.x0 + rho_new * (x0 - memory.x0)
    if older is not None and r is not None:
        step = step + (rho_older / r) * (older[1] - memory.x0)
    return (t / s) * memory.x - ((1.0 - t) * phi) * step


def unipc_step(x: torch.Tensor, v: torch.Tensor, x0_hat: torch.Tensor, t: float, t_next: float,
               memory: UniPCMemory | None, last: bool) -> tuple[torch.Tensor, UniPCMemory]:
    """One UniPC step from ``t`` to ``t_next``: correct ``x`` (unless ``memory`` is None), then
    predict, second order unless this is the run's first step or the schedule's ``last``.

    Args:
        x: the state at ``t`` (the last prediction), ``[B, C, T', H', W']``.
        v, x0_hat: the velocity there and x̂₀ = x − t·v, shape of ``x``.
    Returns:
        the state at ``t_next`` and the memory for the next step.
    """
    s, s_next = solver_time(t), solver_time(t_next)
    x0 = x0_hat if s == t else x0_hat + (t - s) * v  # x̂₀ at the nudged time
    if memory is not None:
        x = unic_correct(memory, x0, s)
    order = 1 if memory is None or last else 2
    x0_prev, s_prev = (memory.x0, memory.s) if memory is not None and order == 2 else (None, 1.0)
    x_next = dpm_update(x, x0, x0_prev, s_prev, s, s_next)
    older = None if memory is None else (memory.s, memory.x0)
    return x_next, UniPCMemory(x, s, x0, order, older)


def sample_unipc(
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
    """UniPC (order 2, bh2) along ``ts``. Arguments as :func:`~studio.engine.sampler.sample_euler`;
    a run resumed at ``start`` > 0 has no memory, so its first step is first order, uncorrected.
    """
    del seed
    memory: list[UniPCMemory] = []  # the previous step's, this run
    last_index = len(ts) - 2

    def unipc(i: int, t: float, t_next: float, x: torch.Tensor, v: torch.Tensor,
              x0_hat: torch.Tensor) -> torch.Tensor:
        x_next, kept = unipc_step(x, v, x0_hat, t, t_next, memory.pop() if memory else None,
                                  i == last_index)
        memory.append(kept)
        return x_next

    return integrate(velocity, x, ts, unipc, cond=cond, on_step=on_step, cancel=cancel,
                     start=start)
