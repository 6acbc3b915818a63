"""Samplers against analytic velocity fields (docs/flow-conventions.md §5).

Two fields with known exact flows:

* a single data point x0: the velocity of the straight path is ``v = (x − x0)/t`` and Euler lands
  on x0 exactly at t = 0 on any schedule;
* Gaussian data N(μ, s²) per element with N(0, 1) noise: the marginal at t is
  N((1 − t)μ, (1 − t)²s² + t²), the rectified-flow velocity is affine in x and the exact flow maps
  noise x1 to ``μ + s·x1``. Euler's global error then shrinks like 1/N.
"""

from __future__ import annotations

import math

import pytest
import torch

from studio.engine import request as request_module
from studio.engine.cancel import CancelToken
from studio.engine.noise import make_noise
from studio.engine.sampler import StepInfo, sample_euler, sample_stochastic
from studio.engine.samplers import MULTISTEP_SAMPLERS, SAMPLERS
from studio.engine.schedule import make_schedule
from studio.errors import Cancelled

SHAPE = (1, 2, 3, 4, 4)


def point_field(x0: torch.Tensor):
    """Velocity of the straight path towards the single data point ``x0``."""

    def velocity(x: torch.Tensor, t_tok: torch.Tensor) -> torch.Tensor:
        return (x - x0) / t_tok[:, None].to(x.dtype)

    return velocity


def gaussian_field(mu: torch.Tensor, s: torch.Tensor):
    """Exact rectified-flow velocity for data N(mu, s²), noise N(0, 1) (elementwise)."""

    def velocity(x: torch.Tensor, t_tok: torch.Tensor) -> torch.Tensor:
        t = t_tok[:, None].to(x.dtype)
        var = (1 - t) ** 2 * s**2 + t**2
        return -mu + (t - (1 - t) * s**2) / var * (x - (1 - t) * mu)

    return velocity


def gaussian_problem() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    mu = torch.randn(SHAPE, generator=g, dtype=torch.float64) * 2.0
    s = torch.rand(SHAPE, generator=g, dtype=torch.float64) * 0.8 + 0.1
    x1 = torch.randn(SHAPE, generator=g, dtype=torch.float64)
    return mu, s, x1


class CountingVelocity:
    """Wraps a velocity and records every call's inputs and output."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def __call__(self, x: torch.Tensor, t_tok: torch.Tensor) -> torch.Tensor:
        v = self.inner(x, t_tok)
        self.calls.append((x.clone(), t_tok.clone(), v.clone()))
        return v


@pytest.mark.parametrize(
    "ts",
    [
        make_schedule(1),
        make_schedule(7),
        make_schedule(25, 5.0),
        make_schedule(10, 0.3),
        [1.0, 0.97, 0.5, 0.49, 0.01, 0.0],
    ],
)
def test_euler_point_field_reaches_x0(ts: list[float]) -> None:
    x0 = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x1 = make_noise(SHAPE, 2, dtype=torch.float64)
    infos: list[StepInfo] = []
    out = sample_euler(point_field(x0), x1, ts, on_step=infos.append)
    # The model sees t_tok in float32, so the field is exact only to float32 rounding of t.
    assert torch.allclose(out, x0, atol=1e-6, rtol=0)
    # The prediction x̂₀ = x − t·v is x0 at every step, and x stays on the straight path.
    for info in infos:
        assert torch.allclose(info.x0_hat, x0, atol=1e-6, rtol=0)
        straight = (1 - info.t_next) * x0 + info.t_next * x1
        assert torch.allclose(info.x, straight, atol=1e-6, rtol=0)


def test_euler_point_field_exact_on_binary_schedule() -> None:
    """With times exactly representable in float32 nothing but float64 rounding remains."""
    x0 = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = sample_euler(point_field(x0), make_noise(SHAPE, 2, dtype=torch.float64), make_schedule(8))
    assert torch.allclose(out, x0, atol=1e-14, rtol=0)


def test_gaussian_field_is_exact_velocity() -> None:
    """Self-check of the test's field: a fine RK4 integration reaches μ + s·x1."""
    mu, s, x1 = gaussian_problem()
    v = gaussian_field(mu, s)
    x, n = x1.clone(), 200
    tt = lambda t: torch.full((1, 3, 4, 4), t, dtype=torch.float64)  # noqa: E731
    for i in range(n):
        t, h = 1 - i / n, -1 / n
        k1 = v(x, tt(t))
        k2 = v(x + h / 2 * k1, tt(t + h / 2))
        k3 = v(x + h / 2 * k2, tt(t + h / 2))
        k4 = v(x + h * k3, tt(t + h))
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    assert torch.allclose(x, mu + s * x1, atol=1e-9)


