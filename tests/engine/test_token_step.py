"""LTX-Video's per-token step: the original's values, and equivalence with the engine's sampler.

Reference values come from ``RectifiedFlowScheduler.step`` of the ``ltx-video`` 0.1.2 package
(float32, CPU) on a 3-token sample in the original's ``[B, L, C]`` layout.
"""

from __future__ import annotations

import pytest
import torch

from studio.engine.conditioning import Conditioning, initial_latent, token_timesteps
from studio.engine.noise import make_noise
from studio.engine.rf_schedule import rf_schedule
from studio.engine.sampler import sample_euler, sample_stochastic, step_noise_seed
from studio.engine.token_step import next_scheduled, per_token, pipeline_update, token_step

SCHEDULE = [1.0, 0.75, 0.5, 0.25, 0.0]  # N = 4 uniform, no shift, with the engine's final 0
X = torch.tensor([[[1.0, -2.0], [0.5, 0.25], [3.0, 1.0]]])
V = torch.tensor([[[0.2, 0.4], [-1.0, 2.0], [0.5, -0.5]]])
PREV_FROM_1 = [[[0.949999988079071, -2.0999999046325684], [0.75, -0.25], [2.875, 1.125]]]
PREV_FROM_06 = [[[0.9800000190734863, -2.0399999618530273],
                 [0.6000000238418579, 0.04999995231628418],
                 [2.950000047683716, 1.0499999523162842]]]  # fmt: skip


@pytest.mark.parametrize(("t", "t_next", "reference"), [
    (1.0, 0.75, PREV_FROM_1),
    (0.6, 0.5, PREV_FROM_06),  # not on the schedule: still steps to the next lower value
    (0.25, 0.0, PREV_FROM_1),  # the last scheduled time steps to 0
])  # fmt: skip
def test_global_time_steps_match_the_original(t, t_next, reference) -> None:
    for t_tok in (torch.tensor(t), torch.full((1, 3), t)):  # 0-d and per-token forms
        assert next_scheduled(t_tok, SCHEDULE).unique().tolist() == pytest.approx([t_next])
        prev = token_step(X, V, t_tok, SCHEDULE)
        torch.testing.assert_close(prev, torch.tensor(reference), atol=1e-6, rtol=0)


def test_masked_case_per_token_step_and_global_update() -> None:
    """Mask [1, 0.5, 0] at global t = 0.75: per-token times min(t, 1 − m) = [0, 0.5, 0.75].

    The per-token step moves each token to its own next time (0 → 0, 0.5 → 0.25, 0.75 → 0.5),
    giving the reference ``prev``. Which tokens keep ``prev`` is then decided at the *global*
    t, as the original pipeline's ``denoising_step`` does (``t − 1e-6 < 1 − m`` with the loop's
    t): [False, False, True]. Token 1 (strength 0.5) waits until t drops below 0.5, so the final
    state differs from ``prev`` there. Evaluating the rule at the per-token times instead gives
    [True, True, True] (the value a reference sheet may list): token 1 would then take the
    step 0.5 → 0.25 already at global t = 0.75 and again at t = 0.5, denoising twice from the
    same time. Token 0 ends the same either way, since its dt is 0.
    """
    mask = torch.tensor([[1.0, 0.5, 0.0]])
    t_tok = torch.clamp(1.0 - mask, max=0.75)
    assert t_tok.tolist() == [[0.0, 0.5, 0.75]]
    assert next_scheduled(t_tok, SCHEDULE).tolist() == [[0.0, 0.25, 0.5]]
    prev = token_step(X, V, t_tok, SCHEDULE)
    reference = [[[1.0, -2.0], [0.75, -0.25], [2.875, 1.125]]]
    torch.testing.assert_close(prev, torch.tensor(reference), atol=1e-6, rtol=0)

    assert ((t_tok - 1e-6) < (1.0 - mask)).tolist() == [[True, True, True]]  # per-token form
    update = pipeline_update(0.75, mask)
    assert update.tolist() == [[False, False, True]]  # the original's global-t form
    final = torch.where(per_token(update, X), prev, X)
    expected = [[[1.0, -2.0], [0.5, 0.25], [2.875, 1.125]]]
    torch.testing.assert_close(final, torch.tensor(expected), atol=0, rtol=0)
    assert pipeline_update(0.5, mask).tolist() == [[False, True, True]]


def test_stochastic_step_renoises_the_clean_estimate() -> None:
    noise = torch.tensor([[[0.3, -1.0], [2.0, 0.5], [-0.7, 0.1]]])
    t_tok = torch.tensor([[1.0, 0.6, 0.0]])
    prev = token_step(X, V, t_tok, SCHEDULE, noise=noise)
    t, t_next = t_tok[..., None], torch.tensor([[0.75, 0.5, 0.0]])[..., None]
    x0_hat = X - t * V
    torch.testing.assert_close(prev, (1 - t_next) * x0_hat + t_next * noise)
    assert torch.equal(prev[0, 2], X[0, 2])  # t = 0: x̂₀ = x, stays


