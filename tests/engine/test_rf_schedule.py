"""LTX-Video's schedules against the original scheduler's output (docs/families/ltx.md).

The reference lists were produced by ``RectifiedFlowScheduler.set_timesteps`` of the ``ltx-video``
0.1.2 package (float32, CPU) and are printed to 6 decimals, so they are compared to 1e-6.
"""

from __future__ import annotations

import math

import pytest

from studio.engine.rf_schedule import (
    explicit_schedule,
    linear_quadratic_times,
    rf_schedule,
    sd3_shift,
    simple_diffusion_shift,
    stretch_to_terminal,
    token_count_shift,
    uniform_times,
)
from studio.errors import InvalidRequest

UNIFORM_SD3_T01_6144 = [
    1.000000, 0.997985, 0.995870, 0.993649, 0.991312, 0.988852, 0.986257, 0.983517, 0.980618,
    0.977547, 0.974288, 0.970823, 0.967131, 0.963191, 0.958975, 0.954454, 0.949594, 0.944354,
    0.938690, 0.932546, 0.925859, 0.918553, 0.910540, 0.901711, 0.891934, 0.881049, 0.868855,
    0.855101, 0.839467, 0.821541, 0.800778, 0.776445, 0.747538, 0.712631, 0.669640, 0.615389,
    0.544788, 0.449136, 0.312220, 0.100000,
]  # fmt: skip

# (n, sampler, shifting, terminal, latent shape [B, C, F', H', W'] or None, reference)
CASES = [
    (40, "uniform", "sd3", 0.1, (1, 128, 16, 16, 24), UNIFORM_SD3_T01_6144),
    (10, "uniform", "sd3", 0.1, (1, 128, 4, 8, 8),
     [1.000000, 0.941294, 0.876198, 0.803609, 0.722152, 0.630097, 0.525234, 0.404688, 0.264656,
      0.100000]),
    (10, "uniform", "sd3", None, (1, 128, 4, 8, 8),
     [1.000000, 0.946456, 0.887084, 0.820877, 0.746582, 0.662622, 0.566979, 0.457032, 0.329313,
      0.179134]),
    (8, "uniform", None, None, None,
     [1.000000, 0.875000, 0.750000, 0.625000, 0.500000, 0.375000, 0.250000, 0.125000]),
    (10, "linear-quadratic", None, None, None,
     [1.000000, 0.995000, 0.990000, 0.985000, 0.980000, 0.975000, 0.932000, 0.813000, 0.618000,
      0.347000]),
    (7, "linear-quadratic", None, None, None,
     [1.000000, 0.991667, 0.983333, 0.975000, 0.907812, 0.722917, 0.420312]),
    (8, "uniform", "simple-diffusion", None, (1, 128, 4, 32, 32),
     [1.000000, 0.965517, 0.923077, 0.869565, 0.800000, 0.705882, 0.571429, 0.363636]),
]  # fmt: skip


@pytest.mark.parametrize(("n", "sampler", "shifting", "terminal", "shape", "reference"), CASES)
def test_schedules_match_the_original(n, sampler, shifting, terminal, shape, reference) -> None:
    tokens = None if shape is None else math.prod(shape[2:])
    ts = rf_schedule(n, sampler=sampler, shifting=shifting, tokens=tokens, terminal=terminal)
    assert len(ts) == n + 1 and ts[-1] == 0.0
    assert ts[:-1] == pytest.approx(reference, abs=1e-6)


def test_base_rules() -> None:
    assert uniform_times(4) == pytest.approx([1.0, 0.75, 0.5, 0.25], abs=1e-15)
    assert uniform_times(1) == [1.0]
    assert linear_quadratic_times(1) == [1.0]
    # The quadratic part ends at s = 1 − t = 1 one index after the last value.
    lq = linear_quadratic_times(12, threshold_noise=0.05, linear_steps=4)
    assert lq[:4] == pytest.approx([1.0, 0.9875, 0.975, 0.9625])
    assert len(lq) == 12 and all(a > b for a, b in zip(lq, lq[1:], strict=False))
    with pytest.raises(ValueError, match="linear_steps"):
        linear_quadratic_times(6, linear_steps=6)
    with pytest.raises(ValueError, match="steps"):
        uniform_times(0)


def test_sd3_mu_and_shift() -> None:
    assert token_count_shift(1024) == pytest.approx(0.95)
    assert token_count_shift(4096) == pytest.approx(2.05)
    assert token_count_shift(6144) == pytest.approx(2.7833, abs=1e-4)  # the docs' 768×512×121
    # e^μ/(e^μ + 1/t − 1) at t = ½ is sigmoid(μ); 0 and 1 are fixed points.
    mu = token_count_shift(2000)
    assert sd3_shift([1.0, 0.5, 0.0], 2000) == pytest.approx([1.0, 1 / (1 + math.exp(-mu)), 0.0])


def test_stretch_and_simple_diffusion() -> None:
    assert stretch_to_terminal([1.0, 0.6, 0.2], 0.1) == pytest.approx([1.0, 0.55, 0.1])
    assert stretch_to_terminal([1.0], 0.1) == [1.0]
    with pytest.raises(ValueError, match="terminal"):
        stretch_to_terminal([1.0, 0.5], 1.0)
    # At the base resolution the shift is the identity; 4× the tokens quadruples t/(1 − t).
    assert simple_diffusion_shift([0.9, 0.5, 0.1], 1024) == pytest.approx([0.9, 0.5, 0.1])
    assert simple_diffusion_shift([0.5], 4096) == pytest.approx([0.8])


def test_rf_schedule_argument_errors() -> None:
    with pytest.raises(ValueError, match="token count"):
        rf_schedule(4, shifting="sd3")
    with pytest.raises(ValueError, match="terminal"):
        rf_schedule(4, shifting="simple-diffusion", tokens=100, terminal=0.1)
    with pytest.raises(ValueError, match="unknown sampler"):
        rf_schedule(4, sampler="constant")
    with pytest.raises(ValueError, match="unknown shifting"):
        rf_schedule(4, shifting="flux", tokens=100)


def test_explicit_schedule_appends_zero() -> None:
    assert explicit_schedule([1.0, 0.7, 0.2]) == [1.0, 0.7, 0.2, 0.0]
    assert explicit_schedule((0.9,)) == [0.9, 0.0]


@pytest.mark.parametrize(("times", "what"), [
    ([], "empty"),
    ([1.2, 0.5], "above 1"),
    ([1.0, 0.5, 0.0], "not above 0"),
    ([1.0, -0.1], "not above 0"),
    ([1.0, 0.5, 0.5], "time 3 (0.5) is not below time 2"),
    ([0.4, 0.6], "not below"),
    ([1.0, float("nan")], "not a number"),
    (["a"], "not a list of numbers"),
])  # fmt: skip
def test_explicit_schedule_rejects(times, what) -> None:
    with pytest.raises(InvalidRequest, match="timesteps") as info:
        explicit_schedule(times)
    assert what in info.value.message
    assert info.value.field == "timesteps" and info.value.hint
