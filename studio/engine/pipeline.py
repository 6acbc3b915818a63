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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch

from studio.engine.cancel import NEVER, CancelToken
from studio.engine.clips import PREFIX_LATENT_FRAMES, reference_pixels
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
from studio.engine.image_inputs import image_inputs, with_image
from studio.engine.model import FrameLayout, GuidanceInputs, LoadedModel
from studio.engine.noise import make_noise
from studio.engine.plan import GenerationPlan, check_request, plan_generation, resolve_shift
from studio.engine.request import ConditioningItem, GenerationRequest
from studio.engine.sampler import StepCallback, Velocity
from studio.engine.samplers import SAMPLERS
from studio.media.image import video_to_uint8

log = logging.getLogger(__name__)

__all__ = ["GenerationOutput", "GenerationPlan", "check_request", "decode_latent",
           "encode_prompts", "generate", "plan_generation", "resolve_shift", "sample_plan"]

#: Stages :func:`sample_plan` announces, in order.
ENCODING, SAMPLING = "encoding", "sampling"
StageCallback = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class GenerationOutput:
    """The result of :func:`generate`: the final latent (float32, CPU), the decoded uint8
    frames ``[T, H, W, 3]`` (None when decoding was not asked for) and the plan it ran."""

    latent: torch.Tensor
    video: np.ndarray | None
    plan: GenerationPlan


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
    """VAE-encode each reference image or clip into its latent frames; None without
    conditioning items or for a model that takes them as input channels
    (:mod:`studio.engine.image_inputs`).

    Frame 0 is encoded as a single image (what a causal VAE's first latent frame holds), a clip
    at frame 0 as itself into the grid's first latent frames. A frame-layout model's later
    keyframes are encoded as single images too, each into its own latent frame after the grid
    (:attr:`GenerationPlan.appended`); a later clip's first two latent frames go after the grid
    and the rest into the grid (:mod:`studio.engine.clips`). Other models' later keyframes are
    encoded as a still clip of 1 + r frames and latent frame 1 of it is used, which is what a
    causal VAE produces for r identical frames after the first.
    """
    request = plan.request
    if not request.conditioning or model.image_channels is not None:
        return None
    cond = empty_conditioning(plan.state_shape)
    cond = replace(cond, noise_scale=plan.reference_noise, noise_seed=request.seed)
    appended = iter(range(plan.latent_shape[2], plan.state_shape[2]))
    for item in request.conditioning:
        cancel.check()
        for index, latent in _placements(model, plan, item, appended, cancel):
            cond = place_latent_frame(cond, latent.float().cpu(), index, item.strength)
    return cond


def _placements(model: LoadedModel, plan: GenerationPlan, item: ConditioningItem,
                appended: Iterator[int], cancel: CancelToken) -> list[tuple[int, torch.Tensor]]:
    """(latent frame of the state, its latent ``[1, C, H', W']``) for each frame one item
    pins; ``appended`` hands out the state's frames after the grid in order."""
    request, r = plan.request, model.geometry.temporal_factor
    pixels = reference_pixels(item, request.width, request.height).to(model.device)
    start = item.frame_index % request.frames
    layout = model.capabilities.frame_layout
    if pixels.shape[2] == 1 and start > 0 and not layout:
        index = latent_frame_index(start, request.frames, r)
        return [(index, _encode(model, pixels.repeat(1, 1, 1 + r, 1, 1), cancel)[:, :, 1])]
    latents = _encode(model, pixels, cancel)  # [1, C, 1 + (n − 1)/r, H', W']
    frames = range(latents.shape[2])
    if start == 0:
        return [(k, latents[:, :, k]) for k in frames]
    prefix = min(PREFIX_LATENT_FRAMES, len(frames))
    return [(next(appended) if k < prefix else start // r + k, latents[:, :, k]) for k in frames]


def _encode(model: LoadedModel, pixels: torch.Tensor, cancel: CancelToken) -> torch.Tensor:
    """The VAE's latent ``[1, C, T', H', W']`` of pixels ``[1, 3, T, H, W]``."""
    with torch.inference_mode():
        return model.vae.encode(pixels, cancel)


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
    checkpoint, :attr:`GenerationPlan.state_shape`): the result equals the uninterrupted run's.
    ``on_stage`` hears :data:`ENCODING` and :data:`SAMPLING` as they begin. Steps report the
    whole state as ``x`` and the video's frames alone as ``x0_hat``; frames a model appended
    for its keyframes are dropped from the result.
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
    x = _start_state(model, plan, cond, start_step, x)
    velocity = _velocity(model, plan, context, uncond, channels, features)
    if wrap is not None:
        velocity = wrap(velocity)
    with torch.inference_mode():
        x = SAMPLERS[request.sampler](velocity, x, list(plan.schedule), cond=cond,
                                      on_step=_video_steps(on_step, plan), cancel=cancel,
                                      seed=request.seed, start=start_step)  # fmt: skip
        x = x[:, :, :plan.latent_shape[2]]
        if model.finish_latent is not None:
            x = model.finish_latent(x, channels)
    return x.float().cpu()


def _start_state(model: LoadedModel, plan: GenerationPlan, cond: Conditioning | None,
                 start_step: int, x: torch.Tensor | None) -> torch.Tensor:
    """The state sampling starts from: seeded noise lerped with the conditioning, or a saved
    state to resume from."""
    if x is None:
        assert start_step == 0, "a resumed run needs the saved state x"
        x = make_noise(plan.state_shape, plan.request.seed, model.device, torch.float32)
        return initial_latent(x, cond) if cond is not None else x
    assert tuple(x.shape) == plan.state_shape, f"saved state {tuple(x.shape)} is not " \
        f"{plan.state_shape}"
    return x.to(model.device, torch.float32)


def _video_steps(on_step: StepCallback | None, plan: GenerationPlan) -> StepCallback | None:
    """``on_step`` shown the video's own frames as ``x0_hat`` (previews do not show appended
    keyframes); ``x`` stays the whole state, which sampling checkpoints save."""
    if on_step is None or not plan.appended:
        return on_step
    frames = plan.latent_shape[2]
    return lambda info: on_step(replace(info, x0_hat=info.x0_hat[:, :, :frames]))


def _velocity(model: LoadedModel, plan: GenerationPlan, context: torch.Tensor,
              uncond: torch.Tensor | None, channels: torch.Tensor | None,
              features: torch.Tensor | None) -> Velocity:
    """The guided velocity: the model's own guidance rule, else classifier-free guidance
    (per expert for a two-expert model) over the denoiser given its image inputs (and, for a
    frame-layout model, the state's frame layout at every call)."""
    request = plan.request
    denoiser = model.denoiser
    if model.capabilities.frame_layout:
        denoiser = with_layout(denoiser, plan.layout)
    if model.guidance_rule is not None:
        return model.guidance_rule(GuidanceInputs(
            denoiser, context, uncond, channels, features, request.guidance,
            plan.guidance_image, plan.oscillation, plan.schedule, plan.stg,
            plan.stg_rescale))  # fmt: skip
    scale = guidance_for(request.guidance, plan.guidance_low, model.experts)
    return guided_velocity(with_image(denoiser, channels, features), context, uncond, scale)


def with_layout(denoise: Callable[..., torch.Tensor], layout: FrameLayout
                ) -> Callable[..., torch.Tensor]:
    """``denoise`` given ``layout=`` at every call (other keywords pass through)."""
    return lambda x, t_tok, context, **extra: denoise(x, t_tok, context, layout=layout, **extra)


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
