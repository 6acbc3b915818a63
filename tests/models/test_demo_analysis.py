"""The demo evaluator's measurements on clips with known answers (and on wrong clips)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from studio.models.demo.analysis import analyse_clip, direction_of, name_colour, psnr, srgb_to_lab
from studio.models.demo.data import ClipSpec, evaluation_examples, render
from studio.models.demo.evaluate import PromptResult, format_report, summarise
from studio.models.demo.vocabulary import COLOURS


def test_ground_truth_clips_are_read_correctly() -> None:
    for example in evaluation_examples(50):
        found = analyse_clip(render(example.spec))
        assert found.colour == example.spec.colour, example.caption
        assert found.direction == example.spec.direction, example.caption
        assert found.area_cv < 0.03
        assert found.found_frames == 17
        assert (found.shape, found.background, found.whole) == (
            example.spec.shape, example.spec.background, True), example.caption


def test_wrong_clips_are_caught() -> None:
    spec = ClipSpec("square", "red", "left", "black", 90.0, 64.0, 14.0, 3.0)
    video = render(spec)
    assert analyse_clip(video).direction == "left"
    assert analyse_clip(video[::-1]).direction == "right"
    assert analyse_clip(video[..., [1, 0, 2]]).colour == "green"  # R ↔ G turns red into green
    assert analyse_clip(np.repeat(video[:1], 17, axis=0)).direction == "still"
    empty = analyse_clip(np.zeros_like(video))
    assert (empty.colour, empty.direction, empty.found_frames) == ("", "", 0)
    assert math.isinf(empty.area_cv)


def test_area_variation_of_a_growing_shape() -> None:
    frames = [
        render(ClipSpec("circle", "green", "still", "black", 64.0, 64.0, r, 0.0), frames=1)[0]
        for r in np.linspace(8.0, 24.0, 17)
    ]
    found = analyse_clip(np.stack(frames))
    areas = np.pi * np.linspace(8.0, 24.0, 17) ** 2
    assert found.area_cv == pytest.approx(areas.std() / areas.mean(), rel=0.03)
    assert found.area_cv > 0.3


def test_shape_found_on_every_background() -> None:
    for background in ("gray", "white", "navy"):
        spec = ClipSpec("triangle", "yellow", "down", background, 64.0, 30.0, 14.0, 3.0)
        found = analyse_clip(render(spec))
        assert (found.colour, found.direction) == ("yellow", "down")
        dx, dy = found.displacement
        assert dx == pytest.approx(0.0, abs=0.5) and dy == pytest.approx(48.0, abs=1.0)


def test_colour_names() -> None:
    for name, rgb in COLOURS.items():
        assert name_colour(rgb) == name
    assert name_colour((180, 20, 30)) == "red"
    assert name_colour((120, 40, 170)) == "purple"
    assert name_colour((255, 170, 60)) == "orange"
    # sRGB white is L* = 100, a* = b* = 0.
    np.testing.assert_allclose(srgb_to_lab(np.array([255.0, 255.0, 255.0])), [100, 0, 0], atol=0.05)


def test_direction_names_and_psnr() -> None:
    assert direction_of(-40.0, 5.0, 128) == "left"
    assert direction_of(3.0, -30.0, 128) == "up"
    assert direction_of(5.0, 5.0, 128) == "still"
    a = np.full((8, 8, 3), 100, np.uint8)
    assert psnr(a, a + 5) == pytest.approx(20 * math.log10(255 / 5))
    assert math.isinf(psnr(a, a))


def test_summary_and_table() -> None:
    results = [
        PromptResult("a red circle moving left", False, "red", "left", "red", "left", 0.05, None),
        PromptResult("a blue box rising", False, "blue", "up", "purple", "up", 0.1, None),
        PromptResult("a red circle moving left", True, "red", "left", "red", "down", 0.2, 32.0),
        PromptResult("a white dot", True, "white", "still", "", "", math.inf, 28.0),
    ]
    report = summarise(results, steps=20, guidance=5.0, seed=0)
    assert report.colour_accuracy == 0.5
    assert report.direction_accuracy == 0.5
    assert report.first_frame_psnr == pytest.approx(30.0)
    assert report.area_cv == pytest.approx((0.05 + 0.1 + 0.2 + 1.0) / 4)
    assert report.passed() == {
        "colour": False,
        "direction": False,
        "first_frame_psnr": True,
        "area_cv": False,
    }
    table = format_report(report)
    assert "purple≠blue" in table and "MISSED" in table and "30.0 dB" in table
    assert report.to_dict()["results"][3]["area_cv"] is None


def test_shapes_are_told_apart_by_how_much_of_their_box_they_fill() -> None:
    for shape in ("circle", "square", "triangle"):
        for radius in (9.0, 14.0, 22.0):
            spec = ClipSpec(shape, "orange", "still", "navy", 64.0, 64.0, radius, 0.0)
            found = analyse_clip(render(spec))
            assert (found.shape, found.background) == (shape, "navy"), (shape, radius)


def test_a_shape_that_fades_shrinks_or_vanishes_is_not_whole() -> None:
    spec = ClipSpec("square", "white", "right", "gray", 40.0, 64.0, 14.0, 2.0)
    video = render(spec)
    assert analyse_clip(video).whole
    gone = video.copy()
    gone[9:] = gone[9:, :3, :3][:, :1, :1]  # the shape disappears halfway: background only
    assert not analyse_clip(gone).whole
    small = np.stack([render(ClipSpec("square", "white", "still", "gray", 64.0, 64.0, r, 0.0),
                             frames=1)[0] for r in np.linspace(14.0, 6.0, 17)])  # fmt: skip
    assert analyse_clip(small).found_frames == 17 and not analyse_clip(small).whole


def test_the_property_table_splits_text_and_image_runs() -> None:
    want = dict(want_colour="red", want_direction="left", want_shape="square",
                want_background="gray")  # fmt: skip
    right = dict(got_colour="red", got_direction="left", got_shape="square",
                 got_background="gray", whole=True)  # fmt: skip
    results = [
        PromptResult("t1", False, area_cv=0.0, first_frame_psnr=None,
                     **{**want, **right}),
        PromptResult("t2", False, area_cv=0.0, first_frame_psnr=None,
                     **{**want, **right, "got_shape": "circle"}),
        PromptResult("i1", True, area_cv=0.0, first_frame_psnr=35.0,
                     **{**want, **right, "whole": False}),
    ]  # fmt: skip
    report = summarise(results, steps=20, guidance=5.0, seed=0)
    text, image = report.properties(image=False), report.properties(image=True)
    assert (text["shape"], text["all five"], text["colour"]) == (0.5, 0.5, 1.0)
    assert (image["whole"], image["all five"], image["shape"]) == (0.0, 0.0, 1.0)
    table = format_report(report)
    assert "all five" in table and "text-to-video" in table and "image-to-video" in table
    assert report.to_dict()["properties"]["text_to_video"]["shape"] == 0.5


def test_the_report_says_which_shape_was_read_for_each_asked_shape() -> None:
    def clip(prompt: str, image: bool, want: str, got: str) -> PromptResult:
        return PromptResult(prompt, image, "red", "left", "red", "left", 0.0, None,
                            want_shape=want, got_shape=got)  # fmt: skip

    results = [clip("a", False, "square", "circle"), clip("b", False, "square", "circle"),
               clip("c", False, "square", "triangle"), clip("d", False, "circle", ""),
               clip("e", True, "square", "square")]  # fmt: skip
    report = summarise(results, steps=20, guidance=5.0, seed=0)
    assert report.shape_readings(image=False) == {"square": {"circle": 2, "triangle": 1},
                                                  "circle": {"none": 1}}  # fmt: skip
    assert report.to_dict()["shape_readings"]["image_to_video"] == {"square": {"square": 1}}
    text = format_report(report)
    assert "text-to-video: asked square (3), read as circle 2, triangle 1" in text
    assert "text-to-video: asked circle (1), read as none 1" in text
    assert "image-to-video: asked square (1), read as square 1" in text
