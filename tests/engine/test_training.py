"""The training half (docs/flow-conventions.md §7): timesteps, noise injection, target, loss."""

from __future__ import annotations

import pytest
import torch

from studio.engine.schedule import time_shift, training_weight_at
from studio.engine.training import (
    SIGMA_MIN,
    add_noise,
    flow_loss,
    sample_timesteps,
    velocity_target,
)

SHAPE = (4, 3, 2, 4, 4)


def pair(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(SHAPE, generator=g, dtype=torch.float64),
            torch.randn(SHAPE, generator=g, dtype=torch.float64))  # fmt: skip


# --- timestep sampling -----------------------------------------------------------------------


def test_sample_timesteps_is_sigmoid_of_standard_normal() -> None:
    t = sample_timesteps(1000, 1.0, torch.Generator().manual_seed(5))
    z = torch.randn(1000, generator=torch.Generator().manual_seed(5))
    assert t.shape == (1000,) and t.dtype == torch.float32
    assert torch.allclose(t, torch.sigmoid(z), atol=1e-7)


def test_sample_timesteps_logit_normal_median_and_spread() -> None:
    t = sample_timesteps(200_000, 1.0, torch.Generator().manual_seed(0)).double()
    assert t.median().item() == pytest.approx(0.5, abs=0.003)
    logit = torch.log(t / (1 - t))
    assert logit.mean().item() == pytest.approx(0.0, abs=0.01)
    assert logit.std().item() == pytest.approx(1.0, abs=0.01)
    assert bool(((t > 0) & (t < 1)).all())


@pytest.mark.parametrize("alpha", [0.5, 3.0, 2.236068])
def test_sample_timesteps_maps_through_time_shift(alpha: float) -> None:
    plain = sample_timesteps(5000, 1.0, torch.Generator().manual_seed(2)).double()
    shifted = sample_timesteps(5000, alpha, torch.Generator().manual_seed(2)).double()
    assert torch.allclose(shifted, alpha * plain / (1 + (alpha - 1) * plain), atol=1e-6)
    # A monotone map moves the median with it: shift(α, 0.5) = α / (1 + α).
    assert shifted.median().item() == pytest.approx(alpha / (1 + alpha), abs=0.01)
    assert time_shift(alpha, 0.5) == pytest.approx(alpha / (1 + alpha))


def test_sample_timesteps_reproducible_from_generator() -> None:
    a = sample_timesteps(16, 3.0, torch.Generator().manual_seed(9))
    assert torch.equal(a, sample_timesteps(16, 3.0, torch.Generator().manual_seed(9)))
    assert not torch.equal(a, sample_timesteps(16, 3.0, torch.Generator().manual_seed(10)))


# --- noise injection and target ----------------------------------------------------------------


def test_add_noise_open_sora_form_with_sigma_min() -> None:
    x0, x1 = pair()
    t = torch.tensor([0.0, 0.3, 0.75, 1.0], dtype=torch.float64)
    xt = add_noise(x0, x1, t)
    for b, tb in enumerate(t.tolist()):
        t_rev = 1.0 - tb
        expected = t_rev * x0[b] + (1.0 - (1.0 - 1e-5) * t_rev) * x1[b]
        assert torch.allclose(xt[b], expected, atol=1e-12)
    # Ends: t = 1 is pure noise; t = 0 keeps σ_min of the noise.
    assert torch.allclose(xt[3], x1[3], atol=1e-12)
    assert torch.allclose(xt[0], x0[0] + 1e-5 * x1[0], atol=1e-12)
    assert SIGMA_MIN == 1e-5


def test_add_noise_and_target_reduce_to_diffsynth_at_sigma_min_zero() -> None:
    x0, x1 = pair(1)
    t = torch.tensor([0.1, 0.5, 0.9, 0.999], dtype=torch.float64)
    xt = add_noise(x0, x1, t, sigma_min=0.0)
    tb = t.reshape(-1, 1, 1, 1, 1)
    assert torch.allclose(xt, (1 - tb) * x0 + tb * x1, atol=1e-12)
    assert torch.allclose(velocity_target(x0, x1, sigma_min=0.0), x1 - x0, atol=0)


