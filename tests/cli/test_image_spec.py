"""``--image PATH[@FRAME][:STRENGTH]``: each keyframe's own frame and strength, the defaults
for what it leaves out, paths that hold ':' and '@', and a specific error for a malformed one."""

from __future__ import annotations

import argparse

import pytest

from studio.cli.generate import add_generate
from studio.cli.image_spec import IMAGE_FORM, parse_image
from studio.cli.requests import _image_item
from studio.engine.request import ConditioningItem
from studio.errors import InvalidRequest


def generate_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="studio")
    add_generate(parser.add_subparsers())
    return parser.parse_args(["generate", *argv])


@pytest.mark.parametrize(("text", "expected"), [
    ("a.png", ConditioningItem("a.png", 0, 1.0, "fill")),
    ("a.png@0", ConditioningItem("a.png", 0, 1.0, "fill")),
    ("b.png@-1:0.5", ConditioningItem("b.png", -1, 0.5, "fill")),
    ("c.png@48:0.8", ConditioningItem("c.png", 48, 0.8, "fill")),
    ("d.png:0.25", ConditioningItem("d.png", 0, 0.25, "fill")),
    ("e.png:1", ConditioningItem("e.png", 0, 1.0, "fill")),
    ("e.png:.5", ConditioningItem("e.png", 0, 0.5, "fill")),
    ("photo@2x.png", ConditioningItem("photo@2x.png", 0, 1.0, "fill")),
    ("photo@2x.png@7", ConditioningItem("photo@2x.png", 7, 1.0, "fill")),
    ("a:b.png@3", ConditioningItem("a:b.png", 3, 1.0, "fill")),
    (r"C:\x.png", ConditioningItem(r"C:\x.png", 0, 1.0, "fill")),
    (r"C:\x.png@-1", ConditioningItem(r"C:\x.png", -1, 1.0, "fill")),
    (r"C:\refs\x.png@12:0.3", ConditioningItem(r"C:\refs\x.png", 12, 0.3, "fill")),
    (r"D:\x.png:0", ConditioningItem(r"D:\x.png", 0, 0.0, "fill")),
])
def test_each_image_carries_its_own_frame_and_strength(text, expected) -> None:
    assert parse_image(text) == expected


def test_what_an_image_leaves_out_takes_image_frame_strength_and_fit() -> None:
    args = generate_args(["--image", "a.png", "--image", "b.png@5", "--image", "c.png:0.7",
                          "--image", r"C:\d.png@-1:0.2", "--image-frame", "-1",
                          "--strength", "0.9", "--fit", "fit"])
    assert [_image_item(text, args) for text in args.image] == [
        ConditioningItem("a.png", -1, 0.9, "fit"),
        ConditioningItem("b.png", 5, 0.9, "fit"),
        ConditioningItem("c.png", -1, 0.7, "fit"),
        ConditioningItem(r"C:\d.png", -1, 0.2, "fit"),
    ]


@pytest.mark.parametrize(("text", "problem"), [
    ("a.png@1.5", "the frame '1.5' is not an integer"),
    ("a.png@", "the frame '' is not an integer"),
    ("a.png@0:", "nothing follows ':'"),
    ("a.png@0:1.5", "the strength 1.5 is outside 0…1"),
    ("a.png:-0.1", "the strength -0.1 is outside 0…1"),
    ("a.png@2:strong", "the strength 'strong' is not a number"),
    ("@3", "the image path is missing"),
    (":0.5", "the image path is missing"),
    ("@3:0.5", "the image path is missing"),
])
def test_a_malformed_image_names_the_text_and_the_form(text, problem) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_image(text)
    error = caught.value
    assert error.field == "image" and repr(text) in str(error) and problem in str(error)
    assert IMAGE_FORM in error.hint


def test_help_shows_the_form_and_an_example(capsys) -> None:
    with pytest.raises(SystemExit):
        generate_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--image PATH[@FRAME][:STRENGTH]" in text
    assert "--image a.png@0 --image b.png@-1:0.5 --image c.png@48:0.8" in text
    assert "without @FRAME" in text and "without :STRENGTH" in text
