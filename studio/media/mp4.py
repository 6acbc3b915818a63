"""Just enough ISO base media (MP4/MOV) parsing to read a video's header without decoding it.

An MP4 file is a sequence of boxes (``size, type, payload``), nested. Everything we need lives
in the ``moov`` box: the ``comment`` tag (``moov/udta/meta/ilst/©cmt/data``) where
:mod:`studio.media.video` stores the recipe, and the video track's sample entry (frame size),
media timescale and sample table (frame count and frame rate). ``mdat`` (the compressed frames)
is skipped with a seek, so reading a header costs a few kilobytes of I/O.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from studio.errors import MediaError

SUPPORTED_CONTAINERS = "MP4, M4V or MOV (ISO base media) files"
_TOP_LEVEL_BOXES = {
    b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid", b"styp", b"sidx",
    b"moof", b"mfra", b"meta", b"pdin",
}  # fmt: skip
_MAX_MOOV_BYTES = 256 * 1024 * 1024
_EMPTY = (0, 0)


@dataclass(frozen=True, slots=True)
class VideoTrack:
    """The first video track of a file.

    Attributes:
        width, height: frame size in pixels as stored (before any rotation flag).
        frames: number of frames (samples) in the track.
        fps: mean frame rate in frames per second (0 if the track has no duration).
    """

    width: int
    height: int
    frames: int
    fps: float


def not_a_video(path: Path, why: str) -> MediaError:
    """The error for a file that cannot be read as a video, saying why."""
    return MediaError(
        f"{path.name} is not a readable video: {why}.",
        f"Flow Studio reads {SUPPORTED_CONTAINERS}, such as the videos it exports.",
    )


def _box_header(data: bytes, pos: int, end: int) -> tuple[bytes, int, int] | None:
    """Parse the box header at ``pos``: ``(type, payload start, box end)``; None if malformed."""
    if pos + 8 > end:
        return None
    size, kind = struct.unpack_from(">I4s", data, pos)
    header = 8
    if size == 1:
        if pos + 16 > end:
            return None
        size, header = struct.unpack_from(">Q", data, pos + 8)[0], 16
    elif size == 0:
        size = end - pos
    if size < header or pos + size > end:
        return None
    return kind, pos + header, pos + size


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """The boxes in ``data[start:end]`` as ``(type, payload start, box end)``."""
    pos = start
    while (box := _box_header(data, pos, end)) is not None:
        yield box
        pos = box[2]


def _span(data: bytes, start: int, end: int, *kinds: bytes) -> tuple[int, int]:
    """The payload span of the nested box ``kinds[0]/kinds[1]/…``; ``(0, 0)`` if absent."""
    for kind in kinds:
        for box_kind, payload, box_end in _boxes(data, start, end):
            if box_kind == kind:
                start, end = payload, box_end
                break
        else:
            return _EMPTY
    return start, end


def read_moov(path: Path) -> bytes:
    """The ``moov`` box (header included) of an ISO base media file, skipping everything else.

    Raises:
        MediaError: unreadable, empty, not an ISO base media file, damaged, or without ``moov``.
    """
    try:
        with open(path, "rb") as f:
            file_size = os.fstat(f.fileno()).st_size
            if file_size == 0:
                raise not_a_video(path, "the file is empty")
            pos = 0
            while pos < file_size:
                f.seek(pos)
                box = _box_header(f.read(16).ljust(16, b"\0"), 0, file_size - pos)
                if box is None or (pos == 0 and box[0] not in _TOP_LEVEL_BOXES):
                    why = "it is not an MP4 file" if pos == 0 else "it is damaged"
                    raise not_a_video(path, why)
                kind, _, size = box
                if kind == b"moov":
                    if size > _MAX_MOOV_BYTES:
                        raise not_a_video(path, "its header is implausibly large")
                    f.seek(pos)
                    return f.read(size)
                pos += size
    except OSError as e:
        raise MediaError(f"Cannot read {path}: {e.strerror or e}.", "Check the file.") from e
    raise not_a_video(path, "it has no movie header (an incomplete or interrupted file?)")


def comment_tag(moov: bytes) -> str | None:
    """The text of the ``comment`` tag (``moov/udta/meta/ilst/©cmt/data``), or None."""
    start, end = _span(moov, 0, len(moov), b"moov", b"udta", b"meta")
    if moov[start + 4 : start + 8] != b"hdlr":
        start += 4  # an ISO 'meta' is a full box (version + flags); QuickTime's is not
    start, end = _span(moov, start, end, b"ilst", b"\xa9cmt", b"data")
    if end - start < 8 or struct.unpack_from(">I", moov, start)[0] != 1:  # 1 = UTF-8 text
        return None
    return moov[start + 8 : end].decode("utf-8", "replace")


def _sample_table(moov: bytes, stts: tuple[int, int]) -> tuple[int, int]:
    """``(frames, duration in timescale units)`` from a ``stts`` (time-to-sample) box."""
    start, end = stts
    if end - start < 8:
        return 0, 0
    (entries,) = struct.unpack_from(">I", moov, start + 4)
    entries = min(entries, (end - start - 8) // 8)
    runs = np.frombuffer(moov, ">u4", entries * 2, start + 8).astype(np.int64).reshape(-1, 2)
    return int(runs[:, 0].sum()), int((runs[:, 0] * runs[:, 1]).sum())  # (count, delta) runs


def video_track(moov: bytes) -> VideoTrack | None:
    """The first video track described in ``moov``, or None if it has none."""
    for kind, start, end in _boxes(moov, *_span(moov, 0, len(moov), b"moov")):
        if kind != b"trak":
            continue
        mdia = _span(moov, start, end, b"mdia")
        hdlr = _span(moov, *mdia, b"hdlr")
        if hdlr[1] - hdlr[0] < 12 or moov[hdlr[0] + 8 : hdlr[0] + 12] != b"vide":
            continue
        mdhd = _span(moov, *mdia, b"mdhd")
        stbl = _span(moov, *mdia, b"minf", b"stbl")
        stsd = _span(moov, *stbl, b"stsd")
        entry = _box_header(moov, stsd[0] + 8, stsd[1]) if stsd[1] - stsd[0] > 8 else None
        if mdhd[1] - mdhd[0] < 24 or entry is None or entry[2] - entry[1] < 28:
            return None
        width, height = struct.unpack_from(">HH", moov, entry[1] + 24)
        offset = 20 if moov[mdhd[0]] == 1 else 12  # version 1 has 64-bit times
        (timescale,) = struct.unpack_from(">I", moov, mdhd[0] + offset)
        frames, duration = _sample_table(moov, _span(moov, *stbl, b"stts"))
        fps = timescale * frames / duration if duration > 0 else 0.0
        return VideoTrack(width=width, height=height, frames=frames, fps=fps)
    return None