def test_velocity_target_with_sigma_min() -> None:
    x0, x1 = pair(2)
    assert torch.allclose(velocity_target(x0, x1), (1 - 1e-5) * x1 - x0, atol=1e-15)


def test_target_is_the_time_derivative_of_the_path() -> None:
    """d x_t / d t equals the velocity target, checked by a central difference."""
    x0, x1 = pair(3)
    t = torch.tensor([0.2, 0.4, 0.6, 0.8], dtype=torch.float64)
    h = 1e-6
    derivative = (add_noise(x0, x1, t + h) - add_noise(x0, x1, t - h)) / (2 * h)
    assert torch.allclose(derivative, velocity_target(x0, x1), atol=1e-7)


def test_add_noise_accepts_broadcastable_per_token_t() -> None:
    x0, x1 = pair(4)
    t = torch.rand(SHAPE[0], 1, SHAPE[2], 1, 1, generator=torch.Generator().manual_seed(0))
    got = add_noise(x0, x1, t, sigma_min=0.0)
    td = t.double()
    assert torch.allclose(got, (1 - td) * x0 + td * x1, atol=1e-7)


# --- loss ------------------------------------------------------------------------------------


def test_flow_loss_is_mse_in_float32() -> None:
    pred, target = pair(5)
    loss = flow_loss(pred.to(torch.bfloat16), target.to(torch.bfloat16))
    assert loss.dtype == torch.float32 and loss.dim() == 0
    expected = ((pred.to(torch.bfloat16).double() - target.to(torch.bfloat16).double()) ** 2).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_flow_loss_per_sample_weights() -> None:
    pred, target = pair(6)
    per_sample = ((pred - target) ** 2).flatten(1).mean(1)
    weight = torch.tensor([0.0, 1.0, 2.0, 0.5])
    loss = flow_loss(pred, target, weight)
    assert loss.item() == pytest.approx((per_sample * weight.double()).mean().item(), rel=1e-6)
    assert flow_loss(pred, target, torch.ones(4)).item() == pytest.approx(
        flow_loss(pred, target).item(), rel=1e-7
    )
    # DiffSynth weights from the table plug straight in.
    t = torch.tensor([0.05, 0.5, 0.9, 1.0])
    w = training_weight_at(t, 5.0)
    assert flow_loss(pred, target, w).item() == pytest.approx(
        (per_sample * w.double()).mean().item(), rel=1e-6
    )


def test_flow_loss_mask_excludes_positions() -> None:
    pred, target = pair(7)
    mask = torch.ones(SHAPE[0], 1, *SHAPE[2:])
    mask[:, :, 0] = 0  # the first latent frame was given clean: it does not count
    # Garbage where the mask is 0 changes nothing.
    spoiled = pred.clone()
    spoiled[:, :, 0] = 1e6
    loss = flow_loss(spoiled, target, mask=mask)
    expected = ((pred[:, :, 1:] - target[:, :, 1:]) ** 2).flatten(1).mean(1).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    # An all-ones mask is the plain loss; an all-zero mask contributes nothing.
    assert flow_loss(pred, target, mask=torch.ones_like(mask)).item() == pytest.approx(
        flow_loss(pred, target).item(), rel=1e-6
    )
    assert flow_loss(pred, target, mask=torch.zeros_like(mask)).item() == 0.0


def test_flow_loss_zero_at_target_and_has_gradient() -> None:
    _, target = pair(8)
    pred = target.clone().float().requires_grad_(True)
    loss = flow_loss(pred, target)
    assert loss.item() == 0.0
    off = (target + 0.1).float().requires_grad_(True)
    loss = flow_loss(off, target)
    loss.backward()
    assert off.grad is not None
    assert torch.allclose(off.grad, torch.full_like(off, 2 * 0.1 / off.numel()), atol=1e-6)
