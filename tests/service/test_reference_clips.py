"""Clips as reference frames in the service: inspected like images (size, a thumbnail from the
first frame, plus the frame count), refused when broken or too large, and the rule for a video
the user opens: a recipe if it carries one, else a clip."""

from __future__ import annotations

import numpy as np
import pytest

from studio.errors import MediaError
from studio.media import clip as clip_module
from studio.media.video import read_video, write_video
from studio.service.reference import inspect_reference, is_recipe_video


def _clip(path, frames: int = 9, metadata=None) -> str:
    pixels = np.zeros((frames, 40, 64, 3), np.uint8)
    pixels[..., 0] = np.arange(frames, dtype=np.uint8)[:, None, None] * 25
    pixels[0, :, :32, 1] = 200  # the first frame: green left half
    write_video(path, pixels, 8.0, metadata=metadata, crf=0)
    return str(path)


def test_a_clip_is_inspected_with_its_length_and_first_frame(tmp_path) -> None:
    path = _clip(tmp_path / "walk.mp4")
    info = inspect_reference(path)
    assert (info.frames, info.width, info.height, info.clip) == (9, 64, 40, True)
    first = read_video(path, max_frames=1)[0][0]
    assert np.array_equal(info.thumbnail, first)  # small enough: the first frame as is
    assert info.thumbnail[:, :32, 1].mean() > 150 > info.thumbnail[:, 32:, 1].mean()


def test_broken_and_oversized_clips_are_refused(tmp_path, monkeypatch) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"junk" * 10)
    with pytest.raises(MediaError, match="broken.mp4"):
        inspect_reference(broken)
    with pytest.raises(MediaError, match="does not exist"):
        inspect_reference(tmp_path / "missing.mov")
    path = _clip(tmp_path / "long.mp4")
    monkeypatch.setattr(clip_module, "MAX_CLIP_PIXELS", 64 * 40 * 8)  # 8 frames' worth
    with pytest.raises(MediaError, match="too large: 9 frames of 64 × 40"):
        inspect_reference(path)


def test_a_video_is_a_recipe_only_when_it_carries_one(tmp_path) -> None:
    plain = _clip(tmp_path / "plain.mp4")
    recipe = _clip(tmp_path / "made.mp4", metadata={"recipe_version": 1, "request": {}})
    broken = tmp_path / "broken.mov"
    broken.write_bytes(b"not a video")
    assert is_recipe_video(recipe) and not is_recipe_video(plain)
    assert not is_recipe_video(broken) and not is_recipe_video(tmp_path / "a.png")
