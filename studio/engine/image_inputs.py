"""Reference images as denoiser inputs (Wan I2V), instead of latents pinned by the mask.

Such a model gets, at every call, its input latent with the conditioning channels the family
built from the reference images concatenated after it (``[B, C + C_y, T', H', W']``), and,
if it reads them, image features beside the text (``image_context=``, Wan 2.1 I2V's CLIP
tokens). Both are built once per job (:data:`~studio.engine.model.ImageChannels`,
:data:`~studio.engine.model.ImageContext`); both guidance passes see them, as in the original
pipelines.
"""

from __future__ import annotations

import torch

from studio.engine.guidance import Denoise
from studio.engine.model import LoadedModel
from studio.engine.request import GenerationRequest
from studio.errors import InvalidRequest
from studio.media.image import fit_image, image_to_tensor, load_image

_STRENGTH_HINT = "set the reference strength to 1"


def check_channel_items(model: LoadedModel, request: GenerationRequest) -> None:
    """A model that takes reference images as channels needs one; it has no strength (only 1
    is accepted) and takes the first frame and, where the model has keyframes (FLF2V), the
    last one."""
    if model.image_channels is None:
        return
    if not request.conditioning and model.image_required:
        raise InvalidRequest("conditioning", f"{model.name} makes video from an image and got "
                             "none", "give it a reference image (the first frame)")
    for item in request.conditioning:
        if item.frame_index % request.frames not in (0, request.frames - 1):
            raise InvalidRequest("conditioning.frame_index", f"{model.name} takes reference "
                                 f"images at the first or last frame, not frame "
                                 f"{item.frame_index}", "use frame 0 (or −1 for the last)")
        if item.strength != 1.0:
            raise InvalidRequest("conditioning.strength", f"{model.name} takes the reference "
                                 f"image as input channels, at full strength (got "
                                 f"{item.strength:g})", _STRENGTH_HINT)


def reference_images(model: LoadedModel, request: GenerationRequest
                     ) -> dict[int, torch.Tensor]:
    """Pixel frame index → the request's reference image ``[1, 3, H, W]`` in [−1, 1], sized
    to the video, on the model's device."""
    images = {}
    for item in request.conditioning:
        image = fit_image(load_image(item.image), request.width, request.height, item.fit)
        pixels = image_to_tensor(image)[:, :, 0]  # [1, 3, H, W] in [−1, 1]
        images[item.frame_index % request.frames] = pixels.to(model.device)
    return images


def image_inputs(model: LoadedModel, request: GenerationRequest
                 ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(extra input channels ``[1, C_y, T', H', W']``, image features ``[1, N, D_img]``) built
    from the request's reference images; None where the model takes none (or no image is
    given)."""
    if not request.conditioning or (model.image_channels is None
                                    and model.image_context is None):
        return None, None
    images = reference_images(model, request)
    with torch.inference_mode():
        channels = model.image_channels(images, request.frames, request.height, request.width) \
            if model.image_channels is not None else None
        features = model.image_context(images) if model.image_context is not None else None
    return channels, features


def with_image(denoise: Denoise, channels: torch.Tensor | None,
               features: torch.Tensor | None) -> Denoise:
    """``denoise`` given ``channels`` after its input latent's channels and ``features`` as its
    ``image_context`` at every call (both repeated over the call's batch)."""
    if channels is None and features is None:
        return denoise

    def call(x: torch.Tensor, t_tok: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        if channels is not None:
            extra = channels.to(x.device, x.dtype).expand(x.shape[0], *channels.shape[1:])
            x = torch.cat([x, extra], dim=1)
        if features is None:
            return denoise(x, t_tok, context)
        image = features.to(x.device).expand(x.shape[0], *features.shape[1:])
        return denoise(x, t_tok, context, image_context=image)

    return call
