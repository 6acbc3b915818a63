"""The schedule a request will use, as plain lists, for the app's schedule plot.

The numbers come from the engine (:func:`studio.engine.plan.sampling_schedule`: explicit
timesteps, the model's own schedule rule or its shift rule), so the plot is exactly what the
sampler runs. Everything here is pure Python and cheap enough for the GUI thread (no file is
read: a clip keyframe a frame-layout model appends counts as its two-frame prefix).
"""

from __future__ import annotations

from dataclasses import dataclass

from studio.engine.clips import PREFIX_LATENT_FRAMES
from studio.engine.conditioning import T_EPS, latent_frame_index
from studio.engine.model import ResolutionShift, ScheduleRule, ShiftRule
from studio.engine.plan import sampling_schedule
from studio.engine.request import GenerationRequest
from studio.engine.shapes import LatentGeometry
from studio.service.model_info import ModelInfo


@dataclass(frozen=True, slots=True)
class ConditioningStart:
    """When a reference frame's tokens start to be denoised.

    Attributes:
        frame_index: the pixel frame the reference stands for (−1 = last).
        latent_frame: the latent frame that holds it.
        strength: its mask value m.
        t_start: 1 − m; the tokens change only while t − t_eps < t_start (t ∈ [0, 1]).
        step: index of the first step that changes them, or None if none does (m = 1: kept).
    """

    frame_index: int
    latent_frame: int
    strength: float
    t_start: float
    step: int | None


@dataclass(frozen=True, slots=True)
class ExpertMark:
    """Where a two-expert model hands over: t = ``boundary``; the low-noise expert runs from
    ``step`` (None: every step runs the high-noise expert)."""

    boundary: float
    step: int | None


@dataclass(frozen=True, slots=True)
class ScheduleChart:
    """The sampling schedule for a request.

    Attributes:
        ts: the N + 1 times, decreasing from 1 to 0 (t ∈ [0, 1], 1 = noise).
        shift: the time-shift α used (the computed value when the request says "auto").
        auto: whether α was computed from the size and frames.
        starts: one entry per reference frame.
        experts: a two-expert model's hand-over (None: one DiT).
    """

    ts: tuple[float, ...]
    shift: float
    auto: bool
    starts: tuple[ConditioningStart, ...]
    experts: ExpertMark | None = None

    @property
    def steps(self) -> int:
        return len(self.ts) - 1


def first_changing_step(ts: tuple[float, ...] | list[float], strength: float) -> int | None:
    """The first step i whose update reaches a token of mask m (t_i − t_eps < 1 − m), or None."""
    for i, t in enumerate(ts[:-1]):
        if t - T_EPS < 1.0 - strength:
            return i
    return None


def schedule_chart(request: GenerationRequest, geometry: LatentGeometry,
                   rule: ShiftRule | None = None, boundary: float | None = None, *,
                   schedule_rule: ScheduleRule | None = None, frame_layout: bool = False
                   ) -> ScheduleChart:
    """The schedule, shift and reference-frame start times for ``request`` on a model whose
    "auto" shift follows ``rule`` (default: the resolution rule) or, when it has one, its own
    ``schedule_rule`` (which counts the latent frames a ``frame_layout`` model appends for its
    keyframes); with ``boundary``, where a two-expert model hands over to its low-noise expert.

    The request must have a valid size for ``geometry`` (see
    :func:`studio.service.model_info.size_problems`); otherwise :class:`InvalidRequest` is raised.
    """
    geometry.check_video_size(request.frames, request.height, request.width)
    shape = geometry.latent_shape(request.frames, request.height, request.width)
    extra = _appended_frames(request) if frame_layout else 0
    shift, times = sampling_schedule(request, geometry, rule or ResolutionShift(), schedule_rule,
                                     (*shape[:2], shape[2] + extra, *shape[3:]))
    ts = tuple(times)
    starts = []
    for item in request.conditioning:
        try:
            latent = latent_frame_index(item.frame_index, request.frames, geometry.temporal_factor)
        except IndexError:
            continue
        starts.append(ConditioningStart(
            item.frame_index, latent, float(item.strength), 1.0 - float(item.strength),
            first_changing_step(ts, float(item.strength)),
        ))
    experts = None if boundary is None else ExpertMark(
        boundary, next((i for i, t in enumerate(ts[:-1]) if t < boundary), None))
    return ScheduleChart(ts, shift, request.shift == "auto", tuple(starts), experts)


def _appended_frames(request: GenerationRequest) -> int:
    """Latent frames a frame-layout model samples after the grid: one per later image, the
    prefix of each later clip."""
    later = (item for item in request.conditioning if item.frame_index % request.frames != 0)
    return sum(PREFIX_LATENT_FRAMES if item.clip else 1 for item in later)


def chart_for(info: ModelInfo, request: GenerationRequest) -> ScheduleChart:
    """:func:`schedule_chart` with every rule of the loaded model ``info`` describes."""
    return schedule_chart(request, info.geometry, info.shift_rule, info.expert_boundary,
                          schedule_rule=info.schedule_rule, frame_layout=info.frame_layout)
