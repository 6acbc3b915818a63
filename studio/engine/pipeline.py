"""Text → latent → video: the one generation path shared by the GUI, the CLI and the tests.

Stages: encode the prompts, build conditioning latents from reference images, sample from seeded
noise along the request's schedule, decode with the VAE. Each stage is a function so the service
layer can report progress between them and keep the latent when a later stage fails.
"""

from __future__ import annotations

import logging
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
from studio.engine.guidance import guided_velocity
from studio.engine.noise import make_noise
from studio.engine.request import GenerationRequest
from studio.engine.sampler import SAMPLERS, StepCallback
from studio.engine.schedule import make_schedule, opensora_alpha
from studio.engine.shapes import LatentGeometry
from studio.errors import InvalidRequest
from studio.media.image import fit_image, image_to_tensor, load_image, video_to_uint8
from studio.models.family import LoadedModel

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GenerationOutput:
    """The result of :func:`generate`.

    Attributes:
        latent: final normalised latent ``[1, C, T', H', W']``, float32 on the CPU.
        video: decoded frames, uint8 ``[T, H, W, 3]`` (None when decoding was not asked for).
        schedule: the N + 1 times actually used (t ∈ [0, 1]).
        shift: the time-shift α the schedule was made with.
    """

    latent: torch.Tensor
    video: np.ndarray | None
    schedule: tuple[float, ...]
    shift: float


def resolve_shift(request: GenerationRequest, geometry: LatentGeometry) -> float:
    """The shift α a request uses: fixed, or Open-Sora's rule from tokens per frame and T'."""
    if request.shift == "auto":
        return opensora_alpha(
            geometry.tokens_per_frame(request.height, request.width),
            geometry.latent_frames(request.frames),
        )
    return float(request.shift)


def request_schedule(request: GenerationRequest, geometry: LatentGeometry) -> list[float]:
    """The N + 1 sampling times for a request (pure Python; the UI draws it before a run)."""
    return make_schedule(request.steps, resolve_shift(request, geometry))


def check_request(model: LoadedModel, request: GenerationRequest) -> None:
    """Validate a request for a model; raises :class:`InvalidRequest` naming the field."""
    request.validate()
    request.check_geometry(model.geometry)
    if request.conditioning and not model.supports_image:
        raise InvalidRequest(
            "conditioning",
            f"{model.name} does not support reference frames",
            "remove the reference frame or pick an image-to-video model",
        )


def encode_prompts(
    model: LoadedModel, request: GenerationRequest
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Contexts ``[1, L, D]`` for the prompt and (when guidance ≠ 1) the negative prompt."""
    if request.guidance == 1.0:
        return model.text_encoder.encode([request.prompt]), None
    negative = request.negative_prompt or model.defaults.negative_prompt
    both = model.text_encoder.encode([request.prompt, negative])
    return both[:1], both[1:]


def build_conditioning(
    model: LoadedModel, request: GenerationRequest, cancel: CancelToken = NEVER
) -> Conditioning | None:
    """VAE-encode each reference image into its latent frame; None without conditioning items.

    Frame 0 is encoded as a single image (what a causal VAE's first latent frame holds). A later
    keyframe is encoded as a still clip of 1 + r frames and latent frame 1 of it is used, which is
    what a causal VAE produces for r identical frames after the first.
    """
    if not request.conditioning:
        return None
    geometry = model.geometry
    shape = geometry.latent_shape(request.frames, request.height, request.width)
    cond = empty_conditioning(shape)
    r = geometry.temporal_factor
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


def sample_latent(
    model: LoadedModel,
    request: GenerationRequest,
    context: torch.Tensor,
    uncond_context: torch.Tensor | None,
    cond: Conditioning | None,
    *,
    on_step: StepCallback | None = None,
    cancel: CancelToken = NEVER,
    start_step: int = 0,
    x: torch.Tensor | None = None,
) -> tuple[torch.Tensor, list[float], float]:
    """Sample the latent ``[1, C, T', H', W']`` (float32, model device) from seeded noise.

    The sampler state is kept in float32; the denoiser casts to its own precision.
    To resume a run, pass the state ``x`` saved after ``start_step`` steps (a sampling
    checkpoint): the result equals the uninterrupted run's. Returns (latent, schedule, shift).
    """
    shift = resolve_shift(request, model.geometry)
    ts = make_schedule(request.steps, shift)
    shape = model.geometry.latent_shape(request.frames, request.height, request.width)
    if cond is not None:
        cond = cond.to(model.device, torch.float32)
    if x is None:
        assert start_step == 0, "a resumed run needs the saved state x"
        x = make_noise(shape, request.seed, model.device, torch.float32)
        if cond is not None:
            x = initial_latent(x, cond)
    else:
        assert tuple(x.shape) == shape, f"saved state {tuple(x.shape)} is not {shape}"
        x = x.to(model.device, torch.float32)
    velocity = guided_velocity(model.denoiser, context, uncond_context, request.guidance)
    sampler = SAMPLERS[request.sampler]
    with torch.inference_mode():
        x = sampler(
            velocity, x, ts, cond=cond, on_step=on_step, cancel=cancel, seed=request.seed,
            start=start_step,
        )
    return x, ts, shift


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
    check_request(model, request)
    cancel.check()
    with torch.inference_mode():
        context, uncond = encode_prompts(model, request)
    cond = build_conditioning(model, request, cancel)
    latent, ts, shift = sample_latent(
        model, request, context, uncond, cond, on_step=on_step, cancel=cancel
    )
    video = decode_latent(model, latent, cancel) if decode else None
    return GenerationOutput(latent.float().cpu(), video, tuple(ts), shift)
