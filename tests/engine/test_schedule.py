"""Schedules and training tables against the reference values of docs/flow-conventions.md §3."""

from __future__ import annotations

import math

import pytest
import torch

from studio.engine.schedule import (
    linear_schedule,
    make_schedule,
    opensora_alpha,
    time_shift,
    training_sigmas,
    training_weight_at,
    training_weights,
)

TOL = 1e-6


def test_linear_schedule_is_linspace_with_exact_endpoints() -> None:
    for steps in (1, 2, 7, 30, 50):
        ts = linear_schedule(steps)
        assert len(ts) == steps + 1
        assert ts[0] == 1.0 and ts[-1] == 0.0
        expected = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64).tolist()
        assert ts == pytest.approx(expected, abs=1e-12)
        assert all(a > b for a, b in zip(ts, ts[1:], strict=False))


def test_linear_schedule_rejects_zero_steps() -> None:
    with pytest.raises(ValueError, match="steps"):
        linear_schedule(0)


def test_time_shift_reference_alpha_3() -> None:
    ts = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    expected = [0.0, 0.428571, 0.666667, 0.818182, 0.923077, 1.0]
    got = [time_shift(3.0, t) for t in ts]
    # The reference is rounded to 6 places; check the exact fractions too.
    assert got == pytest.approx(expected, abs=5e-7)
    assert got == pytest.approx([0.0, 3 / 7, 2 / 3, 9 / 11, 12 / 13, 1.0], abs=1e-12)


def test_time_shift_one_is_identity_and_tensor_friendly() -> None:
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    assert torch.equal(time_shift(1.0, t), t)
    shifted = time_shift(5.0, t)
    assert torch.allclose(shifted, 5 * t / (1 + 4 * t))
    assert bool((shifted >= t).all())  # α > 1 moves every point towards noise


def test_opensora_alpha_reference() -> None:
    assert opensora_alpha(256, 5) == pytest.approx(2.236068, abs=TOL)
    assert opensora_alpha(256, 5) == pytest.approx(math.sqrt(5), abs=1e-12)


def test_opensora_alpha_10_step_schedule_reference() -> None:
    expected = [
        1.0, 0.952662, 0.89944, 0.839163, 0.770332, 0.690983,
        0.598508, 0.489357, 0.35857, 0.199008, 0.0,
    ]  # fmt: skip
    got = make_schedule(10, opensora_alpha(256, 5))
    assert got == pytest.approx(expected, abs=TOL)
    assert got[0] == 1.0 and got[-1] == 0.0


@pytest.mark.parametrize(
    ("tokens", "alpha"),
    [
        (256, 1.0),
        (4096, 3.0),
        (2176, 2.0),  # the midpoint of the line
        (64, 1.0 - 2.0 * 192 / 3840),  # below 256: extrapolated, not clamped to 1
        (8192, 3.0 + 2.0 * 4096 / 3840),  # above 4096: extrapolated, not clamped to 3
    ],
)
def test_opensora_lin_is_an_unclamped_line(tokens: int, alpha: float) -> None:
    assert opensora_alpha(tokens, 1) == pytest.approx(alpha, abs=1e-12)
    assert opensora_alpha(tokens, 4) == pytest.approx(2.0 * alpha, abs=1e-12)


def test_make_schedule_shift_rejects_non_positive() -> None:
    with pytest.raises(ValueError, match="shift"):
        make_schedule(10, 0.0)


def test_make_schedule_is_plain_floats() -> None:
    ts = make_schedule(4, 3.0)
    assert all(type(t) is float for t in ts)
    assert ts == pytest.approx([1.0, 0.9, 0.75, 0.5, 0.0], abs=1e-12)


@pytest.mark.parametrize("shift", [1.0, 3.0, 5.0])
def test_training_table_entries(shift: float) -> None:
    sigmas = training_sigmas(shift)
    assert sigmas.shape == (1000,) and sigmas.dtype == torch.float64
    assert sigmas[0].item() == pytest.approx(1.0, abs=1e-12)
    last = shift * 0.001 / (1 + (shift - 1) * 0.001)
    assert sigmas[-1].item() == pytest.approx(last, abs=1e-12)
    assert bool((sigmas[:-1] > sigmas[1:]).all())
    timesteps = 1000.0 * sigmas
    assert timesteps[0].item() == pytest.approx(1000.0, abs=1e-9)
    assert timesteps[-1].item() == pytest.approx(1000.0 * last, abs=1e-9)
    # Every entry is the shift of the base point i/1000 (independent loop).
    for i in (0, 1, 250, 500, 999):
        base = 1.0 - i / 1000.0
        assert sigmas[i].item() == pytest.approx(time_shift(shift, base), abs=1e-12)


def test_training_table_shift_5_last_timestep() -> None:
    assert 1000.0 * training_sigmas(5.0)[-1].item() == pytest.approx(4.980080, abs=TOL)


@pytest.mark.parametrize("shift", [1.0, 5.0])
def test_training_weights_normalised(shift: float) -> None:
    w = training_weights(shift)
    assert w.shape == (1000,)
    assert w.sum().item() == pytest.approx(1000.0, abs=1e-9)
    assert w.min().item() == 0.0
    assert bool((w >= 0).all())


def test_training_weights_match_independent_loop() -> None:
    shift = 5.0
    xs = [1000.0 * time_shift(shift, 1.0 - i / 1000.0) for i in range(1000)]
    ys = [math.exp(-2.0 * ((x - 500.0) / 1000.0) ** 2) for x in xs]
    low = min(ys)
    ys = [y - low for y in ys]
    total = sum(ys)
    expected = torch.tensor([y * 1000.0 / total for y in ys], dtype=torch.float64)
    assert torch.allclose(training_weights(shift), expected, atol=1e-12)


@pytest.mark.parametrize(("shift", "weight"), [(5.0, 2.0764), (1.0, 1.5796)])
def test_training_weight_at_500_reference(shift: float, weight: float) -> None:
    w = training_weight_at(torch.tensor([0.5]), shift)
    assert w.item() == pytest.approx(weight, abs=5e-5)
    # The weight peaks at timestep ≈ 500: it is the table's maximum up to one entry.
    assert w.item() == pytest.approx(training_weights(shift).max().item(), rel=1e-5)


def test_training_weight_at_uses_nearest_entry_and_keeps_shape_dtype() -> None:
    shift = 5.0
    sigmas = training_sigmas(shift)
    weights = training_weights(shift)
    zero = torch.tensor(0.0, dtype=torch.float64)
    t = torch.stack([sigmas[10], sigmas[400] + 1e-7, sigmas[999], zero])
    got = training_weight_at(t.float().reshape(2, 2), shift)
    assert got.shape == (2, 2) and got.dtype == torch.float32
    expected = weights[[10, 400, 999, 999]].float().reshape(2, 2)
    assert torch.equal(got, expected)
    # t = 0 and t = 1 land on the end entries, which carry (almost) no weight.
    assert training_weight_at(torch.tensor([1.0]), shift).item() == pytest.approx(weights[0].item())
