"""UniPC for rectified flow: diffusers' UniPCMultistepScheduler, configured as Wan's diffusers
checkpoints configure it, as the oracle on fixed velocity fields; references; convergence; CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from studio.cli import run_cli
from studio.engine.conditioning import empty_conditioning, place_latent_frame
from studio.engine.model import Capabilities
from studio.engine.multistep import sample_dpmpp_2m
from studio.engine.pipeline import check_request
from studio.engine.request import ConditioningItem, GenerationRequest
from studio.engine.sampler import StepInfo, sample_euler
from studio.engine.schedule import linear_schedule, make_schedule
from studio.engine.shapes import LatentGeometry
from studio.engine.unipc import sample_unipc, solver_time, unipc_step
from studio.errors import InvalidRequest
from tests.engine.test_sampler import gaussian_field, gaussian_problem

SHAPE = (1, 4, 3, 5, 6)
CASES = [(steps, shift) for steps in (4, 10, 30) for shift in (1.0, 3.0, 5.0)]


def field(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A fixed, nonlinear velocity field of x and the per-position time."""
    t = t[:, None] if t.dim() == x.dim() - 1 else t
    return torch.sin(3.0 * x) * (0.5 + t) + 0.3 * x - 0.2


def _wan_scheduler(shift: float):
    """diffusers' UniPC as Wan's diffusers checkpoints set it up (scheduler_config.json)."""
    diffusers = pytest.importorskip("diffusers")
    return diffusers.UniPCMultistepScheduler(
        use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=shift,
        solver_order=2, solver_type="bh2", predict_x0=True, lower_order_final=True,
        disable_corrector=[], final_sigmas_type="zero", thresholding=False)


def _times(t: float, like: torch.Tensor) -> torch.Tensor:
    return torch.full((1, *SHAPE[2:]), t, dtype=like.dtype)


def _diffusers_run(scheduler, x: torch.Tensor, ts: list[float]) -> torch.Tensor:
    """Step diffusers' scheduler with :func:`field` evaluated at the times ``ts``."""
    for i, timestep in enumerate(scheduler.timesteps):
        x = scheduler.step(field(x, _times(ts[i], x)), timestep, x).prev_sample
    return x


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("steps", "shift"), CASES)
def test_every_step_matches_diffusers(steps: int, shift: float, dtype: torch.dtype) -> None:
    """From diffusers' state and the same velocity, every predicted and every corrected state
    agrees: to 1e-6 in float32 (diffusers' coefficients are float32), 1e-12 in float64."""
    scheduler = _wan_scheduler(shift)
    scheduler.set_timesteps(steps)
    if dtype == torch.float64:
        scheduler.sigmas = scheduler.sigmas.double()
    sigmas = [float(s) for s in scheduler.sigmas]
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(steps), dtype=dtype)
    memory = None
    for i, timestep in enumerate(scheduler.timesteps):
        v = field(x, _times(sigmas[i], x))
        ours, memory = unipc_step(x, v, x - sigmas[i] * v, sigmas[i], sigmas[i + 1], memory,
                                  i == steps - 1)  # fmt: skip
        theirs = scheduler.step(v, timestep, x).prev_sample
        torch.testing.assert_close(memory.x, scheduler.last_sample, rtol=tol, atol=tol)
        torch.testing.assert_close(ours, theirs, rtol=tol, atol=tol)
        x = theirs


@pytest.mark.parametrize(("steps", "shift"), [(4, 1.0), (10, 3.0), (30, 5.0)])
def test_a_whole_run_matches_diffusers_on_its_sigmas_and_on_ours(steps: int, shift: float) -> None:
    """A whole run of the sampler on diffusers' own sigmas, and on the studio's schedule (which
    diffusers reproduces from our unshifted points, its first point nudged below 1)."""
    x1 = torch.randn(SHAPE, generator=torch.Generator().manual_seed(100 + steps))
    scheduler = _wan_scheduler(shift)
    scheduler.set_timesteps(steps)
    sigmas = [float(s) for s in scheduler.sigmas]
    torch.testing.assert_close(sample_unipc(field, x1.clone(), sigmas),
                               _diffusers_run(scheduler, x1.clone(), sigmas), rtol=1e-5, atol=1e-5)

    ts = make_schedule(steps, shift)
    scheduler.set_timesteps(sigmas=np.array(linear_schedule(steps)[:-1]))
    theirs = [float(s) for s in scheduler.sigmas]
    assert theirs[0] == solver_time(ts[0]) == pytest.approx(1 - 1e-6, abs=2e-8)
    assert theirs[1:] == pytest.approx(ts[1:], abs=3e-8)  # float32 rounding
    torch.testing.assert_close(sample_unipc(field, x1.clone(), ts),
                               _diffusers_run(scheduler, x1.clone(), ts), rtol=1e-5, atol=1e-5)


