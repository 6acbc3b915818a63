"""Short clips as conditioning items: their checks, the frames a frame-layout model appends for
them, and their pixels.

A clip of n = 1 + r·k frames (r the VAE's temporal factor) encodes to 1 + k latent frames.
At frame 0 those go into the grid's first latent frames, as an image goes into frame 0. At a
later frame s (a multiple of r) LTX-Video splits it (``_handle_non_first_conditioning_sequence``,
prefix mode "concat", docs/families/ltx.md §7): the latent frames after the first
:data:`PREFIX_LATENT_FRAMES` go into the grid from latent frame s/r + 2, and the first two are
appended after the grid as one group, positioned as a two-frame clip starting at s.
"""

from __future__ import annotations

import numpy as np
import torch

from studio.engine.model import LoadedModel
from studio.engine.request import ConditioningItem, GenerationRequest
from studio.errors import InvalidRequest
from studio.media.clip import clip_track, read_clip
from studio.media.image import fit_image, image_to_tensor, load_image

#: A later clip's first latent frames, appended as extra tokens rather than put in the grid.
PREFIX_LATENT_FRAMES = 2


def item_frames(item: ConditioningItem) -> int:
    """How many pixel frames an item pins: 1 for an image, a clip's frame count."""
    return clip_track(item.image).frames if item.clip else 1


def latent_count(frames: int, temporal_factor: int) -> int:
    """Latent frames of an n-frame clip through a causal VAE: 1 + (n − 1)/r."""
    return 1 + (frames - 1) // temporal_factor


def check_clip_items(model: LoadedModel, request: GenerationRequest) -> None:
    """Refuse a clip the model cannot take, naming the field and the rule (module docstring)."""
    r = model.geometry.temporal_factor
    for item in request.conditioning:
        if not item.clip:
            continue
        if model.image_channels is not None:
            raise InvalidRequest("conditioning.image", f"{model.name} takes reference images "
                                 "as input channels, not clips", "use an image")
        _check_clip(model, request, item, item_frames(item), r)


def _check_clip(model: LoadedModel, request: GenerationRequest, item: ConditioningItem,
                frames: int, r: int) -> None:
    if (frames - 1) % r:
        below = 1 + (frames - 1) // r * r
        raise InvalidRequest("conditioning.image", f"the clip has {frames} frames; "
                             f"{model.name} takes clips of 1 + {r}·k frames",
                             f"trim it to {below} frames (or {below + r})")
    start = item.frame_index % request.frames
    if start + frames > request.frames:
        raise InvalidRequest("conditioning.frame_index", f"a {frames}-frame clip at frame "
                             f"{start} runs past the video's {request.frames} frames",
                             f"start it at frame {max(0, request.frames - frames)} or before, "
                             "or make the video longer")
    if start == 0 or frames == 1:
        return
    if not model.capabilities.frame_layout:
        raise InvalidRequest("conditioning.frame_index", f"{model.name} takes a clip only at "
                             f"frame 0, not frame {start}", "start the clip at frame 0")
    if start % r:
        raise InvalidRequest("conditioning.frame_index", f"a clip after frame 0 starts at a "
                             f"multiple of {r}, not frame {start}",
                             f"start it at frame {start // r * r or r}")


def appended_groups(model: LoadedModel, request: GenerationRequest
                    ) -> tuple[tuple[int, int], ...]:
    """(pixel frame, latent frames) of each group a frame-layout model appends, in the
    request's order: one frame per image after frame 0, the prefix of each later clip."""
    if not model.capabilities.frame_layout:
        return ()
    groups = []
    for item in request.conditioning:
        start = item.frame_index % request.frames
        if start != 0:
            count = latent_count(item_frames(item), model.geometry.temporal_factor)
            groups.append((start, min(count, PREFIX_LATENT_FRAMES)))
    return tuple(groups)


def reference_pixels(item: ConditioningItem, width: int, height: int) -> torch.Tensor:
    """The item's frames fitted to the video: ``[1, 3, n, H, W]`` float32 in [−1, 1] (n = 1
    for an image)."""
    if not item.clip:
        return image_to_tensor(fit_image(load_image(item.image), width, height, item.fit))
    fitted = [image_to_tensor(fit_image(np.ascontiguousarray(frame), width, height, item.fit))
              for frame in read_clip(item.image)]
    return torch.cat(fitted, dim=2)
