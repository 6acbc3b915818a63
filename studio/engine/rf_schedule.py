"""LTX-Video's rectified-flow schedules as plain lists of times (docs/families/ltx.md).

Units: t ∈ [0, 1], 1 = noise (timesteps and sigmas are the same numbers here). The base rules
return N values starting at 1 and *without* the final 0; :func:`rf_schedule` and
:func:`explicit_schedule` return the engine's sampling schedule, N + 1 floats ending at exactly 0.

Everything is computed in float64 Python. The original works in float32 tensors; the two agree to
well under 1e-6 on every schedule docs/families/ltx.md lists, so nothing needs float32 rounding.
"""

from __future__ import annotations

import math
from typing import Literal

from studio.errors import InvalidRequest

Sampler = Literal["uniform", "linear-quadratic"]
Shifting = Literal["sd3", "simple-diffusion"]

SD3_TOKENS = (1024, 4096)
"""Token counts at which the SD3 rule's μ equals :data:`SD3_SHIFTS` (a straight line through both,
extrapolated outside, never clamped)."""
SD3_SHIFTS = (0.95, 2.05)
SIMPLE_DIFFUSION_BASE = 32 * 32
"""Token count at which the simple-diffusion shift is the identity."""


def uniform_times(n: int) -> list[float]:
    """``linspace(1, 1/n, n)``: n evenly spaced times from 1 down to 1/n."""
    _check_steps(n)
    if n == 1:
        return [1.0]
    step = (1.0 - 1.0 / n) / (n - 1)
    return [1.0 - i * step for i in range(n)]


def linear_quadratic_times(
    n: int, threshold_noise: float = 0.025, linear_steps: int | None = None
) -> list[float]:
    """LTX-Video's linear-quadratic schedule: n times, 1 first, no trailing 0.

    Written in ``s = 1 − t``: the first ``linear_steps`` (default n // 2) values of s rise
    linearly from 0 by ``threshold_noise / linear_steps`` each, so the opening steps barely
    denoise; the rest follow a quadratic that continues the line with the same slope and
    reaches s = 1 at index n (that last point is the final step to t = 0, left out here).
    Example: n = 10 → 1, 0.995, 0.99, 0.985, 0.98, 0.975, 0.932, 0.813, 0.618, 0.347.
    """
    _check_steps(n)
    if n == 1:
        return [1.0]
    lin = n // 2 if linear_steps is None else linear_steps
    if not 1 <= lin < n:
        raise ValueError(f"linear_steps must be in 1…{n - 1}, got {lin}")
    quad = n - lin
    gap = lin - threshold_noise * n
    a = gap / (lin * quad**2)
    b = threshold_noise / lin - 2.0 * gap / quad**2
    c = a * lin**2
    s = [i * threshold_noise / lin for i in range(lin)]
    s += [a * i * i + b * i + c for i in range(lin, n)]
    return [1.0 - v for v in s]


def token_count_shift(tokens: int) -> float:
    """μ of the SD3 rule: linear in the latent token count, 1024 → 0.95, 4096 → 2.05.

    Example: a 16×16×24 latent (6,144 tokens) gives μ ≈ 2.783.
    """
    (n0, n1), (mu0, mu1) = SD3_TOKENS, SD3_SHIFTS
    slope = (mu1 - mu0) / (n1 - n0)
    return slope * tokens + (mu0 - slope * n0)


def sd3_shift(times: list[float], tokens: int) -> list[float]:
    """``t' = e^μ / (e^μ + (1/t − 1))`` with μ = :func:`token_count_shift` (tokens).

    This is the familiar ``α·t / (1 + (α − 1)·t)`` with α = e^μ; t = 0 stays 0.
    """
    alpha = math.exp(token_count_shift(tokens))
    return [alpha * t / (alpha * t + (1.0 - t)) for t in times]


def stretch_to_terminal(times: list[float], terminal: float) -> list[float]:
    """Rescale ``1 − t`` so the last time equals ``terminal`` (the first, 1, stays 1).

    ``t'' = 1 − (1 − t)·(1 − terminal)/(1 − t_last)``. A schedule whose last value is 1 (a
    single step) has nothing to stretch and is returned unchanged (the original divides by 0).
    """
    if not times:
        raise ValueError("cannot stretch an empty schedule")
    if not 0.0 < terminal < 1.0:
        raise ValueError(f"terminal must be in (0, 1), got {terminal}")
    if times[-1] >= 1.0:
        return list(times)
    scale = (1.0 - terminal) / (1.0 - times[-1])
    return [1.0 - (1.0 - t) * scale for t in times]


