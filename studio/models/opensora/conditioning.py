"""Open-Sora 2.0's image-to-video inputs, guidance and final latent (docs/families/opensora.md §3).

Source: hpcaitech/Open-Sora @ 7ad6a96a135f, ``opensora/utils/sampling.py`` (``I2VDenoiser``,
``get_oscillation_gs``, ``prepare_api``) and ``opensora/utils/inference.py``
(``prepare_inference_condition``, ``collect_references_batch``: each reference is read as one
frame, resize-cropped, and encoded alone). A reference image becomes a mask channel (1 at its latent
frame) and its VAE latent at that frame (zeros elsewhere): 17 extra channels that the MMDiT
adds to its image tokens through ``cond_in``. Guidance runs three passes — prompt with the
reference, negative prompt with it, negative prompt without it — and mixes them with a text and
an image scale that may oscillate between steps and ramp over the latent frames.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from studio.engine.model import FinishLatent, GuidanceInputs, ImageChannels, VideoVAE
from studio.engine.shapes import LatentGeometry

#: Steps that always use the full scales before the oscillation starts (``force_num``).
FORCE_STEPS = 10


def oscillating(scale: float, step: int, on: bool) -> float:
    """``get_oscillation_gs``: the scale for steps < 10 and even steps, 1.0 on odd ones."""
    if not on or step < FORCE_STEPS or step % 2 == 0:
        return scale
    return 1.0


def step_index(t: float, schedule: tuple[float, ...]) -> int:
    """The step whose start time is ``t`` (the nearest schedule entry; the last is excluded)."""
    starts = schedule[:-1]
    return min(range(len(starts)), key=lambda i: abs(starts[i] - t))


def image_scale(g_img: float, step: int, steps: int, frames: int, temporal: bool
                ) -> float | torch.Tensor:
    """The image scale: a number, or with ``temporal`` (and g_img > 1) a per-latent-frame ramp
    ``[1, 1, T', 1, 1]`` from 1 to ``linspace(g_img, 1, steps + 1)[step]``."""
    if not temporal or g_img <= 1.0:
        return g_img
    upper = torch.linspace(g_img, 1.0, steps + 1)[step].item()
    return torch.linspace(1.0, upper, frames).view(1, 1, frames, 1, 1)


def guidance_rule(inputs: GuidanceInputs) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The guided velocity ``v(x, t_tok)``: v = v₃ + g_img·(v₂ − v₃) + g_txt·(v₁ − v₂).

    Text-to-video (no channels) is classifier-free guidance with the text scale (the original
    runs the same three passes with a zero reference, where v₂ = v₃).
    """
    osc, schedule = inputs.oscillation, inputs.schedule
    steps = len(schedule) - 1

    def velocity(x: torch.Tensor, t_tok: torch.Tensor) -> torch.Tensor:
        step = step_index(float(t_tok.reshape(-1)[0]), schedule)
        g_txt = oscillating(inputs.guidance, step, "text" in osc)
        if inputs.uncond is None:
            return inputs.denoise(_with(x, inputs.channels), t_tok, inputs.context)
        if inputs.channels is None:
            v1, v2 = inputs.denoise(torch.cat([x, x]), torch.cat([t_tok, t_tok]),
                                    torch.cat([inputs.context, inputs.uncond])).chunk(2)
            return v2 + g_txt * (v1 - v2)
        g_img = oscillating(inputs.guidance_image or 1.0, step, "image" in osc)
        cond = _with(x, inputs.channels)
        bare = _with(x, torch.zeros_like(inputs.channels))
        v1, v2, v3 = inputs.denoise(
            torch.cat([cond, cond, bare]), torch.cat([t_tok] * 3),
            torch.cat([inputs.context, inputs.uncond, inputs.uncond])).chunk(3)  # fmt: skip
        scale = image_scale(g_img, step, steps, x.shape[2], "temporal" in osc)
        if isinstance(scale, torch.Tensor):
            scale = scale.to(x.device, v1.dtype)
        return v3 + scale * (v2 - v3) + g_txt * (v1 - v2)

    return velocity


def _with(x: torch.Tensor, channels: torch.Tensor | None) -> torch.Tensor:
    """``x`` with ``channels`` concatenated after its own (repeated over the batch)."""
    if channels is None:
        return x
    extra = channels.to(x.device, x.dtype).expand(x.shape[0], *channels.shape[1:])
    return torch.cat([x, extra], dim=1)


def image_channels(vae: VideoVAE, geometry: LatentGeometry, device: torch.device
                   ) -> ImageChannels:
    """``channels(images, frames, height, width)`` → ``[1, 17, T', H', W']``: the mask (1 at the
    reference latent frames: 0 for the first pixel frame, T' − 1 for the last), then the
    reference latents there and zeros elsewhere. Each image is encoded alone, as one frame."""

    def build(images: Mapping[int, torch.Tensor], frames: int, height: int, width: int
              ) -> torch.Tensor:
        _, c, t, h, w = geometry.latent_shape(frames, height, width)
        mask = torch.zeros(1, 1, t, h, w, device=device)
        ref = torch.zeros(1, c, t, h, w, device=device)
        if t == 1:  # the original pins nothing in a one-latent-frame video (``T > 1`` in
            images = {}  # ``prepare_inference_condition``): the image is ignored, as there
        for index, image in images.items():
            frame = 0 if index == 0 else geometry.latent_frames(index + 1) - 1
            # Encode where the VAE's weights are now: an offload policy may have parked it
            # on the CPU (this hook holds the VAE itself, not the offloaded wrapper).
            where = _device_of(vae, device)
            latent = vae.encode(image.unsqueeze(2).to(where).float())
            ref[:, :, frame] = latent[:, :, 0].float().to(device)
            mask[:, :, frame] = 1.0
        return torch.cat([mask, ref], dim=1)

    return build


def _device_of(module: object, default: torch.device) -> torch.device:
    """The device of a module's first parameter (``default`` when it has none)."""
    parameters = getattr(module, "parameters", None)
    first = next(parameters(), None) if callable(parameters) else None
    return first.device if first is not None else torch.device(default)


def finish_latent() -> FinishLatent:
    """After sampling, the conditioned latent frames are overwritten with the references."""

    def finish(latent: torch.Tensor, channels: torch.Tensor | None) -> torch.Tensor:
        if channels is None:
            return latent
        channels = channels.to(latent.device, latent.dtype)
        return torch.where(channels[:, :1] > 0.5, channels[:, 1:], latent)

    return finish