@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_euler_converges_with_order_one(shift: float) -> None:
    mu, s, x1 = gaussian_problem()
    exact = mu + s * x1
    steps = [8, 16, 32, 64, 128]
    errors = []
    for n in steps:
        out = sample_euler(gaussian_field(mu, s), x1, make_schedule(n, shift))
        errors.append((out - exact).abs().max().item())
    assert all(e > 0 for e in errors)
    assert all(a > b for a, b in zip(errors, errors[1:], strict=False))
    logs_n = torch.tensor([math.log(n) for n in steps], dtype=torch.float64)
    logs_e = torch.tensor([math.log(e) for e in errors], dtype=torch.float64)
    slope = torch.linalg.lstsq(
        torch.stack([logs_n, torch.ones_like(logs_n)], 1), logs_e[:, None]
    ).solution[0, 0]
    assert 0.8 <= -slope.item() <= 1.2, (errors, slope)


def test_euler_step_formula_and_callback() -> None:
    """Each step is x' = x + (t' − t)·v; the callback gets (i, n, t, t', x', x − t·v)."""
    weight = torch.randn(2, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)

    def nonlinear(x: torch.Tensor, t_tok: torch.Tensor) -> torch.Tensor:
        return torch.tanh(torch.einsum("dc,bcthw->bdthw", weight, x)) * (1 + t_tok[:, None])

    model = CountingVelocity(nonlinear)
    ts = make_schedule(6, 3.0)
    infos: list[StepInfo] = []
    x = make_noise(SHAPE, 11, dtype=torch.float64)
    out = sample_euler(model, x, ts, on_step=infos.append)
    assert len(model.calls) == 6 and len(infos) == 6
    for i, (info, (x_in, t_tok, v)) in enumerate(zip(infos, model.calls, strict=True)):
        assert (info.i, info.n, info.t, info.t_next) == (i, 6, ts[i], ts[i + 1])
        assert t_tok.shape == (1, 3, 4, 4) and t_tok.dtype == torch.float32
        assert bool((t_tok == ts[i]).all())
        # x̂₀ uses the time the model saw (float32 t_tok), the step the schedule's float t.
        assert torch.equal(info.x0_hat, x_in - t_tok[:, None].double() * v)
        assert torch.allclose(info.x0_hat, x_in - ts[i] * v, atol=1e-6)
        assert torch.equal(info.x, x_in + (ts[i + 1] - ts[i]) * v)
        if i + 1 < 6:
            assert torch.equal(model.calls[i + 1][0], info.x)
    assert torch.equal(out, infos[-1].x)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_samplers_are_deterministic_and_leave_input_alone(name: str) -> None:
    torch.manual_seed(0)
    net = torch.nn.Conv3d(2, 2, 3, padding=1).double()

    def velocity(x: torch.Tensor, t_tok: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return net(x) * t_tok[:, None] + x

    x = make_noise(SHAPE, 5, dtype=torch.float64)
    before = x.clone()
    ts = make_schedule(8, 2.0)
    a = SAMPLERS[name](velocity, x, ts, seed=9)
    b = SAMPLERS[name](velocity, x.clone(), ts, seed=9)
    assert torch.equal(a, b)
    assert torch.equal(x, before)
    assert not torch.equal(a, x)


def test_sampler_names_match_request_names() -> None:
    assert set(SAMPLERS) == set(request_module.SAMPLERS)
    assert SAMPLERS["euler"] is sample_euler and SAMPLERS["stochastic"] is sample_stochastic


def test_stochastic_step_formula() -> None:
    """x̂₀ = x − t·v, then x' = (1 − t')·x̂₀ + t'·ε with fresh standard-normal ε at each step."""
    x0 = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ts = make_schedule(5)
    infos: list[StepInfo] = []
    out = sample_stochastic(point_field(x0), make_noise(SHAPE, 4, dtype=torch.float64), ts,
                            seed=4, on_step=infos.append)  # fmt: skip
    assert torch.allclose(out, x0, atol=1e-6, rtol=0)
    eps = []
    for info in infos[:-1]:
        assert torch.allclose(info.x0_hat, x0, atol=1e-6, rtol=0)
        eps.append((info.x - (1 - info.t_next) * x0) / info.t_next)
    # Re-noising draws new noise each step: not this run's initial noise, nor a neighbouring
    # seed's initial noise (that would make runs with seeds s and s + 1 near-copies).
    nearby = [make_noise(SHAPE, k, dtype=torch.float64) for k in range(0, 12)]
    for i, e in enumerate(eps):
        assert all(not torch.allclose(e, other, atol=1e-4) for other in nearby)
        assert all(not torch.allclose(e, other) for other in eps[i + 1 :])
        assert abs(e.mean().item()) < 0.5 and 0.5 < e.std().item() < 1.5


def test_stochastic_reproducible_from_seed_and_different_across_seeds() -> None:
    mu, s, x1 = gaussian_problem()
    field = gaussian_field(mu, s)
    ts = make_schedule(6, 3.0)
    a = sample_stochastic(field, x1, ts, seed=123)
    b = sample_stochastic(field, x1, ts, seed=123)
    c = sample_stochastic(field, x1, ts, seed=124)
    assert torch.equal(a, b)
    assert not torch.allclose(c, a, atol=1e-3)
    # The Euler sampler ignores the seed.
    assert torch.equal(sample_euler(field, x1, ts, seed=1), sample_euler(field, x1, ts, seed=2))


def test_neighbouring_seeds_give_independent_stochastic_runs() -> None:
    shape = (1, 4, 4, 16, 16)
    field = gaussian_field(torch.zeros(shape), torch.full(shape, 0.5))
    ts = make_schedule(12, 3.0)
    out = {k: sample_stochastic(field, make_noise(shape, k), ts, seed=k) for k in (10, 11, 12)}
    for a, b in ((10, 11), (11, 12), (10, 12)):
        corr = torch.corrcoef(torch.stack([out[a].flatten(), out[b].flatten()]))[0, 1].item()
        assert abs(corr) < 0.1, (a, b, corr)


@pytest.mark.parametrize("name", sorted(set(SAMPLERS) - MULTISTEP_SAMPLERS))
@pytest.mark.parametrize("start", [0, 3, 7])
def test_resume_at_step_is_bit_identical(name: str, start: int) -> None:
    """State saved after ``start`` steps, fed back with ``start``, ends exactly as a full run."""
    mu, s, x1 = gaussian_problem()
    field = gaussian_field(mu, s)
    ts = make_schedule(7, 3.0)
    states: dict[int, torch.Tensor] = {0: x1}

    def keep(info: StepInfo) -> None:
        states[info.i + 1] = info.x

    full = SAMPLERS[name](field, x1, ts, seed=21, on_step=keep)
    model = CountingVelocity(field)
    seen: list[int] = []
    resumed = SAMPLERS[name](model, states[start].clone(), ts, seed=21, start=start,
                             on_step=lambda info: seen.append(info.i))  # fmt: skip
    assert torch.equal(resumed, full)
    assert len(model.calls) == 7 - start and seen == list(range(start, 7))


@pytest.mark.parametrize("start", [-1, 8])
def test_resume_outside_schedule_rejected(start: int) -> None:
    with pytest.raises(ValueError, match="start"):
        sample_euler(lambda x, t: x, make_noise(SHAPE, 0), make_schedule(7), start=start)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
@pytest.mark.parametrize("stop_after", [0, 2])
def test_cancel_from_callback_stops_before_next_model_call(name: str, stop_after: int) -> None:
    token = CancelToken()
    model = CountingVelocity(lambda x, t_tok: x * 0.5)
    seen: list[int] = []

    def on_step(info: StepInfo) -> None:
        seen.append(info.i)
        if info.i == stop_after:
            token.set()

    with pytest.raises(Cancelled):
        SAMPLERS[name](model, make_noise(SHAPE, 0), make_schedule(6), on_step=on_step, cancel=token)
    assert len(model.calls) == stop_after + 1
    assert seen == list(range(stop_after + 1))


def test_cancel_before_start_makes_no_model_call() -> None:
    token = CancelToken()
    token.set()
    model = CountingVelocity(lambda x, t_tok: x)
    with pytest.raises(Cancelled):
        sample_euler(model, make_noise(SHAPE, 0), make_schedule(3), cancel=token)
    assert model.calls == []
    assert token.is_set


def test_cancel_token_is_shared_across_threads() -> None:
    import threading

    token = CancelToken()
    worker = threading.Thread(target=token.set)
    worker.start()
    worker.join()
    assert token.is_set
    with pytest.raises(Cancelled):
        token.check()
    CancelToken().check()  # a fresh token does not raise