def simple_diffusion_shift(
    times: list[float], tokens: int, base_resolution: int = SIMPLE_DIFFUSION_BASE
) -> list[float]:
    """Shift log-SNR by ``2·ln(tokens / base_resolution)`` (simple diffusion's rule).

    With snr = (t/(1 − t))² and t' = sigmoid(½·(ln snr + 2·ln r)), r = tokens/base, this is
    ``t' = r·t / (r·t + 1 − t)``, written so that t = 1 and t = 0 are exact without infinities.
    """
    r = tokens / base_resolution
    return [r * t / (r * t + (1.0 - t)) for t in times]


def rf_schedule(
    n: int,
    *,
    sampler: Sampler = "uniform",
    shifting: Shifting | None = None,
    tokens: int | None = None,
    terminal: float | None = None,
) -> list[float]:
    """The sampling schedule of LTX-Video's scheduler: N + 1 times, 1 first, exactly 0 last.

    Args:
        n: number of steps N ≥ 1.
        sampler: base rule, ``"uniform"`` or ``"linear-quadratic"``.
        shifting: resolution shift, None, ``"sd3"`` or ``"simple-diffusion"``.
        tokens: latent token count F'·H'·W' (required when ``shifting`` is set).
        terminal: SD3 only: stretch so the last time before 0 equals it (LTX uses 0.1).
    """
    times = _base_times(n, sampler)
    if terminal is not None and shifting != "sd3":
        raise ValueError(f"a terminal applies only to 'sd3' shifting, not {shifting!r}")
    return (times if shifting is None else _shifted(times, shifting, tokens, terminal)) + [0.0]


def _shifted(times: list[float], shifting: Shifting, tokens: int | None,
             terminal: float | None) -> list[float]:
    if tokens is None or tokens < 1:
        raise ValueError(f"shifting {shifting!r} needs a positive token count, got {tokens}")
    if shifting == "sd3":
        times = sd3_shift(times, tokens)
        return times if terminal is None else stretch_to_terminal(times, terminal)
    if shifting == "simple-diffusion":
        return simple_diffusion_shift(times, tokens)
    raise ValueError(f"unknown shifting {shifting!r}; use None, 'sd3' or 'simple-diffusion'")


def explicit_schedule(times: list[float]) -> list[float]:
    """A user-given list of times, checked, with the final 0 appended (N values → N + 1).

    Each time must be finite, in (0, 1], and strictly below the one before it. Raises
    :class:`~studio.errors.InvalidRequest` on the field ``"timesteps"`` otherwise.
    """
    try:
        values = [float(t) for t in times]
    except (TypeError, ValueError) as exc:
        raise InvalidRequest("timesteps", f"not a list of numbers ({exc})",
                             "give decimal numbers in (0, 1], e.g. 1.0, 0.75, 0.5") from exc
    if not values:
        raise InvalidRequest("timesteps", "the list is empty",
                             "give at least one time in (0, 1], e.g. 1.0, 0.75, 0.5, 0.25")
    for i, t in enumerate(values):
        _check_explicit_time(i, t, values[i - 1] if i else None)
    return values + [0.0]


def _check_explicit_time(i: int, t: float, before: float | None) -> None:
    if not math.isfinite(t):
        raise InvalidRequest("timesteps", f"time {i + 1} is {t}, not a number",
                             "give plain decimal numbers in (0, 1]")
    if t > 1.0:
        raise InvalidRequest("timesteps", f"time {i + 1} is {t}, above 1 (pure noise)",
                             "times run from at most 1.0 down towards 0")
    if t <= 0.0:
        raise InvalidRequest("timesteps", f"time {i + 1} is {t}, not above 0",
                             "leave out the final 0: the last step to 0 is added for you")
    if before is not None and t >= before:
        raise InvalidRequest("timesteps", f"time {i + 1} ({t}) is not below time {i} ({before})",
                             "list the times strictly decreasing, e.g. 1.0, 0.9, 0.7, 0.4")


def _base_times(n: int, sampler: Sampler) -> list[float]:
    if sampler == "uniform":
        return uniform_times(n)
    if sampler == "linear-quadratic":
        return linear_quadratic_times(n)
    raise ValueError(f"unknown sampler {sampler!r}; use 'uniform' or 'linear-quadratic'")


def _check_steps(n: int) -> None:
    if n < 1:
        raise ValueError(f"steps must be ≥ 1, got {n}")
