"""Reference frames for the app: validate an image or clip file and make a small thumbnail.

Uses the same readers as generation (:func:`studio.media.image.load_image`,
:func:`studio.media.clip.read_clip`), so a file accepted here is a file the pipeline can read.
Raises :class:`~studio.errors.MediaError` with a hint for anything unsupported (wrong format,
damaged, too large, missing). Which files are clips: :func:`studio.engine.request_items.is_clip`
(the suffix); a dropped video that carries a recipe opens as a recipe instead (the app's rule,
:mod:`studio.app.reference_drop`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from studio.engine.request_items import CLIP_SUFFIXES, is_clip
from studio.errors import MediaError
from studio.media.clip import read_clip
from studio.media.image import fit_image, load_image
from studio.media.video import read_video_metadata

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
#: Every file a keyframe can be: an image or a clip.
REFERENCE_SUFFIXES = IMAGE_SUFFIXES + CLIP_SUFFIXES
THUMBNAIL_SIDE = 256


@dataclass(frozen=True, slots=True)
class ReferenceImage:
    """A readable reference image or clip.

    Attributes:
        path: absolute path as the request will name it.
        width, height: the image's (clip's) size in pixels.
        thumbnail: uint8 RGB ``[h, w, 3]`` (a clip's first frame), longest side ≤
            ``THUMBNAIL_SIDE``, aspect kept.
        frames: 1 for an image, a clip's frame count.
    """

    path: str
    width: int
    height: int
    thumbnail: np.ndarray
    frames: int = 1

    @property
    def clip(self) -> bool:
        return is_clip(self.path)


def thumbnail_size(width: int, height: int, side: int = THUMBNAIL_SIDE) -> tuple[int, int]:
    """(w, h) with the longest side at most ``side`` and the aspect ratio kept (≥ 1 px)."""
    scale = min(1.0, side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def inspect_reference(path: str | Path) -> ReferenceImage:
    """Read ``path`` fully (so damage shows now, not mid-job) and return it with a thumbnail.
    A clip (:func:`is_clip`) is decoded whole, within the clip bounds of
    :mod:`studio.media.clip`; its first frame makes the thumbnail."""
    frames = read_clip(path) if is_clip(str(path)) else load_image(path)[None]
    image = np.ascontiguousarray(frames[0])
    height, width = image.shape[:2]
    tw, th = thumbnail_size(width, height)
    thumb = image if (tw, th) == (width, height) else fit_image(image, tw, th, "fill")
    return ReferenceImage(str(Path(path).resolve()), width, height,
                          np.ascontiguousarray(thumb), len(frames))


def is_recipe_video(path: str | Path) -> bool:
    """The rule for a video the user opens or drops: one that carries a Flow Studio recipe
    (read from its header, no frame decoded) is a recipe; any other video, unreadable ones
    included (their error shows when they are checked as a clip), is a clip."""
    if not is_clip(str(path)):
        return False
    try:
        return read_video_metadata(path) is not None
    except MediaError:
        return False
