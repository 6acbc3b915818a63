"""Text → latent → video: the one generation path that the GUI, the CLI, the queue, the
evaluation and ``studio bench`` all run.

A request is first resolved into a :class:`GenerationPlan` (latent shape, shift, schedule) —
once, so the schedule the UI draws, the recipe records and the sampler runs are the same
numbers. Then two halves: :func:`sample_plan` (encode the prompts, build the conditioning latents,
sample from seeded noise or a saved state) and :func:`decode_latent`. The service runs the
halves separately to save the latent between them; :func:`generate` runs both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from studio.engine.cancel import NEVER, CancelToken
from studio.engine.conditioning import (
    Conditioning,
    empty_conditioning,
    initial_latent,
    latent_frame_index,
    place_latent_frame,
)
from studio.engine.decode import decode_video
from studio.engine.experts import guidance_for
from studio.engine.guidance import guided_velocity
from studio.engine.image_inputs import check_channel_items, image_inputs, with_image
from studio.engine.model import FIRST_FRAME, KEYFRAME, GuidanceInputs, LoadedModel, ShiftRule
from studio.engine.noise import make_noise
from studio.engine.request import GenerationRequest
from studio.engine.sampler import StepCallback, Velocity
from studio.engine.samplers import MULTISTEP_SAMPLERS, SAMPLERS
from studio.engine.schedule import make_schedule
from studio.engine.shapes import LatentGeometry
from studio.errors import InvalidRequest
from studio.media.image import fit_image, image_to_tensor, load_image, video_to_uint8

log = logging.getLogger(__name__)

#: Stages :func:`sample_plan` announces, in order.
ENCODING, SAMPLING = "encoding", "sampling"
StageCallback = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class GenerationPlan:
    """A validated request with everything the run derives from it.

    Attributes:
        request: the request as given.
        latent_shape: ``[1, C, T', H', W']``.
        shift: the time-shift α of the schedule (the model's rule when the request says "auto").
        schedule: the N + 1 sampling times, t ∈ [0, 1], from 1 (noise) to 0.
        guidance_low: a two-expert model's low-noise guidance (the request's, else the model's
            default; None for models with one DiT).
        guidance_image / oscillation / prompt_suffix: the request's, else the model's defaults
            (:class:`~studio.engine.model.FamilyDefaults`).
    """

    request: GenerationRequest
    latent_shape: tuple[int, int, int, int, int]
    shift: float
    schedule: tuple[float, ...]
    guidance_low: float | None = None
    guidance_image: float | None = None
    oscillation: tuple[str, ...] = ()
    prompt_suffix: str = ""

    def uses_negative(self) -> bool:
        """Whether any step runs the unconditional pass (some guidance ≠ 1)."""
        return self.request.guidance != 1.0 or self.guidance_low not in (None, 1.0) or \
            self.guidance_image not in (None, 1.0)


@dataclass(frozen=True, slots=True)
class GenerationOutput:
    """The result of :func:`generate`: the final latent (float32, CPU), the decoded uint8
    frames ``[T, H, W, 3]`` (None when decoding was not asked for) and the plan it ran."""

    latent: torch.Tensor
    video: np.ndarray | None
    plan: GenerationPlan


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
    for item in request.conditioning:
        mode = FIRST_FRAME if item.frame_index == 0 else KEYFRAME
        if mode not in capabilities.conditioning:
            allowed = ", ".join(capabilities.conditioning) or "none"
            raise InvalidRequest(
                "conditioning",
                f"{model.name} does not support {mode} reference frames (supported: {allowed})",
                "remove the reference frame or pick a model that takes one",
            )


def plan_generation(model: LoadedModel, request: GenerationRequest) -> GenerationPlan:
    """Validate ``request`` for ``model`` and resolve its shape, shift and schedule."""
    check_request(model, request)
    shift = resolve_shift(request, model.geometry, model.capabilities.shift_rule)
    shape = model.geometry.latent_shape(request.frames, request.height, request.width)
    low = None
    if model.experts is not None:
        low = request.guidance_low if request.guidance_low is not None else (
            model.defaults.guidance_low if model.defaults.guidance_low is not None
            else request.guidance)
    d = model.defaults
    return GenerationPlan(
        request, shape, shift, tuple(make_schedule(request.steps, shift)), low,
        guidance_image=d.guidance_image if request.guidance_image is None or
        d.guidance_image is None else request.guidance_image,
        oscillation=d.oscillation if request.oscillation is None else request.oscillation,
        prompt_suffix=d.prompt_suffix if request.prompt_suffix is None else request.prompt_suffix,
    )  # fmt: skip


def encode_prompts(
    model: LoadedModel, plan: GenerationPlan
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Contexts ``[1, L, D]`` for the prompt and (when some guidance ≠ 1) the negative prompt."""
    request = plan.request
    prompt = request.prompt + plan.prompt_suffix
    with torch.inference_mode():
        if not plan.uses_negative():
            return model.text_encoder.encode([prompt]), None
        negative = request.negative_prompt or model.defaults.negative_prompt
        both = model.text_encoder.encode([prompt, negative])
    return both[:1], both[1:]


def build_conditioning(
    model: LoadedModel, plan: GenerationPlan, cancel: CancelToken = NEVER
) -> Conditioning | None:
    """VAE-encode each reference image into its latent frame; None without conditioning items
    or for a model that takes them as input channels (:mod:`studio.engine.image_inputs`).

    Frame 0 is encoded as a single image (what a causal VAE's first latent frame holds). A later
    keyframe is encoded as a still clip of 1 + r frames and latent frame 1 of it is used, which is
    what a causal VAE produces for r identical frames after the first.
    """
    request = plan.request
    if not request.conditioning or model.image_channels is not None:
        return None
    cond = empty_conditioning(plan.latent_shape)
    r = model.geometry.temporal_factor
    for item in request.conditioning:
        cancel.check()
        image = fit_image(load_image(item.image), request.width, request.height, item.fit)
        pixels = image_to_tensor(image).to(model.device)
        index = latent_frame_index(item.frame_index, request.frames, r)
        with torch.inference_mode():
            if index == 0:
                frame_latent = model.vae.encode(pixels, cancel)[:, :, 0]
            else:
                frame_latent = model.vae.encode(pixels.repeat(1, 1, 1 + r, 1, 1), cancel)[:, :, 1]
        cond = place_latent_frame(cond, frame_latent.float().cpu(), index, item.strength)
    return cond


def sample_plan(
    model: LoadedModel,
    plan: GenerationPlan,
    *,
    on_stage: StageCallback | None = None,
    on_step: StepCallback | None = None,
    cancel: CancelToken = NEVER,
    start_step: int = 0,
    x: torch.Tensor | None = None,
    wrap: Callable[[Velocity], Velocity] | None = None,
) -> torch.Tensor:
    """Encode, condition and sample: the final latent ``[1, C, T', H', W']``, float32, on the
    CPU. ``wrap`` wraps the guided velocity the sampler calls (step caching, calibration).

    To resume a run, pass the state ``x`` saved after ``start_step`` steps (a sampling
    checkpoint): the result equals the uninterrupted run's. ``on_stage`` hears
    :data:`ENCODING` and :data:`SAMPLING` as they begin.
    """
    request = plan.request
    if on_stage is not None:
        on_stage(ENCODING)
    cancel.check()
    context, uncond = encode_prompts(model, plan)
    cond = build_conditioning(model, plan, cancel)
    channels, features = image_inputs(model, request)
    if on_stage is not None:
        on_stage(SAMPLING)
    if cond is not None:
        cond = cond.to(model.device, torch.float32)
    if x is None:
        assert start_step == 0, "a resumed run needs the saved state x"
        x = make_noise(plan.latent_shape, request.seed, model.device, torch.float32)
        if cond is not None:
            x = initial_latent(x, cond)
    else:
        assert tuple(x.shape) == plan.latent_shape, f"saved state {tuple(x.shape)} is not " \
            f"{plan.latent_shape}"
        x = x.to(model.device, torch.float32)
    velocity = _velocity(model, plan, context, uncond, channels, features)
    if wrap is not None:
        velocity = wrap(velocity)
    with torch.inference_mode():
        x = SAMPLERS[request.sampler](velocity, x, list(plan.schedule), cond=cond,
                                      on_step=on_step, cancel=cancel, seed=request.seed,
                                      start=start_step)  # fmt: skip
        if model.finish_latent is not None:
            x = model.finish_latent(x, channels)
    return x.float().cpu()


def _velocity(model: LoadedModel, plan: GenerationPlan, context: torch.Tensor,
              uncond: torch.Tensor | None, channels: torch.Tensor | None,
              features: torch.Tensor | None) -> Velocity:
    """The guided velocity: the model's own guidance rule, else classifier-free guidance
    (per expert for a two-expert model) over the denoiser given its image inputs."""
    request = plan.request
    if model.guidance_rule is not None:
        return model.guidance_rule(GuidanceInputs(
            model.denoiser, context, uncond, channels, features, request.guidance,
            plan.guidance_image, plan.oscillation, plan.schedule))  # fmt: skip
    scale = guidance_for(request.guidance, plan.guidance_low, model.experts)
    return guided_velocity(with_image(model.denoiser, channels, features), context, uncond,
                           scale)


def decode_latent(
    model: LoadedModel, latent: torch.Tensor, cancel: CancelToken = NEVER
) -> np.ndarray:
    """Decode a normalised latent ``[1, C, T', H', W']`` to uint8 frames ``[T, H, W, 3]``.

    Out of memory, it retries in smaller and smaller spatial tiles (:mod:`studio.engine.decode`).
    """
    with torch.inference_mode():
        video = decode_video(model.vae, latent.to(model.device), cancel)
    return video_to_uint8(video)


def generate(
    model: LoadedModel,
    request: GenerationRequest,
    *,
    on_step: StepCallback | None = None,
    cancel: CancelToken = NEVER,
    decode: bool = True,
) -> GenerationOutput:
    """Run the whole path for one request (validated here)."""
    plan = plan_generation(model, request)
    latent = sample_plan(model, plan, on_step=on_step, cancel=cancel)
    video = decode_latent(model, latent, cancel) if decode else None
    return GenerationOutput(latent, video, plan)
