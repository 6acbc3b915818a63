"""Job thumbnails: size and pixels, atomic writes, the lazy path for older jobs, and the service
writing one when a job finishes."""

from __future__ import annotations

from pathlib import Path

import av
import imageio.v3 as iio
import numpy as np
import pytest

from studio.engine.pipeline import generate
from studio.errors import MediaError
from studio.media.video import write_video
from studio.service.generation import GenerationService
from studio.service.job_folder import JobFolder
from studio.service.thumbnails import (
    ensure_thumbnail,
    middle_index,
    thumbnail_size,
    write_thumbnail,
)
from tests.service.tiny_model import load_tiny, tiny_request


def block_mean(frame: np.ndarray, factor: int) -> np.ndarray:
    """An independent box downscale by an integer factor: ``[H, W, 3]`` → ``[H/f, W/f, 3]``."""
    h, w, _ = frame.shape
    blocks = frame.reshape(h // factor, factor, w // factor, factor, 3).astype(np.float64)
    return blocks.mean(axis=(1, 3))


def gradient_frames(count: int, height: int, width: int) -> np.ndarray:
    """uint8 ``[T, H, W, 3]``: each frame a different smooth pattern (H.264 keeps it well)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    frames = []
    for k in range(count):
        r = 128 + 100 * np.sin(x / 23.0 + k)
        g = 128 + 100 * np.cos(y / 17.0 - 0.5 * k)
        b = np.full_like(x, 20.0 * k)
        frames.append(np.stack([r, g, b], axis=-1))
    return np.clip(np.round(frames), 0, 255).astype(np.uint8)


def test_sizes_keep_the_aspect_and_never_upscale() -> None:
    assert thumbnail_size(832, 480) == (160, 92)
    assert thumbnail_size(480, 832) == (92, 160)
    assert thumbnail_size(64, 48) == (64, 48)
    assert thumbnail_size(4000, 10) == (160, 1)
    assert [middle_index(n) for n in (1, 2, 9, 17, 81)] == [0, 0, 4, 8, 40]


def test_written_thumbnail_is_the_box_downscaled_middle_frame(tmp_path: Path) -> None:
    frames = gradient_frames(5, 192, 320)
    path = write_thumbnail(tmp_path / "thumb.png", frames)
    pixels = iio.imread(path)
    assert pixels.shape == (96, 160, 3) and pixels.dtype == np.uint8
    expected = block_mean(frames[2], 2)
    assert np.abs(pixels.astype(np.float64) - expected).max() <= 1.0
    other = block_mean(frames[1], 2)  # a neighbouring frame differs clearly
    assert np.abs(pixels.astype(np.float64) - other).mean() > 10.0
    assert [p.name for p in tmp_path.iterdir()] == ["thumb.png"]  # no temporary file left


def test_ensure_thumbnail_decodes_an_older_jobs_video_once(tmp_path: Path) -> None:
    frames = gradient_frames(9, 96, 128)
    video = tmp_path / "clip.mp4"
    write_video(video, frames, 8.0)
    folder = tmp_path / "job"
    folder.mkdir()
    path = ensure_thumbnail(folder, video, frames=9)
    assert path == JobFolder(folder).thumbnail
    with av.open(str(video)) as container:  # an independent decoder
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    pixels = iio.imread(path).astype(np.float64)
    assert pixels.shape == (96, 128, 3)  # smaller than the edge: kept as is
    assert np.abs(pixels - decoded[4]).mean() < 2.0
    assert np.abs(pixels - decoded[3]).mean() > 5.0

    stamp = path.stat().st_mtime_ns
    video.unlink()  # an existing thumbnail is returned without touching the video
    assert ensure_thumbnail(folder, video, frames=9) == path
    assert path.stat().st_mtime_ns == stamp

    with pytest.raises(MediaError):
        ensure_thumbnail(tmp_path / "other", tmp_path / "missing.mp4", frames=9)
    with pytest.raises(MediaError, match="no video"):
        ensure_thumbnail(tmp_path / "other", None)


def test_a_finished_job_has_the_thumbnail_of_its_middle_frame(
    service: GenerationService, tiny_dir: Path, _studio_home: Path
) -> None:
    request = tiny_request()
    result = service.run("job-thumb", request)
    path = JobFolder(_studio_home / "jobs" / "job-thumb").thumbnail
    reference = generate(load_tiny(tiny_dir), request).video  # uint8 [T, H, W, 3]
    pixels = iio.imread(path)
    # Made from the frames before H.264 encoding: exactly the middle frame (32×24 is small).
    assert np.array_equal(pixels, reference[middle_index(result.frames)])
