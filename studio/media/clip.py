"""Short clips used as reference frames: header checks and bounded decoding.

Torch-free (the Qt app inspects clips through it). A clip is any MP4 / M4V / MOV file with a
video track; all its frames are decoded at once, so their size is bounded before decoding,
as an image's is (:data:`~studio.media.image.MAX_PIXELS`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from studio.errors import MediaError
from studio.media.image import MAX_PIXELS
from studio.media.mp4 import VideoTrack, not_a_video, read_moov, video_track
from studio.media.video import read_video

#: All of a clip's frames together: at most this many pixels (uint8 RGB, 3 bytes each), e.g.
#: 257 frames of 1920 × 1080.
MAX_CLIP_PIXELS = 600_000_000


def clip_track(path: str | os.PathLike[str]) -> VideoTrack:
    """The clip's video track, read from its header (no frame decoded).

    Raises:
        MediaError: missing, not an MP4/MOV file, no video track, or too large to decode (a
            frame over ``MAX_PIXELS`` or all frames over :data:`MAX_CLIP_PIXELS`).
    """
    source = Path(path)
    if not source.is_file():
        what = "is a folder, not a clip" if source.is_dir() else "does not exist"
        raise MediaError(f"{source} {what}.", "Choose a short MP4 video.")
    track = video_track(read_moov(source))
    if track is None or min(track.frames, track.width, track.height) == 0:
        raise not_a_video(source, "it has no video track")
    frame = track.width * track.height
    if frame > MAX_PIXELS or frame * track.frames > MAX_CLIP_PIXELS:
        raise MediaError(f"{source.name} is too large: {track.frames} frames of "
                         f"{track.width} × {track.height} px.",
                         "Use a shorter or smaller clip (a few seconds at video size).")
    return track


def read_clip(path: str | os.PathLike[str]) -> np.ndarray:
    """Every frame of a clip, uint8 RGB ``[n, H, W, 3]``, n the header's frame count.

    Raises:
        MediaError: as :func:`clip_track`, or damaged (fewer frames decode than it holds).
    """
    track = clip_track(path)
    frames, _, _ = read_video(path, max_frames=track.frames)
    if len(frames) < track.frames:
        raise MediaError(f"{Path(path).name} is damaged: {len(frames)} of its "
                         f"{track.frames} frames decode.", "Export the clip again.")
    return frames
