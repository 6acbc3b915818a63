"""The engine contract LTX-Video needs, on the tiny service model: explicit timesteps, a model's
own schedule rule, keyframes appended after the grid with a frame layout at every denoiser call,
noise on pinned positions, and the STG settings a guidance rule receives."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from PIL import Image

from studio.engine.conditioning import Conditioning, perturb_pinned, pinned_noise_seed
from studio.engine.model import Capabilities, FrameLayout, GuidanceInputs
from studio.engine.noise import make_noise
from studio.engine.pipeline import build_conditioning, plan_generation, sample_plan
from studio.engine.request import ConditioningItem, GenerationRequest
from studio.errors import InvalidRequest
from tests.service.tiny_model import load_tiny, tiny_request, write_tiny_weights


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("tiny")
    write_tiny_weights(folder)
    return load_tiny(folder)


@pytest.fixture
def layout_model(tiny):
    """The tiny model declaring a frame layout; its denoiser records every call's layout."""
    seen: list[tuple[tuple[int, ...], FrameLayout]] = []
    plain = tiny.denoiser

    def denoiser(x, t_tok, context, *, layout):
        seen.append((tuple(x.shape), layout))
        return plain(x, t_tok, context)

    return replace(tiny, denoiser=denoiser,
                   capabilities=replace(tiny.capabilities, frame_layout=True)), seen


def _image(tmp_path: Path, name: str, colour: tuple[int, int, int]) -> str:
    path = tmp_path / name
    Image.new("RGB", (32, 24), colour).save(path)
    return str(path)


def test_request_checks_and_keeps_the_new_fields() -> None:
    request = tiny_request(steps=3, timesteps=(1.0, 0.6, 0.2), stg=1.0, stg_rescale=0.7,
                           reference_noise=0.15)
    again = GenerationRequest.from_json(request.to_json())
    assert again == request and again.timesteps == (1.0, 0.6, 0.2)
    bad = [dict(steps=2, timesteps=(1.0, 0.6, 0.2)), dict(steps=3, timesteps=(1.0, 0.6, 0.7)),
           dict(steps=3, timesteps=(1.0, "x", 0.2)), dict(stg=-1.0), dict(stg_rescale=1.5),
           dict(reference_noise=2.0)]
    for changes in bad:
        with pytest.raises(InvalidRequest):
            tiny_request(**changes)


def test_explicit_timesteps_and_the_models_schedule_rule(tiny) -> None:
    plan = plan_generation(tiny, tiny_request(steps=3, timesteps=(1.0, 0.6, 0.2)))
    assert plan.schedule == (1.0, 0.6, 0.2, 0.0)
    shapes = []

    def rule(steps, shape):
        shapes.append(shape)
        return 7.0, [1.0 - i / (2 * steps) for i in range(steps)] + [0.0]

    ruled = replace(tiny, schedule_rule=rule)
    plan = plan_generation(ruled, tiny_request(steps=4, shift="auto"))
    assert plan.shift == 7.0 and plan.schedule == (1.0, 0.875, 0.75, 0.625, 0.0)
    assert shapes == [(1, 4, 3, 6, 8)]
    fixed = plan_generation(ruled, tiny_request(steps=4, shift=2.0))
    assert fixed.shift == 2.0 and fixed.schedule[1] == pytest.approx(2 * 0.75 / (1 + 0.75))


def test_stg_settings_reach_the_guidance_rule_only_for_models_that_have_them(tiny) -> None:
    received: list[GuidanceInputs] = []

    def rule(inputs: GuidanceInputs):
        received.append(inputs)
        return lambda x, t_tok: inputs.denoise(x, t_tok, inputs.context)

    with_stg = replace(tiny, guidance_rule=rule,
                       defaults=replace(tiny.defaults, stg=1.0, stg_rescale=0.7))
    sample_plan(with_stg, plan_generation(with_stg, tiny_request(steps=2, stg=2.5)))
    assert (received[-1].stg, received[-1].stg_rescale) == (2.5, 0.7)
    plan = plan_generation(tiny, tiny_request(steps=2, stg=2.5))
    assert (plan.stg, plan.stg_rescale) == (0.0, 0.0)  # no STG in this model: ignored


