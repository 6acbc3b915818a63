"""Job thumbnails: a small PNG of a finished video's middle frame, kept in the job's folder.

The generation service writes ``jobs/<id>/thumbnail.png`` right after the MP4 (it still holds the
frames, so nothing is decoded); :func:`ensure_thumbnail` makes one lazily for jobs finished before
thumbnails existed, decoding only the frames up to the middle one. Both run off the GUI thread;
the history gallery only reads the PNG. Qt-free.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from studio.errors import MediaError, StudioError
from studio.media.atomic import atomic_write_bytes
from studio.media.video import read_video
from studio.service.job_folder import JobFolder

log = logging.getLogger(__name__)

THUMBNAIL_EDGE = 160
"""Longest edge of a thumbnail in pixels (a smaller video keeps its size)."""


def middle_index(frames: int) -> int:
    """The frame a thumbnail shows: the middle one, ``(T − 1) // 2`` (0 for one frame)."""
    assert frames >= 1, frames
    return (frames - 1) // 2


def thumbnail_size(width: int, height: int, edge: int = THUMBNAIL_EDGE) -> tuple[int, int]:
    """(width, height) scaled so the longest side is at most ``edge``, aspect kept, ≥ 1 px."""
    scale = min(1.0, edge / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def make_thumbnail(frame: np.ndarray, edge: int = THUMBNAIL_EDGE) -> np.ndarray:
    """One uint8 RGB frame ``[H, W, 3]`` → the thumbnail ``[h, w, 3]`` (box filter)."""
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3, frame.shape
    height, width = frame.shape[:2]
    size = thumbnail_size(width, height, edge)
    if size == (width, height):
        return np.ascontiguousarray(frame)
    image = Image.fromarray(np.ascontiguousarray(frame), "RGB")
    return np.asarray(image.resize(size, Image.Resampling.BOX))


def write_thumbnail(path: Path, frames: np.ndarray, edge: int = THUMBNAIL_EDGE) -> Path:
    """Write the thumbnail of a video's frames ``[T, H, W, 3]`` (uint8) to ``path`` atomically."""
    assert frames.ndim == 4 and len(frames) >= 1, frames.shape
    pixels = make_thumbnail(frames[middle_index(len(frames))], edge)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def save_job_thumbnail(folder: Path, frames: np.ndarray) -> Path | None:
    """:func:`write_thumbnail` into a job folder; a failure is logged, never raised.

    A missing thumbnail costs a lazy decode later; it must never fail the job that made the video.
    """
    try:
        return write_thumbnail(JobFolder(Path(folder)).thumbnail, frames)
    except (OSError, StudioError) as exc:
        log.warning("could not write the thumbnail in %s: %s", folder, exc)
        return None


def ensure_thumbnail(folder: Path, video_path: Path | str | None, frames: int | None = None,
                     edge: int = THUMBNAIL_EDGE) -> Path:
    """The job's thumbnail path, made from its video first if it is missing.

    Args:
        folder: the job folder (``jobs/<id>``).
        video_path: the job's MP4 (``result["video_path"]``).
        frames: the video's frame count when known (only frames up to the middle one are
            decoded); None decodes the whole video.

    Raises:
        MediaError: no thumbnail and no readable video to make one from.
    """
    path = JobFolder(Path(folder)).thumbnail
    if path.is_file():
        return path
    if not video_path:
        raise MediaError(f"job folder {folder} has no video to make a thumbnail from",
                         "only finished jobs have thumbnails")
    limit = middle_index(frames) + 1 if frames else None
    decoded, _, _ = read_video(video_path, max_frames=limit)
    if frames is None:
        decoded = decoded[middle_index(len(decoded)): middle_index(len(decoded)) + 1]
    log.info("making the missing thumbnail of %s", video_path)
    return write_thumbnail(path, decoded[-1:], edge)


__all__ = [
    "THUMBNAIL_EDGE",
    "ensure_thumbnail",
    "make_thumbnail",
    "middle_index",
    "save_job_thumbnail",
    "thumbnail_size",
    "write_thumbnail",
]
