"""Clips in the reference panel: a video without a recipe dropped on the window or the drop
zone becomes a clip keyframe whose row shows its first frame and "clip, N frames"; a video
carrying a recipe still opens as a recipe."""

from __future__ import annotations

import numpy as np
from PIL import Image

from studio.app.file_actions import is_recipe_file
from studio.app.keyframe_list import kind_label
from studio.engine.request import ConditioningItem
from studio.media.video import write_video
from studio.service.reference import inspect_reference

from .test_panels import drop_files


def _clip(path, frames: int, metadata=None) -> str:
    pixels = np.full((frames, 64, 96, 3), 90, np.uint8)
    write_video(path, pixels, 8.0, metadata=metadata)
    return str(path.resolve())


def test_a_plain_video_dropped_on_the_window_becomes_a_clip_keyframe(make_window, qtbot,
                                                                     tmp_path):
    window = make_window()
    panel = window.reference_panel
    window.prompt_panel.size.set_values(96, 64, 25)
    clip = _clip(tmp_path / "walk.mp4", 17)
    drop_files(window, clip)
    qtbot.waitUntil(lambda: len(panel.rows) == 1, timeout=10_000)
    (row,) = panel.rows
    assert panel.items() == (ConditioningItem(clip, 0, 1.0, "fill"),)
    assert row.kind.text() == "clip, 17 frames" and row.image.frames == 17
    assert not row.thumbnail.isNull() and row.thumbnail.width() == 96
    short = _clip(tmp_path / "short.mov", 9)
    drop_files(panel.drop_zone, short)  # the drop zone takes clips too
    qtbot.waitUntil(lambda: len(panel.rows) == 2, timeout=10_000)
    assert panel.rows[1].kind.text() == "clip, 9 frames" and panel.items()[1].clip


def test_the_recipe_or_clip_rule(tmp_path):
    plain = _clip(tmp_path / "plain.mp4", 5)
    made = _clip(tmp_path / "made.mp4", 5, metadata={"recipe_version": 1, "request": {}})
    recipe = tmp_path / "r.json"
    recipe.write_text("{}")
    assert is_recipe_file(made) and is_recipe_file(recipe)
    assert not is_recipe_file(plain) and not is_recipe_file(tmp_path / "a.png")


def test_rows_say_what_they_hold(tmp_path):
    image = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(image)
    assert kind_label(inspect_reference(image)) == "image"
    assert kind_label(inspect_reference(_clip(tmp_path / "c.mp4", 5))) == "clip, 5 frames"


def test_a_later_clip_is_placed_where_it_fits(make_window, qtbot, tmp_path):
    """After a first keyframe, the next would go to the last frame, where a clip cannot start:
    it goes to the latest frame on the model's latent grid from which it fits."""
    from studio.app.keyframe_list import clip_start

    assert clip_start(-1, 9, 25, 8) == 16 and clip_start(8, 9, 25, 8) == 8
    assert clip_start(5, 9, 25, 8) == 16 and clip_start(0, 17, 9, 8) == 0
    window = make_window()
    panel = window.reference_panel
    window.prompt_panel.size.set_values(96, 64, 25)
    image = tmp_path / "first.png"
    Image.fromarray(np.full((64, 96, 3), 200, np.uint8)).save(image)
    drop_files(panel.drop_zone, image)
    qtbot.waitUntil(lambda: len(panel.rows) == 1, timeout=10_000)
    drop_files(panel.drop_zone, _clip(tmp_path / "walk.mp4", 9))
    qtbot.waitUntil(lambda: len(panel.rows) == 2, timeout=10_000)
    r = window._info.geometry.temporal_factor
    start = panel.items()[1].frame_index
    assert start == (25 - 9) // r * r and start + 9 <= 25