def test_keyframes_are_appended_after_the_grid_with_their_frames(layout_model, tmp_path) -> None:
    layout_model, seen = layout_model
    items = (ConditioningItem(_image(tmp_path, "a.png", (200, 30, 30)), 0),
             ConditioningItem(_image(tmp_path, "b.png", (30, 200, 30)), -1, 1.0),
             ConditioningItem(_image(tmp_path, "c.png", (30, 30, 200)), 4, 0.5))
    request = tiny_request(steps=3, conditioning=items, fps=12.0)
    plan = plan_generation(layout_model, request)
    assert plan.appended == ((8, 1), (4, 1)) and plan.state_shape == (1, 4, 5, 6, 8)
    cond = build_conditioning(layout_model, plan)
    assert cond.mask[0, 0, :, 0, 0].tolist() == [1.0, 0.0, 0.0, 1.0, 0.5]
    vae = layout_model.vae
    pixels = torch.tensor([30, 200, 30]).float().div(127.5).sub(1).view(1, 3, 1, 1, 1)
    alone = vae.encode(pixels.expand(1, 3, 1, 24, 32))[:, :, 0]
    torch.testing.assert_close(cond.latent[:, :, 3], alone)  # the image alone, not a still clip
    steps = []
    latent = sample_plan(layout_model, plan, on_step=steps.append)
    assert latent.shape == (1, 4, 3, 6, 8)
    assert {shape for shape, _ in seen} == {(2, 4, 5, 6, 8)}
    assert seen[0][1] == FrameLayout(12.0, 3, ((8, 1), (4, 1)))
    assert steps[0].x.shape[2] == 5 and steps[0].x0_hat.shape[2] == 3
    torch.testing.assert_close(steps[-1].x[:, :, 3], cond.latent[:, :, 3])  # pinned: kept
    resumed = sample_plan(layout_model, plan, start_step=1, x=steps[0].x)  # a checkpoint's state
    assert torch.equal(resumed, latent)


def test_models_without_a_layout_place_keyframes_in_the_grid(tiny, tmp_path) -> None:
    item = ConditioningItem(_image(tmp_path, "b.png", (30, 200, 30)), -1)
    plan = plan_generation(tiny, tiny_request(steps=2, conditioning=(item,)))
    assert plan.appended == () and plan.state_shape == plan.latent_shape
    assert build_conditioning(tiny, plan).mask[0, 0, :, 0, 0].tolist() == [0.0, 0.0, 1.0]


def test_pinned_positions_get_seeded_noise_times_t_squared() -> None:
    latent = torch.randn(1, 2, 3, 2, 2)
    mask = torch.zeros(1, 1, 3, 2, 2)
    mask[:, :, 0] = 1.0
    mask[:, :, 1] = 0.5
    cond = Conditioning(latent, mask, noise_scale=0.15, noise_seed=11)
    x = torch.randn(1, 2, 3, 2, 2)
    out = perturb_pinned(x, cond, 0.6, step=4)
    eps = make_noise((1, 2, 3, 2, 2), pinned_noise_seed(11, 4))
    torch.testing.assert_close(out[:, :, 0], latent[:, :, 0] + 0.15 * 0.36 * eps[:, :, 0])
    assert torch.equal(out[:, :, 1:], x[:, :, 1:])
    assert not torch.equal(perturb_pinned(x, cond, 0.6, step=5), out)
    assert torch.equal(perturb_pinned(x, replace(cond, noise_scale=0.0), 0.6, 4), x)


def test_reference_noise_runs_and_a_resumed_run_matches(tiny, tmp_path) -> None:
    item = ConditioningItem(_image(tmp_path, "a.png", (200, 30, 30)), 0)
    request = tiny_request(steps=4, conditioning=(item,), reference_noise=0.15)
    plan = plan_generation(tiny, request)
    states = []
    whole = sample_plan(tiny, plan, on_step=states.append)
    resumed = sample_plan(tiny, plan, start_step=2, x=states[1].x)
    assert torch.equal(whole, resumed)
    quiet = sample_plan(tiny, plan_generation(tiny, request.with_changes(reference_noise=0.0)))
    cond = build_conditioning(tiny, plan)
    last_t = plan.schedule[-2]
    drift = (whole[:, :, 0] - cond.latent[:, :, 0]).abs().max().item()
    assert 0 < drift < 0.15 * last_t**2 * 6 and torch.equal(quiet[:, :, 0], cond.latent[:, :, 0])


def test_capabilities_default_to_no_layout() -> None:
    assert Capabilities().frame_layout is False
