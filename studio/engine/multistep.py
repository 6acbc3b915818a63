"""DPM-Solver++(2M) for rectified flow: a second-order multistep sampler.

With σ = t, α = 1 − t and λ = log(α/σ), the solver integrates the data prediction
x̂₀ = x − t·v in λ. Each step reuses the previous step's x̂₀ for a second-order correction
(the "midpoint" form); the first step and the step to t = 0 are first order, and a step from
t = 1 (λ = −∞) reduces to the flow interpolation x' = t'·x + (1 − t')·x̂₀, the Euler step. The
same updates as diffusers' ``DPMSolverMultistepScheduler`` with flow sigmas (tested to 1e-6).

Reference frames pinned with strength 1 stay pinned (their positions never update). A soft
strength would start a position's history in the middle of the run, which a multistep solver
cannot use; such requests are refused before sampling (:data:`MULTISTEP_SAMPLERS`).
"""

from __future__ import annotations

import math

import torch

from studio.engine.cancel import NEVER, CancelToken
from studio.engine.conditioning import Conditioning
from studio.engine.sampler import StepCallback, Velocity, integrate


def _lambda(t: float) -> float:
    """λ = log((1 − t)/t); −∞ at t = 1, +∞ at t = 0."""
    if t >= 1.0:
        return -math.inf
    if t <= 0.0:
        return math.inf
    return math.log(1.0 - t) - math.log(t)


def dpm_update(x: torch.Tensor, x0: torch.Tensor, x0_prev: torch.Tensor | None, t_prev: float,
               t: float, t_next: float) -> torch.Tensor:
    """One DPM-Solver++ step from t to t_next; second order when ``x0_prev`` (at ``t_prev``) is
    given and both λ differences are finite, else first order."""
    if t_next <= 0.0:
        return x0  # σ' = 0: the step lands on the data prediction
    lam, lam_next = _lambda(t), _lambda(t_next)
    h = lam_next - lam
    decay = -1.0 if math.isinf(h) else math.expm1(-h)  # e^{−h} − 1 (−1 from t = 1)
    x_next = (t_next / t) * x - ((1.0 - t_next) * decay) * x0
    if x0_prev is None or math.isinf(h) or math.isinf(lam - _lambda(t_prev)):
        return x_next
    r = (lam - _lambda(t_prev)) / h
    return x_next - (0.5 * (1.0 - t_next) * decay / r) * (x0 - x0_prev)


def sample_dpmpp_2m(
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
    """DPM-Solver++(2M) along ``ts``. Arguments as :func:`~studio.engine.sampler.sample_euler`;
    a run resumed at ``start`` > 0 has no previous x̂₀, so its first step is first order."""
    del seed
    previous: list[tuple[float, torch.Tensor]] = []  # (t, x̂₀) of the step before, this run

    def dpm(i: int, t: float, t_next: float, x: torch.Tensor, v: torch.Tensor,
            x0_hat: torch.Tensor) -> torch.Tensor:
        t_prev, x0_prev = previous.pop() if previous else (1.0, None)
        previous.append((t, x0_hat))
        return dpm_update(x, x0_hat, x0_prev, t_prev, t, t_next)

    return integrate(velocity, x, ts, dpm, cond=cond, on_step=on_step, cancel=cancel,
                     start=start)