def test_first_step_from_noise_is_euler_and_the_run_ends_on_the_last_estimate() -> None:
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1))
    v = field(x, _times(1.0, x))  # the nudge to 1 − 1e-6 moves it by about 1e-6·|v|
    torch.testing.assert_close(sample_unipc(field, x.clone(), [1.0, 0.6]),
                               sample_euler(field, x.clone(), [1.0, 0.6]), rtol=0,
                               atol=1e-6 * v.abs().max().item() + 1e-6)
    seen: list[StepInfo] = []
    out = sample_unipc(field, x.clone(), make_schedule(6, 3.0), on_step=seen.append)
    assert [info.i for info in seen] == list(range(6)) and torch.equal(out, seen[-1].x0_hat)


def test_pinned_frames_stay_and_soft_ones_are_refused() -> None:
    x = torch.randn(1, 4, 3, 2, 2, generator=torch.Generator().manual_seed(2))
    frame = torch.randn(1, 4, 2, 2, generator=torch.Generator().manual_seed(3))
    cond = place_latent_frame(empty_conditioning(tuple(x.shape)), frame, 0, 1.0)
    x[:, :, 0] = frame
    out = sample_unipc(field, x.clone(), make_schedule(5, 3.0), cond=cond)
    assert torch.equal(out[:, :, 0], frame) and not torch.equal(out[:, :, 1], x[:, :, 1])

    class Model:  # just what check_request reads
        name = "a model"
        geometry = LatentGeometry(4, 4, 8)
        capabilities = Capabilities()
        image_channels = None
        experts = None

    soft = GenerationRequest(prompt="x", width=64, height=64, frames=9, sampler="unipc",
                             conditioning=(ConditioningItem("a.png", 0, 0.5),))  # fmt: skip
    with pytest.raises(InvalidRequest, match="unipc sampler cannot run reference frames of a "
                       "strength between 0 and 1") as refused:  # fmt: skip
        check_request(Model(), soft)
    assert refused.value.field == "sampler"
    check_request(Model(), soft.with_changes(conditioning=(ConditioningItem("a.png", 0, 1.0),)))


def test_on_a_linear_flow_the_error_falls_faster_than_euler() -> None:
    """Gaussian data: the velocity is affine in x and the exact flow maps x1 to μ + s·x1."""
    mu, s, x1 = gaussian_problem()
    velocity, exact = gaussian_field(mu, s), mu + s * x1

    def error(sampler, steps: int) -> float:
        return (sampler(velocity, x1.clone(), make_schedule(steps)) - exact).abs().max().item()

    euler = [error(sample_euler, n) for n in (20, 40, 80)]
    unipc = [error(sample_unipc, n) for n in (20, 40, 80)]
    assert all(u < e / 10 for u, e in zip(unipc, euler, strict=True))
    assert euler[1] / euler[2] < 2.1 and unipc[1] / unipc[2] > 3.0  # order 1 against ≈ 2
    assert unipc[2] < error(sample_dpmpp_2m, 80)


def test_studio_generate_with_unipc_writes_its_recipe(tmp_path: Path) -> None:
    out = tmp_path / "unipc.mp4"
    assert run_cli(["generate", "--prompt", "a red ball", "--sampler", "unipc", "--steps", "3",
                    "--frames", "5", "--width", "64", "--height", "64",
                    "--out", str(out)]) == 0  # fmt: skip
    recipe = json.loads(out.with_suffix(".json").read_text())
    assert recipe["request"]["sampler"] == "unipc" and recipe["sampler"] == "unipc"
    assert len(recipe["schedule"]) == 4
