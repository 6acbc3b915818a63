"""Step caching: skip denoiser forwards whose output the last one already predicts.

A MagCache-class policy. Along a sampling run the velocity's magnitude changes smoothly and in
the same way for every prompt of a model, so it is measured once per model on a reference run —
the **calibration**, mean |v| as a function of t — and at generation time each step's output is
predicted from the last computed one, scaled by the calibrated magnitude change. The predicted
relative error of reusing it accumulates from step to step (|1 − Π ratio|); while it stays within
the **threshold**, and for at most ``max_skips`` steps in a row, the forward is skipped. The
first steps, where the output changes fastest, always run. Threshold 0 never skips: the run is
bit-identical to one without caching.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from studio.engine.sampler import Velocity

#: Fraction of the steps at the start that always run (the output changes fastest there).
WARMUP_FRACTION = 0.2
#: The threshold ``--cache magcache`` means. On the demo model it runs 12 of 20 forwards (26 of
#: 50) with frames ≥ 31 dB from the uncached run (docs/benchmarks.md, "Step caching").
DEFAULT_THRESHOLD = 0.01


@dataclass(frozen=True, slots=True)
class CacheCalibration:
    """log mean |v| along t for one model, from a reference run.

    Attributes:
        points: (t, log mean |v|) pairs, t ∈ [0, 1] decreasing (1 = noise).
    """

    points: tuple[tuple[float, float], ...]

    def log_magnitude(self, t: float) -> float:
        """Linear interpolation of log mean |v| at ``t`` (clamped to the measured range)."""
        ts = [p[0] for p in self.points]
        if t >= ts[0]:
            return self.points[0][1]
        if t <= ts[-1]:
            return self.points[-1][1]
        for (t0, l0), (t1, l1) in zip(self.points, self.points[1:], strict=False):
            if t1 <= t <= t0:
                w = (t0 - t) / (t0 - t1) if t0 != t1 else 0.0
                return l0 + w * (l1 - l0)
        return self.points[-1][1]

    def ratio(self, t_from: float, t_to: float) -> float:
        """Predicted mean |v(t_to)| / mean |v(t_from)|."""
        return math.exp(self.log_magnitude(t_to) - self.log_magnitude(t_from))

    def to_dict(self) -> dict[str, Any]:
        return {"points": [list(p) for p in self.points]}

    @classmethod
    def from_dict(cls, data: Any) -> CacheCalibration:
        """Parse a calibration; ``ValueError`` for anything but ≥ 2 finite (t, log|v|) pairs
        with t decreasing in [0, 1]."""
        points = data.get("points") if isinstance(data, dict) else None
        try:
            pairs = tuple((float(t), float(m)) for t, m in points)
        except (TypeError, ValueError) as exc:
            raise ValueError("points must be a list of [t, log|v|] pairs") from exc
        ok = len(pairs) >= 2 and all(math.isfinite(t) and math.isfinite(m) and 0 <= t <= 1
                                     for t, m in pairs)  # fmt: skip
        if not ok or any(b[0] >= a[0] for a, b in zip(pairs, pairs[1:], strict=False)):
            raise ValueError("need at least two finite points with t decreasing in [0, 1]")
        return cls(pairs)


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Denoiser forwards a run made and skipped."""

    forwards: int = 0
    skipped: int = 0


@dataclass
class CachedVelocity:
    """A (guided) velocity that skips forwards the calibration predicts well enough.

    Args:
        velocity: the velocity function to cache.
        schedule: the run's N + 1 times; call k is step ``start + k`` at ``schedule[start + k]``.
        calibration: the model's :class:`CacheCalibration`.
        threshold: accumulated predicted relative error allowed; 0 = never skip.
        max_skips: most steps skipped in a row.
        start: the first step taken (a resumed run).
    """

    velocity: Velocity
    schedule: Sequence[float]
    calibration: CacheCalibration
    threshold: float
    max_skips: int = 2
    start: int = 0
    stats: CacheStats = field(default_factory=CacheStats)
    _last: tuple[int, torch.Tensor] | None = None
    _ratio: float = 1.0
    _error: float = 0.0
    _skips: int = 0

    def __post_init__(self) -> None:
        self._step = self.start
        self._warmup = math.ceil(WARMUP_FRACTION * (len(self.schedule) - 1))

    def __call__(self, x: torch.Tensor, t_tok: torch.Tensor) -> torch.Tensor:
        step, self._step = self._step, self._step + 1
        if self._last is not None and self.threshold > 0 and step >= self._warmup:
            last_step, v = self._last
            self._ratio *= self.calibration.ratio(self.schedule[step - 1], self.schedule[step])
            self._error += abs(1.0 - self._ratio)
            if self._error <= self.threshold and self._skips < self.max_skips:
                self._skips += 1
                self.stats = CacheStats(self.stats.forwards, self.stats.skipped + 1)
                return v * self._ratio
        v = self.velocity(x, t_tok)
        self._last, self._ratio, self._error, self._skips = (step, v), 1.0, 0.0, 0
        self.stats = CacheStats(self.stats.forwards + 1, self.stats.skipped)
        return v


@dataclass
class StepCacheHook:
    """What :func:`~studio.engine.pipeline.sample_plan` takes as ``wrap``: it wraps the run's
    velocity in a :class:`CachedVelocity` and keeps it, so the counts can be read after."""

    calibration: CacheCalibration
    schedule: Sequence[float]
    threshold: float
    start: int = 0
    cached: CachedVelocity | None = None

    def __call__(self, velocity: Velocity) -> CachedVelocity:
        self.cached = CachedVelocity(velocity, self.schedule, self.calibration, self.threshold,
                                     start=self.start)
        return self.cached

    @property
    def stats(self) -> CacheStats:
        return self.cached.stats if self.cached is not None else CacheStats()


@dataclass
class MagnitudeRecorder:
    """A velocity that records log mean |v| at each step's t (for a calibration)."""

    velocity: Velocity
    schedule: Sequence[float]
    points: list[tuple[float, float]] = field(default_factory=list)

    def __call__(self, x: torch.Tensor, t_tok: torch.Tensor) -> torch.Tensor:
        v = self.velocity(x, t_tok)
        t = self.schedule[len(self.points)]
        self.points.append((float(t), math.log(float(v.float().abs().mean()) + 1e-12)))
        return v

    def calibration(self) -> CacheCalibration:
        return CacheCalibration(tuple(self.points))
