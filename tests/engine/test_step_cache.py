"""Step caching: the calibration's arithmetic, the skip rule, bit-identity when off, and the
shipped demo calibration's speed-up and drift."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from studio.engine.pipeline import decode_latent, plan_generation, sample_plan
from studio.engine.request import GenerationRequest
from studio.engine.step_cache import (
    DEFAULT_THRESHOLD,
    WARMUP_FRACTION,
    CacheCalibration,
    CachedVelocity,
    MagnitudeRecorder,
    StepCacheHook,
)
from studio.errors import InvalidRequest
from studio.models.demo.analysis import psnr
from studio.models.demo.loader import load_demo_model

FLAT = CacheCalibration(((1.0, 0.0), (0.0, 0.0)))  # |v| constant along t: every ratio is 1


def test_the_calibration_interpolates_log_magnitude_along_t() -> None:
    calibration = CacheCalibration(((1.0, 2.0), (0.5, 1.0), (0.0, 0.0)))
    assert calibration.log_magnitude(0.75) == pytest.approx(1.5)
    assert calibration.log_magnitude(1.5) == 2.0 and calibration.log_magnitude(-1.0) == 0.0
    assert calibration.ratio(1.0, 0.5) == pytest.approx(math.exp(-1.0))
    assert CacheCalibration.from_dict(calibration.to_dict()) == calibration
    for bad in ({"points": [[1.0, 0.0]]}, {"points": [[0.0, 0.0], [1.0, 0.0]]}, {"points": 3},
                {"points": [[1.0, math.nan], [0.0, 0.0]]}, []):  # fmt: skip
        with pytest.raises(ValueError):
            CacheCalibration.from_dict(bad)


def test_skips_follow_the_warmup_the_threshold_and_the_run_length_limit() -> None:
    calls: list[int] = []

    def velocity(x: torch.Tensor, t_tok: torch.Tensor) -> torch.Tensor:
        calls.append(len(calls))
        return torch.full_like(x, float(len(calls)))

    steps = 20
    schedule = [1 - i / steps for i in range(steps + 1)]
    cached = CachedVelocity(velocity, schedule, FLAT, threshold=0.1, max_skips=2)
    outputs = [float(cached(torch.zeros(1), torch.zeros(1))) for _ in range(steps)]
    warmup = math.ceil(WARMUP_FRACTION * steps)
    # the warm-up steps all run; then the last output is reused twice (ratio 1: the same
    # value), one forward, two reused, …
    assert outputs[:warmup] == [1.0, 2.0, 3.0, 4.0]
    assert outputs[warmup:warmup + 6] == [4.0, 4.0, 5.0, 5.0, 5.0, 6.0]
    assert cached.stats.forwards == len(calls) == warmup + (steps - warmup) // 3
    assert cached.stats.skipped == steps - cached.stats.forwards


def test_a_changing_magnitude_scales_the_reused_output_and_stops_the_skips() -> None:
    steep = CacheCalibration(((1.0, 0.0), (0.0, -10.0)))  # |v| shrinks by e^-0.5 per 1/20 step
    schedule = [1 - i / 20 for i in range(21)]
    cached = CachedVelocity(lambda x, t: torch.ones(1), schedule, steep, threshold=0.5,
                            start=10)  # fmt: skip
    first = cached(torch.zeros(1), torch.zeros(1))
    second = cached(torch.zeros(1), torch.zeros(1))
    assert float(first) == 1.0 and float(second) == pytest.approx(math.exp(-0.5))
    third = cached(torch.zeros(1), torch.zeros(1))  # error 0.39 + 0.63 > 0.5: computed again
    assert float(third) == 1.0 and cached.stats.forwards == 2


@pytest.fixture(scope="module")
def demo():
    return load_demo_model()


def _run(model, steps: int, threshold: float, seed: int = 0):
    request = GenerationRequest(prompt="a green square moving up on a gray background",
                                seed=seed, steps=steps, shift=2.0, step_cache=threshold)
    plan = plan_generation(model, request)
    hook = StepCacheHook(model.cache_calibration, plan.schedule, threshold) if threshold else None
    return sample_plan(model, plan, wrap=hook), hook


def test_threshold_zero_is_bit_identical_to_no_caching(demo) -> None:
    plan = plan_generation(demo, GenerationRequest(prompt="a red circle", steps=6, shift=2.0))
    hook = StepCacheHook(demo.cache_calibration, plan.schedule, threshold=0.0)
    assert torch.equal(sample_plan(demo, plan, wrap=hook), sample_plan(demo, plan))
    assert (hook.stats.forwards, hook.stats.skipped) == (6, 0)


@pytest.mark.slow
@pytest.mark.parametrize(("steps", "speedup"), [(20, 1.5), (50, 1.9)])
def test_the_shipped_demo_calibration_saves_forwards_within_30_db(demo, steps: int,
                                                                  speedup: float) -> None:
    """At the default threshold: 1.67× on 20 steps (the aim: 1.5×) and 1.92× on 50 (the aim was
    2×; docs/benchmarks.md has the measured curve), frames within 30 dB."""
    reference, _ = _run(demo, steps, 0.0)
    cached, hook = _run(demo, steps, DEFAULT_THRESHOLD)
    assert steps / hook.stats.forwards >= speedup
    frames = psnr(decode_latent(demo, reference), decode_latent(demo, cached))
    assert frames >= 30.0, f"{frames:.1f} dB"


def test_a_recorded_calibration_tracks_the_velocity_magnitude(demo) -> None:
    plan = plan_generation(demo, GenerationRequest(prompt="a blue circle", steps=8, shift=2.0))
    recorders: list[MagnitudeRecorder] = []

    def record(velocity):
        recorders.append(MagnitudeRecorder(velocity, plan.schedule))
        return recorders[-1]

    sample_plan(demo, plan, wrap=record)
    points = recorders[0].calibration().points
    assert [t for t, _ in points] == list(plan.schedule[:-1])
    assert all(np.isfinite(m) for _, m in points)


def test_an_uncalibrated_model_refuses_caching(demo) -> None:
    from dataclasses import replace

    bare = replace(demo, cache_calibration=None)
    with pytest.raises(InvalidRequest, match="calibrat") as refused:
        plan_generation(bare, GenerationRequest(prompt="x", steps=4, step_cache=0.05))
    assert refused.value.field == "step_cache"
    with pytest.raises(InvalidRequest):
        GenerationRequest(prompt="x", step_cache=1.5).validate()
