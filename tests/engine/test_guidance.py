"""Classifier-free guidance: v = v_u + g·(v_c − v_u) from one batched forward."""

from __future__ import annotations

import pytest
import torch

from studio.engine.guidance import guided_velocity
from studio.engine.noise import make_noise
from studio.engine.sampler import sample_euler
from studio.engine.schedule import make_schedule

SHAPE = (2, 3, 2, 4, 4)  # B = 2 with different samples per batch row
L, D = 5, 6


class Denoiser:
    """A per-sample nonlinear denoiser that depends on x, t_tok and the (zero-padding
    invariant) sum of its context; it records the batch size of every call."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.proj = torch.randn(D, SHAPE[1], generator=g, dtype=torch.float64)
        self.batches: list[int] = []
        self.contexts: list[torch.Tensor] = []

    def __call__(self, x: torch.Tensor, t_tok: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        assert x.shape[0] == t_tok.shape[0] == context.shape[0]
        self.batches.append(x.shape[0])
        self.contexts.append(context.clone())
        c = (context.sum(1) @ self.proj)[:, :, None, None, None]  # [B, C, 1, 1, 1]
        return torch.tanh(x * c) + t_tok[:, None].to(x.dtype) * c


def contexts(length_uncond: int = L) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    cond = torch.randn(SHAPE[0], L, D, generator=g, dtype=torch.float64)
    uncond = torch.randn(SHAPE[0], length_uncond, D, generator=g, dtype=torch.float64)
    return cond, uncond


def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    x = make_noise(SHAPE, 3, dtype=torch.float64)
    t_tok = torch.rand(SHAPE[0], *SHAPE[2:], generator=torch.Generator().manual_seed(4))
    return x, t_tok


@pytest.mark.parametrize("scale", [0.0, 2.5, 5.0, 7.5])
def test_batched_guidance_equals_two_separate_calls(scale: float) -> None:
    cond, uncond = contexts()
    x, t_tok = inputs()
    model = Denoiser()
    guided = guided_velocity(model, cond, uncond, scale)(x, t_tok)
    assert model.batches == [2 * SHAPE[0]]  # one forward with cond and uncond batched
    reference = Denoiser()
    v_c = reference(x, t_tok, cond)
    v_u = reference(x, t_tok, uncond)
    assert reference.batches == [SHAPE[0], SHAPE[0]]
    assert torch.allclose(guided, v_u + scale * (v_c - v_u), atol=1e-12, rtol=0)
    # Order matters for g ≠ 1: swapping cond and uncond gives a different field.
    assert not torch.allclose(guided, v_c + scale * (v_u - v_c))


def test_guidance_scale_one_makes_one_unbatched_call() -> None:
    cond, uncond = contexts()
    x, t_tok = inputs()
    model = Denoiser()
    v = guided_velocity(model, cond, uncond, 1.0)(x, t_tok)
    assert model.batches == [SHAPE[0]]
    assert torch.equal(model.contexts[0], cond)
    assert torch.equal(v, Denoiser()(x, t_tok, cond))


def test_no_unconditional_context_makes_one_unbatched_call() -> None:
    cond, _ = contexts()
    x, t_tok = inputs()
    model = Denoiser()
    v = guided_velocity(model, cond, None, 6.0)(x, t_tok)
    assert model.batches == [SHAPE[0]]
    assert torch.equal(v, Denoiser()(x, t_tok, cond))


def test_contexts_of_different_length_are_zero_padded() -> None:
    cond, uncond = contexts(length_uncond=2)
    x, t_tok = inputs()
    model = Denoiser()
    guided = guided_velocity(model, cond, uncond, 4.0)(x, t_tok)
    stacked = model.contexts[0]
    assert stacked.shape == (2 * SHAPE[0], L, D)
    assert torch.equal(stacked[: SHAPE[0]], cond)
    assert torch.equal(stacked[SHAPE[0] :, :2], uncond)
    assert bool((stacked[SHAPE[0] :, 2:] == 0).all())
    reference = Denoiser()
    v_c, v_u = reference(x, t_tok, cond), reference(x, t_tok, uncond)
    assert torch.allclose(guided, v_u + 4.0 * (v_c - v_u), atol=1e-12, rtol=0)


def test_guided_sampling_one_forward_per_step() -> None:
    cond, uncond = contexts()
    model = Denoiser()
    ts = make_schedule(5, 3.0)
    x = make_noise(SHAPE, 0, dtype=torch.float64)
    sample_euler(guided_velocity(model, cond, uncond, 5.0), x, ts)
    assert model.batches == [2 * SHAPE[0]] * 5
