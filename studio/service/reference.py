"""Reference frames for the app: validate an image file and make a small thumbnail.

Uses the same reader as generation (:func:`studio.media.image.load_image`), so a file accepted
here is a file the pipeline can read. Raises :class:`~studio.errors.MediaError` with a hint for
anything unsupported (wrong format, damaged, too large, missing).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from studio.media.image import fit_image, load_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
THUMBNAIL_SIDE = 256


@dataclass(frozen=True, slots=True)
class ReferenceImage:
    """A readable reference image.

    Attributes:
        path: absolute path as the request will name it.
        width, height: the image's size in pixels.
        thumbnail: uint8 RGB ``[h, w, 3]``, longest side ≤ ``THUMBNAIL_SIDE``, aspect kept.
    """

    path: str
    width: int
    height: int
    thumbnail: np.ndarray


def thumbnail_size(width: int, height: int, side: int = THUMBNAIL_SIDE) -> tuple[int, int]:
    """(w, h) with the longest side at most ``side`` and the aspect ratio kept (≥ 1 px)."""
    scale = min(1.0, side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def inspect_reference(path: str | Path) -> ReferenceImage:
    """Read ``path`` fully (so damage shows now, not mid-job) and return it with a thumbnail."""
    image = load_image(path)
    height, width = image.shape[:2]
    tw, th = thumbnail_size(width, height)
    thumb = image if (tw, th) == (width, height) else fit_image(image, tw, th, "fill")
    return ReferenceImage(str(Path(path).resolve()), width, height, np.ascontiguousarray(thumb))
