"""Two-expert denoisers (Wan 2.2 A14B): which expert a call runs, and the guidance it gets.

A step's time is the largest per-token t of the call (tokens pinned by reference frames sit at
t = 0; the rest share the step's t). The high-noise expert runs while t ≥ boundary, as the
original pipelines compare the scheduler's timestep with ``boundary · 1000``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from studio.engine.model import DIT, Denoiser, ExpertSwitch


def step_time(t_tok: torch.Tensor) -> float:
    """The call's step time t ∈ [0, 1] from per-token times ``[B, T', H', W']``."""
    return float(t_tok.amax())


class ExpertDenoiser:
    """One denoiser over two experts: ``high`` while t ≥ ``switch.boundary``, else ``low``."""

    def __init__(self, high: Denoiser, low: Denoiser, switch: ExpertSwitch) -> None:
        self.high, self.low, self.switch = high, low, switch

    def __call__(self, x: torch.Tensor, t_tok: torch.Tensor, context: torch.Tensor,
                 **image: torch.Tensor) -> torch.Tensor:
        expert = self.high if self.switch.part_for(step_time(t_tok)) == DIT else self.low
        return expert(x, t_tok, context, **image)


def guidance_for(guidance: float, guidance_low: float | None,
                 switch: ExpertSwitch | None) -> float | Callable[[float], float]:
    """The guidance scale, or for a two-expert model the scale as a function of t (each
    expert has its own)."""
    if switch is None or guidance_low is None or guidance_low == guidance:
        return guidance
    return lambda t: guidance if switch.part_for(t) == DIT else guidance_low
