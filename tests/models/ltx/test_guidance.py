"""LTX-Video's CFG + STG guidance rule against the formulas stated directly (a toy denoiser)."""

from __future__ import annotations

import pytest
import torch

from studio.engine.model import GuidanceInputs
from studio.models.ltx.guidance import ltx_guidance


class ToyDenoiser:
    """v = x·mean(context) (+ x² in perturbed rows); records each call's rows and skip."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, object]] = []

    def __call__(self, x: torch.Tensor, t_tok: torch.Tensor, context: torch.Tensor,
                 skip: object = None) -> torch.Tensor:
        self.calls.append((x.shape[0], skip))
        v = x * context.mean(dim=(1, 2)).view(-1, 1, 1, 1, 1) + t_tok[:, None]
        if skip is not None:
            v = v + skip.batch.view(-1, 1, 1, 1, 1) * x**2
        return v


def _inputs(denoise: ToyDenoiser, guidance: float, stg: float, rescale: float) -> GuidanceInputs:
    gen = torch.Generator().manual_seed(0)
    cond, uncond = torch.randn(1, 6, 5, generator=gen), torch.randn(1, 6, 5, generator=gen)
    return GuidanceInputs(denoise, cond, uncond, None, None, guidance, None, (), (1.0, 0.0),
                          stg=stg, stg_rescale=rescale)


def _expected(x: torch.Tensor, t: torch.Tensor, inputs: GuidanceInputs) -> torch.Tensor:
    """The original's formulas with the request's own values and no CFG-star (std unbiased over
    every value of the row)."""
    return _original_step(x, t, inputs, inputs.guidance, inputs.stg, inputs.stg_rescale, False)


@pytest.mark.parametrize(("guidance", "stg", "rescale", "rows"), [
    (3.0, 1.0, 0.7, 3), (1.0, 1.0, 0.7, 2), (3.0, 0.0, 0.7, 2), (3.0, 2.0, 1.0, 3),
    (1.0, 0.0, 1.0, 1), (4.5, 1.0, 0.0, 3)])
def test_rule_matches_the_formulas(guidance: float, stg: float, rescale: float,
                                   rows: int) -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 4, 3, 2, 2, generator=gen)
    t = torch.rand(1, 3, 2, 2, generator=gen)
    toy = ToyDenoiser()
    inputs = _inputs(toy, guidance, stg, rescale)
    v = ltx_guidance((19,), "attention_values")(inputs)(x, t)
    torch.testing.assert_close(v, _expected(x, t, inputs), rtol=1e-5, atol=1e-6)
    assert toy.calls[0][0] == rows
    skip = toy.calls[0][1]
    if stg > 0:
        assert skip.blocks == (19,) and skip.mode == "attention_values"
        assert skip.batch.tolist() == [False] * (rows - 1) + [True]
    else:
        assert skip is None


def test_rescale_brings_the_std_toward_the_conditional_one() -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(1, 4, 3, 2, 2, generator=gen) * 3
    t = torch.rand(1, 3, 2, 2, generator=gen)
    full = ltx_guidance((0,))(_inputs(ToyDenoiser(), 3.0, 1.0, 0.999999))(x, t)
    v_c = x * _inputs(ToyDenoiser(), 1, 0, 1).context.mean() + t[:, None]
    assert full.std().item() == pytest.approx(v_c.std().item(), rel=1e-4)


def _original_step(x, t, inputs, g, s, r, cfg_star):
    """One step of the original with per-range values (``pipeline_ltx_video.py``): CFG-star,
    CFG when g > 1, STG when s > 0, rescale when s > 0 and r ≠ 1."""
    v_c = x * inputs.context.mean() + t[:, None]
    v_u = x * inputs.uncond.mean() + t[:, None]
    v_p = v_c + x**2
    if g > 1 and cfg_star:
        v_u = v_u * (v_c * v_u).sum() / ((v_u * v_u).sum() + 1e-8)
    v = v_u + g * (v_c - v_u) if g > 1 else v_c
    if s > 0:
        v = v + s * (v_c - v_p)
        if r != 1:
            v = v * (r * v_c.flatten().std() / v.flatten().std() + 1 - r)
    return v


def test_the_13b_dev_ranges_follow_the_original_step_by_step() -> None:
    from studio.models.ltx.presets import DEV_13B_RANGES

    gen = torch.Generator().manual_seed(3)
    x = torch.randn(1, 4, 3, 2, 2, generator=gen)
    # the published starts: 1.0, 0.996, 0.9933, 0.9850, 0.9767, 0.9008, 0.6180
    cases = [(1.0, 1, 0, 1, ()), (0.998, 1, 0, 1, (11, 25, 35, 39)),
             (0.995, 6, 4, 0.5, (22, 35, 39)), (0.99, 8, 4, 0.5, (28,)),
             (0.98, 6, 4, 1, (28,)), (0.95, 1, 2, 1, (28,)), (0.5, 1, 1, 1, (28,))]
    for t_value, g, s, r, blocks in cases:
        t = torch.full((1, 3, 2, 2), t_value)
        toy = ToyDenoiser()
        inputs = _inputs(toy, 8.0, 4.0, 0.0)  # the peaks: the published values run as they are
        v = ltx_guidance((28,), ranges=DEV_13B_RANGES)(inputs)(x, t)
        torch.testing.assert_close(v, _original_step(x, t, inputs, g, s, r, True),
                                   rtol=1e-5, atol=1e-6)
        rows, skip = toy.calls[0]
        assert rows == 1 + (g > 1) + (s > 0)
        assert (skip.blocks if skip is not None else ()) == (blocks if s > 0 else ())


def test_the_request_scales_the_ranges_to_its_peaks() -> None:
    from studio.models.ltx.presets import DEV_13B_RANGES

    peak = DEV_13B_RANGES.at(0.99, 8.0, 4.0)
    assert (peak.guidance, peak.stg) == (8.0, 4.0)
    half = DEV_13B_RANGES.at(0.99, 4.5, 2.0)
    assert (half.guidance, half.stg) == (4.5, 2.0)  # the peak range becomes the request's
    assert DEV_13B_RANGES.at(0.995, 4.5, 2.0).guidance == pytest.approx(1 + 5 * 3.5 / 7)
    assert DEV_13B_RANGES.at(0.9999, 4.5, 2.0).guidance == 1.0  # ranges at 1 stay at 1
    assert DEV_13B_RANGES.at(0.1, 8.0, 4.0).start == 0.618  # below the last start: the last


def test_a_13b_dev_model_runs_its_ranges_end_to_end() -> None:
    """A tiny model assembled as a 13B dev checkpoint: its defaults are the ranges' peaks (no
    rescale field: the ranges carry it), and a run follows the request's guidance peak. (The
    tiny transformer has 2 blocks, so the published STG blocks are dropped and STG is inert.)"""
    from dataclasses import replace

    from studio.engine.pipeline import generate
    from studio.engine.request import GenerationRequest
    from studio.models.ltx.random_model import random_model

    model = random_model("cpu", torch.float32, variant="13b-0.9.8-dev")
    d = model.defaults
    assert (d.steps, d.guidance, d.stg, d.stg_rescale) == (30, 8.0, 4.0, None)
    request = GenerationRequest("a boat", steps=5, timesteps=(1.0, 0.995, 0.99, 0.98, 0.95),
                                guidance=8.0, width=64, height=64, frames=9, fps=24.0,
                                model=model.id).validate()  # times in the guided ranges
    base = generate(model, request, decode=False).latent
    assert torch.isfinite(base).all()
    weaker = generate(model, request.with_changes(guidance=4.0), decode=False).latent
    assert not torch.allclose(base, weaker)
    again = generate(replace(model), request, decode=False).latent
    assert torch.equal(base, again)
