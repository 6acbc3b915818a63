"""DPM-Solver++(2M) for rectified flow: diffusers' DPMSolverMultistepScheduler (flow sigmas,
flow prediction) as the oracle on a fixed velocity field, and how it treats reference frames."""

from __future__ import annotations

import pytest
import torch

from studio.engine.conditioning import empty_conditioning, place_latent_frame
from studio.engine.multistep import dpm_update, sample_dpmpp_2m
from studio.engine.pipeline import check_request
from studio.engine.request import ConditioningItem, GenerationRequest
from studio.engine.sampler import sample_euler
from studio.errors import InvalidRequest


def field(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A fixed, nonlinear velocity field of x and the per-position time."""
    t = t[:, None] if t.dim() == x.dim() - 1 else t
    return torch.sin(3.0 * x) * (0.5 + t) + 0.3 * x - 0.2


def _scheduler(steps: int, shift: float):
    diffusers = pytest.importorskip("diffusers")
    scheduler = diffusers.DPMSolverMultistepScheduler(
        use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=shift,
        solver_order=2, algorithm_type="dpmsolver++", final_sigmas_type="zero")
    scheduler.set_timesteps(steps)
    return scheduler, [float(s) for s in scheduler.sigmas]


@pytest.mark.parametrize(("steps", "shift"), [(8, 3.0), (20, 1.0), (30, 5.0)])
def test_every_update_matches_diffusers_dpm_solver_pp_2m(steps: int, shift: float) -> None:
    """Step by step from the same state and velocity: the updates agree to 1e-6."""
    scheduler, sigmas = _scheduler(steps, shift)
    x = torch.randn(1, 4, 3, 5, 6, generator=torch.Generator().manual_seed(steps))
    x0_prev = None
    for i, timestep in enumerate(scheduler.timesteps):
        v = field(x, torch.full((1, 3, 5, 6), sigmas[i]))
        x0 = x - sigmas[i] * v
        ours = dpm_update(x, x0, x0_prev, sigmas[i - 1] if i else 1.0, sigmas[i], sigmas[i + 1])
        theirs = scheduler.step(v, timestep, x).prev_sample
        torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)
        x, x0_prev = theirs, x0


@pytest.mark.parametrize(("steps", "shift"), [(8, 3.0), (30, 5.0)])
def test_the_whole_run_matches_diffusers(steps: int, shift: float) -> None:
    """A whole run: float32 rounding of 30 steps stays within 1e-5."""
    scheduler, sigmas = _scheduler(steps, shift)
    x0 = torch.randn(1, 4, 3, 5, 6, generator=torch.Generator().manual_seed(steps))
    theirs = x0.clone()
    for i, timestep in enumerate(scheduler.timesteps):
        v = field(theirs, torch.full((1, 3, 5, 6), sigmas[i]))
        theirs = scheduler.step(v, timestep, theirs).prev_sample
    ours = sample_dpmpp_2m(field, x0.clone(), sigmas)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_a_step_from_noise_is_the_flow_interpolation() -> None:
    x = torch.randn(1, 2, 1, 2, 2, generator=torch.Generator().manual_seed(1))
    ts = [1.0, 0.6]
    torch.testing.assert_close(sample_dpmpp_2m(field, x.clone(), ts),
                               sample_euler(field, x.clone(), ts))  # fmt: skip


def test_pinned_frames_stay_and_soft_ones_are_refused() -> None:
    x = torch.randn(1, 4, 3, 2, 2, generator=torch.Generator().manual_seed(2))
    frame = torch.randn(1, 4, 2, 2, generator=torch.Generator().manual_seed(3))
    cond = place_latent_frame(empty_conditioning(tuple(x.shape)), frame, 0, 1.0)
    x[:, :, 0] = frame
    out = sample_dpmpp_2m(field, x, [1.0, 0.7, 0.4, 0.0], cond=cond)
    assert torch.equal(out[:, :, 0], frame) and not torch.equal(out[:, :, 1], x[:, :, 1])

    class Model:  # just what check_request reads
        name = "a model"
        geometry = None
        image_channels = None

    from studio.engine.model import Capabilities
    from studio.engine.shapes import LatentGeometry

    model = Model()
    model.geometry = LatentGeometry(4, 4, 8)
    model.capabilities = Capabilities()
    soft = GenerationRequest(prompt="x", width=64, height=64, frames=9, sampler="dpm++2m",
                             conditioning=(ConditioningItem("a.png", 0, 0.5),))  # fmt: skip
    with pytest.raises(InvalidRequest, match="strength") as refused:
        check_request(model, soft)
    assert refused.value.field == "sampler"
    check_request(model, soft.with_changes(conditioning=(ConditioningItem("a.png", 0, 1.0),)))
