"""Conditioning masks (docs/flow-conventions.md §4): hard, soft and free positions, keyframes."""

from __future__ import annotations

import math

import pytest
import torch

from studio.engine.conditioning import (
    T_EPS,
    Conditioning,
    empty_conditioning,
    initial_latent,
    latent_frame_index,
    place_latent_frame,
    token_timesteps,
    update_mask,
)
from studio.engine.noise import make_noise
from studio.engine.sampler import StepInfo, sample_euler
from studio.engine.samplers import SAMPLERS
from studio.engine.schedule import make_schedule

B, C, T, H, W = 1, 3, 5, 4, 4
SHAPE = (B, C, T, H, W)


class Recorder:
    """A nonlinear, position-wise velocity that records (x, t_tok) at every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, x: torch.Tensor, t_tok: torch.Tensor) -> torch.Tensor:
        self.calls.append((x.clone(), t_tok.clone()))
        return torch.sin(3 * x) + x * t_tok[:, None].to(x.dtype) + 0.5


def frame_cond(frames: dict[int, float], seed: int = 99) -> Conditioning:
    """Conditioning with a random latent frame at each index, strength as given."""
    cond = empty_conditioning(SHAPE)
    for index, strength in frames.items():
        latent = make_noise((B, C, H, W), seed + index) * 2.0
        cond = place_latent_frame(cond, latent, index, strength)
    return cond


# --- primitives ------------------------------------------------------------------------------


def test_initial_latent_is_lerp() -> None:
    noise = make_noise(SHAPE, 1)
    cond = frame_cond({0: 1.0, 2: 0.4, 4: 0.75})
    x = initial_latent(noise, cond)
    m = cond.mask.double()
    expected = (1 - m) * noise.double() + m * cond.latent.double()
    assert torch.allclose(x.double(), expected, atol=1e-6)
    # Exact at the ends of the lerp: m = 1 gives the condition, m = 0 the noise, bit for bit.
    assert torch.equal(x[:, :, 0], cond.latent[:, :, 0])
    for free in (1, 3):
        assert torch.equal(x[:, :, free], noise[:, :, free])


def test_token_timesteps_is_min_of_t_and_one_minus_m() -> None:
    mask = torch.tensor([0.0, 0.25, 0.4, 1.0]).reshape(1, 1, 4, 1, 1).expand(2, 1, 4, 2, 3)
    for t in (1.0, 0.7, 0.6, 0.3, 0.0):
        got = token_timesteps(t, mask)
        assert got.shape == (2, 4, 2, 3) and got.dtype == torch.float32
        expected = [min(t, 1 - m) for m in (0.0, 0.25, 0.4, 1.0)]
        for k, value in enumerate(expected):
            assert torch.allclose(got[:, k], torch.tensor(value), atol=1e-7)


def test_update_mask_threshold() -> None:
    mask = torch.tensor([0.0, 0.4, 1.0]).reshape(1, 1, 3, 1, 1)
    assert update_mask(1.0, mask).flatten().tolist() == [True, False, False]
    assert update_mask(0.61, mask).flatten().tolist() == [True, False, False]
    assert update_mask(0.6, mask).flatten().tolist() == [True, True, False]  # t − t_eps < 1 − m
    assert update_mask(0.59, mask).flatten().tolist() == [True, True, False]
    assert update_mask(T_EPS / 2, mask).flatten().tolist() == [True, True, True]
    assert update_mask(0.5, mask).dtype == torch.bool


@pytest.mark.parametrize(
    ("frame", "expected"), [(0, 0), (-1, 4), (8, 2), (1, 1), (4, 1), (5, 2), (16, 4), (-17, 0)]
)
def test_latent_frame_index_keyframes(frame: int, expected: int) -> None:
    assert latent_frame_index(frame, 17, 4) == expected


def test_latent_frame_index_matches_causal_grouping() -> None:
    for r in (1, 2, 4, 8):
        frames = 1 + 3 * r
        for f in range(frames):
            assert latent_frame_index(f, frames, r) == math.ceil(f / r)
        assert latent_frame_index(-1, frames, r) == 3


@pytest.mark.parametrize("frame", [17, -18, 100])
def test_latent_frame_index_outside_video(frame: int) -> None:
    with pytest.raises(IndexError):
        latent_frame_index(frame, 17, 4)


def test_place_latent_frame_shapes_replacement_and_no_aliasing() -> None:
    base = empty_conditioning(SHAPE)
    first = torch.ones(B, C, H, W)
    cond = place_latent_frame(base, first, 2, 0.4)
    assert torch.equal(base.mask, torch.zeros(B, 1, T, H, W))  # the input is not modified
    assert torch.equal(cond.latent[:, :, 2], first) and bool((cond.mask[:, :, 2] == 0.4).all())
    assert bool((cond.mask[:, :, [0, 1, 3, 4]] == 0).all())
    second = torch.full((B, C, 1, H, W), 2.0)  # 5-D frame latents are accepted too
    cond = place_latent_frame(cond, second, 2, 1.0)
    assert torch.equal(cond.latent[:, :, 2], second[:, :, 0])
    assert int((cond.mask == 1).sum()) == H * W and int((cond.mask != 0).sum()) == H * W


def test_conditioning_to_keeps_mask_float32() -> None:
    cond = frame_cond({0: 0.4}).to("cpu", torch.bfloat16)
    assert cond.latent.dtype == torch.bfloat16 and cond.mask.dtype == torch.float32


# --- inside the sampler ----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_hard_frame_is_bit_identical_and_sees_t_zero(name: str) -> None:
    cond = frame_cond({0: 1.0})
    model = Recorder()
    x = initial_latent(make_noise(SHAPE, 3), cond)
    out = SAMPLERS[name](model, x, make_schedule(8, 3.0), cond=cond, seed=3)
    assert torch.equal(out[:, :, 0], cond.latent[:, :, 0])
    ts = make_schedule(8, 3.0)
    assert len(model.calls) == 8
    for (_, t_tok), t in zip(model.calls, ts, strict=False):
        assert bool((t_tok[:, 0] == 0).all())
        assert bool((t_tok[:, 1:] == torch.tensor(t, dtype=torch.float32)).all())
    assert not torch.equal(out[:, :, 1:], x[:, :, 1:])


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_preview_of_hard_frame_is_the_condition(name: str) -> None:
    """x̂₀ uses each position's own time, so a pinned frame previews as its reference."""
    cond = frame_cond({0: 1.0})
    infos: list[StepInfo] = []
    x = initial_latent(make_noise(SHAPE, 3), cond)
    SAMPLERS[name](Recorder(), x, make_schedule(4), cond=cond, on_step=infos.append)
    for info in infos:
        assert torch.equal(info.x0_hat[:, :, 0], cond.latent[:, :, 0])


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_soft_frame_waits_until_t_below_one_minus_m(name: str) -> None:
    ts = [1.0, 0.8, 0.61, 0.59, 0.3, 0.0]
    cond = frame_cond({2: 0.4})
    x = initial_latent(make_noise(SHAPE, 4), cond)
    start = x[:, :, 2].clone()
    model = Recorder()
    infos: list[StepInfo] = []
    SAMPLERS[name](model, x, ts, cond=cond, on_step=infos.append, seed=4)
    # Steps from t = 1, 0.8 and 0.61 (all ≥ 0.6) keep the value bit for bit ...
    for info in infos[:3]:
        assert torch.equal(info.x[:, :, 2], start)
    # ... the step from 0.59, the first with t < 1 − m, changes it; free frames move at once.
    assert not torch.equal(infos[3].x[:, :, 2], start)
    assert bool((infos[3].x[:, :, 2] != start).all())
    assert not torch.equal(infos[0].x[:, :, 0], x[:, :, 0])
    seen = [t_tok[0, 2].unique() for _, t_tok in model.calls]
    assert [len(values) for values in seen] == [1] * 5
    assert [v.item() for v in seen] == pytest.approx([0.6, 0.6, 0.6, 0.59, 0.3], abs=1e-7)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_free_positions_behave_as_unconditioned(name: str) -> None:
    noise = make_noise(SHAPE, 5)
    ts = make_schedule(6, 2.0)
    plain = SAMPLERS[name](Recorder(), noise, ts, seed=5)
    # An all-zero mask with a non-zero latent changes nothing at all.
    zero = Conditioning(make_noise(SHAPE, 6), torch.zeros(B, 1, T, H, W))
    assert torch.equal(initial_latent(noise, zero), noise)
    out = SAMPLERS[name](Recorder(), initial_latent(noise, zero), ts, cond=zero, seed=5)
    assert torch.equal(out, plain)
    # With some frames conditioned, the m = 0 frames follow the unconditioned run exactly
    # (the test field is position-wise, so frames do not talk to each other).
    cond = frame_cond({0: 1.0, 3: 0.5})
    out = SAMPLERS[name](Recorder(), initial_latent(noise, cond), ts, cond=cond, seed=5)
    for free in (1, 2, 4):
        assert torch.equal(out[:, :, free], plain[:, :, free])


def test_first_middle_last_keyframes() -> None:
    frames, r = 17, 4
    indices = [latent_frame_index(f, frames, r) for f in (0, 8, -1)]
    assert indices == [0, 2, 4]
    cond = frame_cond(dict.fromkeys(indices, 1.0))
    x = initial_latent(make_noise(SHAPE, 7), cond)
    out = sample_euler(Recorder(), x, make_schedule(5), cond=cond)
    for k in indices:
        assert torch.equal(out[:, :, k], cond.latent[:, :, k])
    for k in (1, 3):
        assert bool((out[:, :, k] != x[:, :, k]).all())


def test_hard_frame_bit_identical_in_bfloat16() -> None:
    cond = frame_cond({-1 % T: 1.0}).to("cpu", torch.bfloat16)
    x = initial_latent(make_noise(SHAPE, 8, dtype=torch.bfloat16), cond)
    out = sample_euler(Recorder(), x, make_schedule(4), cond=cond)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out[:, :, T - 1], cond.latent[:, :, T - 1])
