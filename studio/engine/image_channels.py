"""Reference images as extra denoiser input channels (Wan I2V), instead of pinned latents.

Such a model gets, at every call, its input latent with the conditioning channels the family
built from the reference images concatenated after it: ``[B, C + C_y, T', H', W']``. The
channels are built once per job (:data:`~studio.engine.model.ImageChannels`); both guidance
passes see them, as in the original pipelines.
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
    """Channel conditioning has no strength: only strength 1 is accepted."""
    if model.image_channels is None:
        return
    for item in request.conditioning:
        if item.strength != 1.0:
            raise InvalidRequest("conditioning.strength", f"{model.name} takes the reference "
                                 f"image as input channels, at full strength (got "
                                 f"{item.strength:g})", _STRENGTH_HINT)


def image_channels(model: LoadedModel, request: GenerationRequest) -> torch.Tensor | None:
    """The extra input ``[1, C_y, T', H', W']`` built from the request's reference images, or
    None when the model pins references in the latent or the request has none."""
    if model.image_channels is None or not request.conditioning:
        return None
    images = {}
    for item in request.conditioning:
        image = fit_image(load_image(item.image), request.width, request.height, item.fit)
        pixels = image_to_tensor(image)[:, :, 0]  # [1, 3, H, W] in [−1, 1]
        images[item.frame_index % request.frames] = pixels.to(model.device)
    with torch.inference_mode():
        return model.image_channels(images, request.frames, request.height, request.width)


def with_channels(denoise: Denoise, channels: torch.Tensor | None) -> Denoise:
    """``denoise`` given ``channels`` after its input latent's channels at every call."""
    if channels is None:
        return denoise

    def call(x: torch.Tensor, t_tok: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        extra = channels.to(x.device, x.dtype).expand(x.shape[0], *channels.shape[1:])
        return denoise(torch.cat([x, extra], dim=1), t_tok, context)

    return call
