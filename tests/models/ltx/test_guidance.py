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
    """The original's formulas: CFG when g > 1, STG when s > 0, rescale when s > 0 and r ≠ 1,
    std unbiased over every value of the row."""
    v_c = x * inputs.context.mean() + t[:, None]
    v_u = x * inputs.uncond.mean() + t[:, None]
    v_p = v_c + x**2
    g, s, r = inputs.guidance, inputs.stg, inputs.stg_rescale
    v = v_u + g * (v_c - v_u) if g > 1 else v_c
    if s > 0:
        v = v + s * (v_c - v_p)
        if r != 1:
            v = v * (r * v_c.flatten().std() / v.flatten().std() + 1 - r)
    return v


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
