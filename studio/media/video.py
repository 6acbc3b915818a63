"""MP4 export and import: H.264 video with the generation recipe embedded as JSON.

Videos are encoded by the ffmpeg binary that ships with ``imageio-ffmpeg`` (libx264, yuv420p,
BT.709, ``+faststart``), so they play in browsers and common players. The recipe travels in the
container's ``comment`` tag (the MP4 ``©cmt`` item) and is read back by parsing the MP4 boxes,
without decoding any frame. Writing is atomic: a cancelled or failed export leaves no file and
never clobbers an existing one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import imageio_ffmpeg
import numpy as np

from studio.engine.cancel import NEVER, CancelToken
from studio.errors import MediaError
from studio.media.atomic import atomic_path, disk_full_error
from studio.media.json_file import parse_json_text
from studio.media.mp4 import VideoTrack, comment_tag, not_a_video, read_moov, video_track

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------- writing


def _ffmpeg_exe() -> str:
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as e:
        raise MediaError(
            "The bundled ffmpeg program was not found.",
            "Reinstall Flow Studio (or the 'imageio-ffmpeg' package).",
        ) from e


def _popen_kwargs() -> dict[str, Any]:
    """No console window on Windows; on POSIX keep Ctrl-C away from ffmpeg (we stop it)."""
    if os.name == "nt":
        return {"creationflags": subprocess.CREATE_NO_WINDOW}
    return {"start_new_session": True}


def _escape_ffmetadata(value: str) -> str:
    """Escape a value for an ffmetadata file (``=``, ``;``, ``#``, ``\\`` and newlines)."""
    return "".join("\\" + c if c in "=;#\\\n" else c for c in value)


def _encode_command(
    tmp: Path, size: tuple[int, int], fps: float, crf: int, meta_file: Path | None
) -> list[str]:
    width, height = size
    rate = Fraction(fps).limit_denominator(100_000)
    cmd = [_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
    cmd += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(rate)]
    cmd += ["-i", "pipe:0"]
    if meta_file is not None:
        cmd += ["-f", "ffmetadata", "-i", f"file:{meta_file}", "-map_metadata", "1"]
    cmd += ["-map", "0:v:0", "-vf", "scale=out_color_matrix=bt709:out_range=tv"]
    cmd += ["-c:v", "libx264", "-preset", "medium", "-crf", str(crf), "-pix_fmt", "yuv420p"]
    cmd += ["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709"]
    cmd += ["-color_range", "tv", "-movflags", "+faststart", "-f", "mp4", f"file:{tmp}"]
    return cmd


def _pad_to_even(frame: np.ndarray) -> np.ndarray:
    """``[H, W, 3]`` → ``[H + H % 2, W + W % 2, 3]``, repeating the last row / column."""
    pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
    if pad_h or pad_w:
        frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return np.ascontiguousarray(frame)


def _ffmpeg_failure(path: Path, err: IO[bytes], returncode: int) -> MediaError:
    err.seek(0)
    text = err.read().decode("utf-8", "replace").strip()
    log.warning("ffmpeg failed (exit %s) writing %s:\n%s", returncode, path, text)
    if "No space left on device" in text:
        return disk_full_error(path)
    last = text.splitlines()[-1] if text else f"exit status {returncode}"
    return MediaError(
        f"The video {path.name} could not be encoded: {last}",
        "Check that the output folder is writable and has free space; "
        "the log file has ffmpeg's full message.",
    )


def _encode(cmd: list[str], target: Path, frames: np.ndarray, cancel: CancelToken) -> None:
    """Pipe ``frames`` (uint8 ``[T, H, W, 3]``) into ffmpeg; stop it on any exception."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err, **_popen_kwargs()
        )
        assert proc.stdin is not None
        try:
            for frame in frames:
                cancel.check()
                proc.stdin.write(memoryview(_pad_to_even(frame)).cast("B"))
            cancel.check()
            proc.stdin.close()
            returncode = proc.wait()
        except BrokenPipeError:
            returncode = proc.wait()  # ffmpeg quit early; its message explains why
        except BaseException:
            proc.kill()
            raise
        finally:
            with contextlib.suppress(OSError):  # nothing left to flush into a stopped ffmpeg
                proc.stdin.close()
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        if returncode != 0:
            raise _ffmpeg_failure(target, err, returncode)


def check_video_target(path: str | os.PathLike[str]) -> Path:
    """The absolute path of a video to write, checked before any work is spent on it.

    Raises:
        MediaError: the name does not end in ``.mp4`` (the recipe is written beside it with
            ``.json``, which must never be the video itself), the folder does not exist or is
            not writable, or the path is an existing folder.
    """
    target = Path(path).expanduser().absolute()
    if target.suffix.lower() != ".mp4":
        raise MediaError(f"{target} does not end in .mp4",
                         "name the output video something.mp4 (its recipe goes beside it as "
                         "something.json)")
    if target.is_dir():
        raise MediaError(f"{target} is a folder", "give a file name ending in .mp4")
    folder = target.parent
    if not folder.is_dir():
        raise MediaError(f"the folder {folder} does not exist", "create it or choose another")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise MediaError(f"the folder {folder} is not writable", "choose another folder")
    return target


def write_video(
    path: str | os.PathLike[str],
    frames: np.ndarray,
    fps: float,
    *,
    metadata: dict[str, Any] | None = None,
    crf: int = 18,
    cancel: CancelToken = NEVER,
) -> None:
    """Encode ``frames`` as an H.264 MP4 at ``path``, atomically, with ``metadata`` embedded.

    Args:
        path: the output file (``.mp4``); an existing file is replaced only on success.
        frames: uint8 RGB frames ``[T, H, W, 3]``, T ≥ 1. Odd widths or heights are padded to
            the next even number by repeating the last column / row (yuv420p needs even sizes),
            so such a video is one pixel wider / taller than ``frames``.
        fps: frames per second (> 0), stored exactly as a fraction.
        metadata: a JSON-serialisable dict (the recipe), stored as JSON in the ``comment`` tag;
            read it back with :func:`read_video_metadata`.
        crf: x264 constant rate factor, 0 (lossless) … 51; 18 is visually transparent.
        cancel: checked between frames; :class:`~studio.errors.Cancelled` leaves no file.

    Raises:
        MediaError: ffmpeg failed, the disk is full, or the folder is not writable.
        Cancelled: the token was set; nothing was written.
    """
    assert isinstance(frames, np.ndarray) and frames.dtype == np.uint8, "frames must be uint8"
    assert frames.ndim == 4 and frames.shape[-1] == 3 and frames.shape[0] >= 1, frames.shape
    assert fps > 0 and np.isfinite(fps), fps
    assert 0 <= crf <= 51, crf
    target = Path(path).absolute()
    height, width = frames.shape[1] + frames.shape[1] % 2, frames.shape[2] + frames.shape[2] % 2
    meta_text = None
    if metadata is not None:
        meta_text = json.dumps(metadata, ensure_ascii=False, allow_nan=False)
    cancel.check()
    with tempfile.TemporaryDirectory(prefix="studio-meta-") as meta_dir:
        meta_file = None
        if meta_text is not None:
            meta_file = Path(meta_dir) / "recipe.ffmeta"
            meta_file.write_text(
                f";FFMETADATA1\ncomment={_escape_ffmetadata(meta_text)}\n", encoding="utf-8"
            )
        with atomic_path(target) as tmp:
            cmd = _encode_command(tmp, (width, height), fps, crf, meta_file)
            _encode(cmd, target, frames, cancel)
    log.info("Wrote %s (%d frames, %dx%d, %.3g fps)", target, len(frames), width, height, fps)


# ----------------------------------------------------------------------------------- reading


def _existing_file(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.is_file():
        what = "is a folder, not a video" if p.is_dir() else "does not exist"
        raise MediaError(f"{p} {what}.", "Choose an MP4 video file.")
    return p


def _recipe(source: Path, moov: bytes) -> dict[str, Any] | None:
    comment = comment_tag(moov)
    if comment is None:
        return None
    try:
        value = parse_json_text(comment)
    except ValueError:
        log.debug("%s has a comment that is not a JSON recipe", source)
        return None
    return value if isinstance(value, dict) else None


def read_video_metadata(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The metadata dict embedded by :func:`write_video`, or None if the video carries none.

    Only the MP4 header is read; no frame is decoded.

    Raises:
        MediaError: the file is missing, unreadable, or not an MP4/MOV file.
    """
    source = _existing_file(path)
    return _recipe(source, read_moov(source))


def _read_exactly(stream: IO[bytes], buffer: memoryview) -> bool:
    """Fill ``buffer`` from ``stream``; False if the stream ended first."""
    filled = 0
    while filled < len(buffer):
        n = stream.readinto(buffer[filled:])  # type: ignore[attr-defined]
        if not n:
            return False
        filled += n
    return True


def _decode(source: Path, track: VideoTrack, count: int) -> np.ndarray:
    """Decode the first ``count`` frames of ``track`` to uint8 RGB ``[T ≤ count, H, W, 3]``."""
    cmd = [_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-noautorotate"]
    cmd += ["-i", f"file:{source.absolute()}", "-map", "0:v:0", "-frames:v", str(count)]
    cmd += ["-vf", f"scale={track.width}:{track.height}", "-f", "rawvideo", "-pix_fmt", "rgb24"]
    frames = np.empty((count, track.height, track.width, 3), np.uint8)
    done = 0
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [*cmd, "pipe:1"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            **_popen_kwargs(),
        )
        assert proc.stdout is not None
        try:
            while done < count and _read_exactly(proc.stdout, memoryview(frames[done]).cast("B")):
                done += 1
        finally:
            proc.stdout.close()
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        if done < count:
            err.seek(0)
            text = err.read().decode("utf-8", "replace")
            log.warning("ffmpeg decoded %d of %d frames of %s:\n%s", done, count, source, text)
    return frames[:done]


def read_video(
    path: str | os.PathLike[str], *, max_frames: int | None = None
) -> tuple[np.ndarray, float, dict[str, Any] | None]:
    """Decode a video made by :func:`write_video` (or any MP4/MOV with a video track).

    Frames are returned as stored: a rotation flag in the file is not applied.

    Args:
        path: the video file.
        max_frames: decode at most this many frames (None: all).

    Returns:
        ``(frames, fps, metadata)``: uint8 RGB frames ``[T, H, W, 3]``, the mean frame rate of
        the video track (frames per second) and the embedded metadata dict or None.

    Raises:
        MediaError: missing, unreadable, not an MP4/MOV file, or no decodable video track.
    """
    assert max_frames is None or max_frames >= 1, max_frames
    source = _existing_file(path)
    moov = read_moov(source)
    track = video_track(moov)
    if track is None or min(track.frames, track.width, track.height) == 0:
        raise not_a_video(source, "it has no video track")
    count = track.frames if max_frames is None else min(track.frames, max_frames)
    frames = _decode(source, track, count)
    if len(frames) == 0:
        raise not_a_video(source, "its video track could not be decoded")
    return frames, track.fps, _recipe(source, moov)
