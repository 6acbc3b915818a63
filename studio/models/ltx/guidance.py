"""LTX-Video's guidance: classifier-free guidance plus spatio-temporal guidance (STG), rescaled.

As in Lightricks/LTX-Video ``pipeline_ltx_video.py`` (``__call__``, docs/families/ltx.md §6): one
batch of [uncond (when guidance > 1), cond, cond-perturbed (when stg > 0)], the perturbed row
running with the checkpoint's skipped blocks (:class:`SkipBlocks`);

* CFG: v = v_u + g·(v_c − v_u) (without CFG, v = v_c);
* STG: v ← v + s·(v_c − v_p);
* rescaling, only with STG on and r ≠ 1: v ← v·(r·σ(v_c)/σ(v) + 1 − r), σ the (unbiased)
  standard deviation over all of a row's values — every token, the appended keyframe tokens
  included, as the original's ``view(batch_size, -1).std(dim=1)``.

So r = 0 leaves v as it is, and r = 1 also does (the original skips rescaling at exactly 1).
Checkpoints whose settings change along the run (13B dev) pass a
:class:`~studio.models.ltx.guidance_ranges.GuidanceSchedule`: each step uses its range's
settings, the perturbed blocks included, and CFG-star rescaling where the config asks for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from studio.engine.model import GuidanceInputs, GuidanceRule
from studio.models.ltx.guidance_ranges import GuidanceRange, GuidanceSchedule
from studio.models.ltx.transformer_blocks import SkipBlocks


def stack_contexts(contexts: Sequence[torch.Tensor]) -> torch.Tensor:
    """``[1, L_i, D]`` contexts → ``[n, max L_i, D]``, zero rows appended (read as padding by
    the mask channel)."""
    longest = max(c.shape[1] for c in contexts)
    return torch.cat([F.pad(c, (0, 0, 0, longest - c.shape[1])) for c in contexts])


def combine(v_u: torch.Tensor | None, v_c: torch.Tensor, v_p: torch.Tensor | None,
            guidance: float, stg: float, rescale: float, cfg_star: bool = False) -> torch.Tensor:
    """The guided velocity from the passes that ran (``v_u`` / ``v_p`` None when skipped)."""
    if v_u is not None and cfg_star:
        rows = v_u.shape[0]
        c, u = v_c.reshape(rows, -1), v_u.reshape(rows, -1)
        alpha = (c * u).sum(dim=1) / ((u * u).sum(dim=1) + 1e-8)
        v_u = v_u * alpha.view(rows, *([1] * (v_u.ndim - 1)))
    v = v_c if v_u is None else v_u + guidance * (v_c - v_u)
    if v_p is None:
        return v
    v = v + stg * (v_c - v_p)
    if rescale != 1.0:
        rows = v.shape[0]
        factor = v_c.reshape(rows, -1).std(dim=1) / v.reshape(rows, -1).std(dim=1)
        factor = rescale * factor + (1 - rescale)
        v = v * factor.view(rows, *([1] * (v.ndim - 1)))
    return v


def ltx_guidance(skip_blocks: tuple[int, ...], mode: str = "attention_values",
                 ranges: GuidanceSchedule | None = None) -> GuidanceRule:
    """The guidance rule of a checkpoint that perturbs ``skip_blocks`` in ``mode`` for STG;
    with ``ranges``, the settings of the range each step's time falls in (scaled to the
    request's guidance and STG) instead of the request's scalars."""

    def rule(inputs: GuidanceInputs) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        fixed = GuidanceRange(1.0, inputs.guidance, inputs.stg, inputs.stg_rescale, skip_blocks)

        def velocity(x: torch.Tensor, t_tok: torch.Tensor) -> torch.Tensor:
            step = fixed if ranges is None else \
                ranges.at(float(t_tok.amax()), inputs.guidance, inputs.stg)
            return _guided(inputs, step, mode, ranges is not None and ranges.cfg_star, x, t_tok)

        return velocity

    return rule


def _guided(inputs: GuidanceInputs, step: GuidanceRange, mode: str, cfg_star: bool,
            x: torch.Tensor, t_tok: torch.Tensor) -> torch.Tensor:
    """One guided velocity: the rows this step's settings need, in one batched call."""
    cfg = step.guidance > 1.0 and inputs.uncond is not None
    stg = step.stg > 0.0
    contexts = ([inputs.uncond] if cfg else []) + [inputs.context] * (2 if stg else 1)
    rows = len(contexts)
    skip = _skip(step.skip_blocks, mode, rows, x.device) if stg else None
    v = inputs.denoise(x.expand(rows, *x.shape[1:]), t_tok.expand(rows, *t_tok.shape[1:]),
                       stack_contexts(contexts), skip=skip).chunk(rows)  # type: ignore[arg-type]
    return combine(v[0] if cfg else None, v[1 if cfg else 0], v[-1] if stg else None,
                   step.guidance, step.stg, step.rescale, cfg_star)


def _skip(blocks: tuple[int, ...], mode: str, rows: int, device: torch.device) -> SkipBlocks:
    """Perturb ``blocks`` in the last of ``rows`` batch rows (the STG pass)."""
    perturbed = torch.zeros(rows, dtype=torch.bool, device=device)
    perturbed[-1] = True
    return SkipBlocks(tuple(blocks), perturbed, mode)
