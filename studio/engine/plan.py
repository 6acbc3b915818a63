"""A request resolved for a model: the :class:`GenerationPlan` every later stage reads.

Resolving happens once, so the schedule the UI draws, the recipe records and the sampler runs
are the same numbers; the shape of the sampled state (the video's latent grid, plus the frames a
model appends for its keyframes) and every guidance setting left to the model are fixed here.
"""

from __future__ import annotations

from dataclasses import dataclass

from studio.engine.clips import appended_groups, check_clip_items
from studio.engine.image_inputs import check_channel_items
from studio.engine.model import (
    FIRST_FRAME,
    KEYFRAME,
    FrameLayout,
    LoadedModel,
    ScheduleRule,
    ShiftRule,
)
from studio.engine.request import GenerationRequest
from studio.engine.rf_schedule import explicit_schedule
from studio.engine.samplers import MULTISTEP_SAMPLERS
from studio.engine.schedule import make_schedule
from studio.engine.shapes import LatentGeometry
from studio.errors import InvalidRequest


@dataclass(frozen=True, slots=True)
class GenerationPlan:
    """A validated request with everything the run derives from it.

    Attributes:
        request: the request as given.
        latent_shape: the video's latent ``[1, C, T', H', W']``.
        shift: the time-shift α of the schedule (the model's rule when the request says "auto").
        schedule: the N + 1 sampling times, t ∈ [0, 1], from 1 (noise) to 0.
        guidance_low: a two-expert model's low-noise guidance (the request's, else the model's
            default; None for models with one DiT).
        guidance_image / oscillation / prompt_suffix / stg / stg_rescale / reference_noise:
            the request's, else the model's defaults (:class:`~studio.engine.model.FamilyDefaults`;
            stg 0 and rescale 0 where the model has none).
        appended: the groups of latent frames sampled after the grid, each (pixel frame it
            starts at, latent frames): the keyframes and clip prefixes a model with
            :attr:`~studio.engine.model.Capabilities.frame_layout` appends
            (:func:`~studio.engine.clips.appended_groups`).
    """

    request: GenerationRequest
    latent_shape: tuple[int, int, int, int, int]
    shift: float
    schedule: tuple[float, ...]
    guidance_low: float | None = None
    guidance_image: float | None = None
    oscillation: tuple[str, ...] = ()
    prompt_suffix: str = ""
    stg: float = 0.0
    stg_rescale: float = 0.0
    reference_noise: float = 0.0
    appended: tuple[tuple[int, int], ...] = ()

    @property
    def state_shape(self) -> tuple[int, int, int, int, int]:
        """The sampled state ``[1, C, T' + K, H', W']``: the grid and the K appended frames."""
        b, c, t, h, w = self.latent_shape
        return (b, c, t + self.layout.appended_frames, h, w)

    @property
    def layout(self) -> FrameLayout:
        """The frames of the state for a denoiser that positions tokens in seconds."""
        return FrameLayout(self.request.fps, self.latent_shape[2], self.appended)

    def uses_negative(self) -> bool:
        """Whether any step runs the unconditional pass (some guidance ≠ 1)."""
        return self.request.guidance != 1.0 or self.guidance_low not in (None, 1.0) or \
            self.guidance_image not in (None, 1.0)


def resolve_shift(request: GenerationRequest, geometry: LatentGeometry, rule: ShiftRule) -> float:
    """The shift α a request uses: its fixed value, or ``rule`` applied to its token counts."""
    if request.shift == "auto":
        return float(rule(geometry.tokens_per_frame(request.height, request.width),
                          geometry.latent_frames(request.frames)))
    return float(request.shift)


def check_request(model: LoadedModel, request: GenerationRequest) -> None:
    """Validate a request for a model; raises :class:`InvalidRequest` naming the field."""
    request.validate()
    request.check_geometry(model.geometry)
    capabilities = model.capabilities
    if request.sampler not in capabilities.samplers:
        raise InvalidRequest("sampler", f"{model.name} is not run with the {request.sampler} "
                             "sampler", f"use one of {', '.join(capabilities.samplers)}")
    if request.step_cache > 0 and model.cache_calibration is None:
        raise InvalidRequest("step_cache", f"{model.name} has no step-cache calibration",
                             f"make one with: studio cache calibrate --model {model.id}, or use 0")
    if request.sampler in MULTISTEP_SAMPLERS and any(
            0.0 < item.strength < 1.0 for item in request.conditioning):
        raise InvalidRequest("sampler", f"the {request.sampler} sampler cannot run reference "
                             "frames of a strength between 0 and 1",
                             "use strength 1, or the euler or stochastic sampler")
    check_channel_items(model, request)
    check_clip_items(model, request)
    for item in request.conditioning:
        mode = FIRST_FRAME if item.frame_index == 0 else KEYFRAME
        if mode not in capabilities.conditioning:
            allowed = ", ".join(capabilities.conditioning) or "none"
            raise InvalidRequest(
                "conditioning",
                f"{model.name} does not support {mode} reference frames (supported: {allowed})",
                "remove the reference frame or pick a model that takes one",
            )


def sampling_schedule(request: GenerationRequest, geometry: LatentGeometry,
                      shift_rule: ShiftRule, schedule_rule: ScheduleRule | None,
                      state_shape: tuple[int, ...]) -> tuple[float, list[float]]:
    """(shift α, the N + 1 times): the request's explicit times, else the model's own rule
    (``schedule_rule``) for "auto", else the linear schedule time-shifted by the request's α or
    ``shift_rule``'s. Plain data in, so the GUI's schedule plot draws the same numbers."""
    if request.timesteps is not None:
        return 1.0, explicit_schedule(list(request.timesteps))
    if request.shift == "auto" and schedule_rule is not None:
        return schedule_rule(request.steps, state_shape)
    shift = resolve_shift(request, geometry, shift_rule)
    return shift, make_schedule(request.steps, shift)


def plan_generation(model: LoadedModel, request: GenerationRequest) -> GenerationPlan:
    """Validate ``request`` for ``model`` and resolve its shape, shift and schedule."""
    check_request(model, request)
    shape = model.geometry.latent_shape(request.frames, request.height, request.width)
    appended = appended_groups(model, request)
    extra = sum(count for _, count in appended)
    shift, schedule = sampling_schedule(request, model.geometry, model.capabilities.shift_rule,
                                        model.schedule_rule,
                                        (*shape[:2], shape[2] + extra, *shape[3:]))
    low = None
    if model.experts is not None:
        low = request.guidance_low if request.guidance_low is not None else (
            model.defaults.guidance_low if model.defaults.guidance_low is not None
            else request.guidance)
    d = model.defaults
    return GenerationPlan(
        request, shape, shift, tuple(schedule), low,
        guidance_image=d.guidance_image if request.guidance_image is None or
        d.guidance_image is None else request.guidance_image,
        oscillation=d.oscillation if request.oscillation is None else request.oscillation,
        prompt_suffix=d.prompt_suffix if request.prompt_suffix is None else request.prompt_suffix,
        stg=_chosen(request.stg, d.stg, 0.0),
        stg_rescale=_chosen(request.stg_rescale, d.stg_rescale, 0.0),
        reference_noise=_chosen(request.reference_noise, d.reference_noise, 0.0),
        appended=appended,
    )  # fmt: skip


def _chosen(requested: float | None, default: float | None, none: float) -> float:
    """The request's value, else the model's default, else ``none`` (the model has no such
    setting: the request's value is ignored too)."""
    if default is None:
        return none
    return float(requested) if requested is not None else float(default)
