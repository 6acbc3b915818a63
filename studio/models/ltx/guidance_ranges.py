"""Guidance that changes along the run: LTX-Video 13B dev's ``guidance_timesteps`` with one
guidance, STG scale, rescale and set of perturbed blocks per range, and its CFG-star rescale
(``configs/ltxv-13b-0.9.8-dev.yaml``, first pass; docs/families/ltx.md §6).

The original picks, at each step's time t, the first range whose start is ≤ t (the last range
when none is). The request's guidance and STG scale the ranges so that their peaks become the
request's values and ranges at 1 (guidance) or 0 (STG) stay there: with the published peaks
(guidance 8, STG 4) the published values run unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class GuidanceRange:
    """The settings from ``start`` (t ∈ [0, 1], 1 = noise) down to the next range's start."""

    start: float
    guidance: float
    stg: float
    rescale: float
    skip_blocks: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class GuidanceSchedule:
    """Ranges in the original's order (starts decreasing) and whether CFG-star rescaling runs:
    the unconditional velocity first multiplied by ⟨v_c, v_u⟩ / (‖v_u‖² + 1e-8), per row."""

    ranges: tuple[GuidanceRange, ...]
    cfg_star: bool = False

    @property
    def peak_guidance(self) -> float:
        return max(r.guidance for r in self.ranges)

    @property
    def peak_stg(self) -> float:
        return max(r.stg for r in self.ranges)

    def range_at(self, t: float) -> GuidanceRange:
        """The range in force at time ``t``, as published."""
        return next((r for r in self.ranges if r.start <= t), self.ranges[-1])

    def at(self, t: float, guidance: float, stg: float) -> GuidanceRange:
        """The range at ``t`` scaled to the request's ``guidance`` and ``stg`` peaks."""
        r = self.range_at(t)
        peak_g, peak_s = self.peak_guidance, self.peak_stg
        g = 1.0 + (r.guidance - 1.0) * (guidance - 1.0) / (peak_g - 1.0) if peak_g > 1.0 \
            else r.guidance
        s = r.stg * stg / peak_s if peak_s > 0.0 else r.stg
        return replace(r, guidance=g, stg=s)


def schedule_from_lists(starts: list[float], guidance: list[float], stg: list[float],
                        rescale: list[float], blocks: list[list[int]],
                        cfg_star: bool = False) -> GuidanceSchedule:
    """A schedule from a config's parallel lists (``guidance_timesteps``, ``guidance_scale``,
    ``stg_scale``, ``rescaling_scale``, ``skip_block_list``)."""
    ranges = tuple(GuidanceRange(float(a), float(g), float(s), float(r), tuple(b))
                   for a, g, s, r, b in zip(starts, guidance, stg, rescale, blocks, strict=True))
    return GuidanceSchedule(ranges, cfg_star)
