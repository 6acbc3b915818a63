"""``--image clip.mp4@16:0.8``: a clip is taken the same way as an image (its first frame at
FRAME), and the help says so."""

from __future__ import annotations

import pytest

from studio.cli.image_spec import parse_image
from studio.cli.requests import _image_item
from studio.engine.request import ConditioningItem
from tests.cli.test_image_spec import generate_args


def test_a_clip_takes_frame_and_strength_like_an_image() -> None:
    item = parse_image("walk.mp4@16:0.8")
    assert item == ConditioningItem("walk.mp4", 16, 0.8, "fill") and item.clip
    args = generate_args(["--image", r"C:\clips\run@2x.MOV", "--strength", "0.5"])
    (clip,) = [_image_item(text, args) for text in args.image]
    assert clip == ConditioningItem(r"C:\clips\run@2x.MOV", 0, 0.5, "fill") and clip.clip
    assert not parse_image("a.png@16").clip


def test_help_mentions_clips(capsys) -> None:
    with pytest.raises(SystemExit):
        generate_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "image or short clip" in text and "--image walk.mp4@16:0.8" in text
