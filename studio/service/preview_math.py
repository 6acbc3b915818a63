"""The schedule a request will use, as plain lists, for the app's schedule plot.

The numbers come from the engine (:func:`studio.engine.pipeline.request_schedule` and
:func:`~studio.engine.pipeline.resolve_shift`), so the plot is exactly what the sampler runs.
Everything here is pure Python and cheap enough for the GUI thread.
"""

from __future__ import annotations

from dataclasses import dataclass

from studio.engine.conditioning import T_EPS, latent_frame_index
from studio.engine.pipeline import request_schedule, resolve_shift
from studio.engine.request import GenerationRequest
from studio.engine.shapes import LatentGeometry


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
class SchedulePreview:
    """The sampling schedule for a request.

    Attributes:
        ts: the N + 1 times, decreasing from 1 to 0 (t ∈ [0, 1], 1 = noise).
        shift: the time-shift α used (the computed value when the request says "auto").
        auto: whether α was computed from the size and frames.
        starts: one entry per reference frame.
    """

    ts: tuple[float, ...]
    shift: float
    auto: bool
    starts: tuple[ConditioningStart, ...]

    @property
    def steps(self) -> int:
        return len(self.ts) - 1


def first_changing_step(ts: tuple[float, ...] | list[float], strength: float) -> int | None:
    """The first step i whose update reaches a token of mask m (t_i − t_eps < 1 − m), or None."""
    for i, t in enumerate(ts[:-1]):
        if t - T_EPS < 1.0 - strength:
            return i
    return None


def schedule_preview(request: GenerationRequest, geometry: LatentGeometry) -> SchedulePreview:
    """The schedule, shift and reference-frame start times for ``request`` on a model.

    The request must have a valid size for ``geometry`` (see
    :func:`studio.service.model_info.size_problems`); otherwise :class:`InvalidRequest` is raised.
    """
    geometry.check_video_size(request.frames, request.height, request.width)
    ts = tuple(request_schedule(request, geometry))
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
    return SchedulePreview(ts, resolve_shift(request, geometry), request.shift == "auto",
                           tuple(starts))
