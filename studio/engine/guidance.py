"""Classifier-free guidance over a denoiser: v = v_u + g·(v_c − v_u), one batched forward."""

from __future__ import annotations

from collections.abc import Callable

import torch

from studio.engine.sampler import Velocity

Denoise = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""v = denoise(x [B, C, T', H', W'], t_tok [B, T', H', W'], context [B, L, D])."""


Scale = float | Callable[[float], float]
"""A guidance scale, or one per step time t (two-expert models give each expert its own)."""


def guided_velocity(
    denoise: Denoise, context: torch.Tensor, uncond_context: torch.Tensor | None, scale: Scale
) -> Velocity:
    """Close over the prompt contexts and return the guided velocity function.

    Where the scale is 1, or there is no unconditional context, only the conditional pass runs;
    otherwise the conditional and unconditional passes are batched into one forward of batch 2B.
    """
    if uncond_context is None or scale == 1.0:
        return lambda x, t_tok: denoise(x, t_tok, context)
    both = _stack_contexts(context, uncond_context)

    def velocity(x: torch.Tensor, t_tok: torch.Tensor) -> torch.Tensor:
        g = scale(float(t_tok.amax())) if callable(scale) else scale
        if g == 1.0:
            return denoise(x, t_tok, context)
        v_cond, v_uncond = denoise(torch.cat([x, x]), torch.cat([t_tok, t_tok]), both).chunk(2)
        return v_uncond + g * (v_cond - v_uncond)

    return velocity


def _stack_contexts(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Concatenate two ``[B, L, D]`` contexts along B, zero-padding the shorter L."""
    length = max(a.shape[1], b.shape[1])
    pad = [torch.nn.functional.pad(c, (0, 0, 0, length - c.shape[1])) for c in (a, b)]
    return torch.cat(pad)