def test_per_token_layouts_and_shape_errors() -> None:
    x = torch.randn(2, 3, 4, 5, 6)
    assert per_token(torch.rand(2, 4, 5, 6), x).shape == (2, 1, 4, 5, 6)
    assert per_token(torch.rand(2, 7), torch.randn(2, 7, 3)).shape == (2, 7, 1)
    with pytest.raises(ValueError, match="does not match"):
        per_token(torch.rand(2, 3, 5, 6), x)
    with pytest.raises(ValueError, match="does not match"):
        per_token(torch.rand(2, 3), torch.randn(2, 7, 3))


def _field(seed: int):
    """A fixed nonlinear velocity that depends on the per-token time, so wrong times show."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(3, 3, generator=g) * 0.5

    def velocity(x: torch.Tensor, t_tok: torch.Tensor) -> torch.Tensor:
        mixed = torch.einsum("dc,bc...->bd...", w, torch.tanh(x))
        return mixed + (1.0 + 2.0 * t_tok[:, None]) * x

    return velocity


def _masked_run():
    """A random latent [1, 3, 3, 2, 4] with strengths 0, 0.3, 0.6, 1 and random values."""
    g = torch.Generator().manual_seed(7)
    mask = torch.rand(1, 1, 3, 2, 4, generator=g)
    mask[0, 0, 0] = 1.0
    mask[0, 0, 1, 0] = torch.tensor([0.0, 0.3, 0.6, 0.3])
    cond = Conditioning(torch.randn(1, 3, 3, 2, 4, generator=g), mask)
    x = initial_latent(torch.randn(1, 3, 3, 2, 4, generator=g), cond)
    return x, cond, rf_schedule(6, shifting="sd3", tokens=24, terminal=0.1)


def _token_loop(velocity, x, cond, ts, noise_at=None):
    mask = cond.mask[:, 0]
    for i, t in enumerate(ts[:-1]):
        t_tok = torch.clamp(1.0 - mask, max=t)
        prev = token_step(x, velocity(x, t_tok), t_tok, ts,
                          noise=None if noise_at is None else noise_at(i))
        x = torch.where(per_token(pipeline_update(t, mask), x), prev, x)
    return x


def test_engine_euler_is_the_ltx_step() -> None:
    """sample_euler with a Conditioning == token_step + pipeline_update, step by step."""
    x, cond, ts = _masked_run()
    velocity = _field(1)
    ours = _token_loop(velocity, x, cond, ts)
    engine = sample_euler(velocity, x, ts, cond=cond)
    torch.testing.assert_close(ours, engine, atol=1e-6, rtol=0)
    assert torch.equal(ours[:, :, 0], cond.latent[:, :, 0])  # strength 1 never moves
    assert not torch.allclose(ours, x)
    # The same run in the original's [B, L, C] token layout.
    flat = x.flatten(2).transpose(1, 2)
    tokens_out = _token_loop(_flat_field(velocity, x.shape), flat,
                             Conditioning(cond.latent, cond.mask.flatten(2)), ts)
    torch.testing.assert_close(tokens_out.transpose(1, 2).reshape(x.shape), engine,
                               atol=1e-6, rtol=0)


def _flat_field(velocity, shape):
    def flat_velocity(x: torch.Tensor, t_tok: torch.Tensor) -> torch.Tensor:
        grid = velocity(x.transpose(1, 2).reshape(shape), t_tok.reshape(shape[:1] + shape[2:]))
        return grid.flatten(2).transpose(1, 2)

    return flat_velocity


def test_engine_stochastic_is_the_ltx_stochastic_step() -> None:
    """sample_stochastic == the stochastic token_step with the engine's per-step noise."""
    x, cond, ts = _masked_run()
    velocity = _field(2)
    seed = 11

    def noise_at(i: int) -> torch.Tensor:
        return make_noise(tuple(x.shape), step_noise_seed(seed, i))

    ours = _token_loop(velocity, x, cond, ts, noise_at)
    engine = sample_stochastic(velocity, x, ts, cond=cond, seed=seed)
    torch.testing.assert_close(ours, engine, atol=1e-6, rtol=0)
    assert not torch.allclose(ours, _token_loop(velocity, x, cond, ts), atol=1e-3)


def test_token_timesteps_agree() -> None:
    _, cond, _ = _masked_run()
    assert torch.equal(token_timesteps(0.4, cond.mask), torch.clamp(1.0 - cond.mask[:, 0], max=0.4))
