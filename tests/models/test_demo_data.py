"""The demo model's procedural data: determinism, geometry, captions and the held-out split."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest

from studio.models.demo.data import (
    FRAMES,
    MARGIN,
    SIZE,
    ClipSpec,
    evaluation_examples,
    is_held_out,
    random_spec,
    render,
    signed_distance,
    training_examples,
)
from studio.models.demo.vocabulary import (
    BACKGROUNDS,
    COLOURS,
    DIRECTIONS,
    EVAL_TEMPLATES,
    HELD_OUT_COMBOS,
    SHAPES,
    TRAIN_TEMPLATES,
)

EVAL_MARKERS = ("a clip showing", ", coloured", "animation: one")


def test_same_seed_same_clips_and_captions() -> None:
    a, b = training_examples(40, seed=3, captions_per_clip=2), training_examples(40, 3, 2)
    assert a == b
    assert np.array_equal(render(a[5].spec), render(b[5].spec))
    c = training_examples(40, seed=4, captions_per_clip=2)
    assert [e.caption for e in a] != [e.caption for e in c]
    assert evaluation_examples(20) == evaluation_examples(20)


def test_training_never_sees_held_out_combinations_or_phrasings() -> None:
    examples = training_examples(600, seed=0, captions_per_clip=2)
    assert not any(is_held_out(e.spec.shape, e.spec.colour, e.spec.direction) for e in examples)
    assert not any(marker in e.caption for e in examples for marker in EVAL_MARKERS)
    # Every training combination appears (the first pass walks through all of them).
    combos = {(e.spec.shape, e.spec.colour, e.spec.direction) for e in examples}
    assert len(combos) == len(SHAPES) * len(COLOURS) * len(DIRECTIONS) - len(HELD_OUT_COMBOS)


def test_evaluation_uses_held_out_combinations_or_phrasings() -> None:
    examples = evaluation_examples(50)
    held = [is_held_out(e.spec.shape, e.spec.colour, e.spec.direction) for e in examples]
    new_phrasing = [any(m in e.caption for m in EVAL_MARKERS) for e in examples]
    assert all(h or p for h, p in zip(held, new_phrasing, strict=True))
    assert sum(held) == 25 and sum(new_phrasing) >= 25
    assert {c for c in HELD_OUT_COMBOS} <= {
        (e.spec.shape, e.spec.colour, e.spec.direction) for e in examples
    }
    assert set(TRAIN_TEMPLATES).isdisjoint(EVAL_TEMPLATES)


def test_captions_name_the_clip_and_a_non_black_background() -> None:
    for example in training_examples(200, seed=1):
        spec, text = example.spec, example.caption
        assert spec.background != spec.colour
        for article, initial in re.findall(r"\b(an?) (\w)", text):
            assert (article == "an") == (initial in "aeiou"), text
        if spec.background != "black":
            assert "background" in text or "backdrop" in text


@pytest.mark.parametrize("direction", list(DIRECTIONS))
def test_shape_stays_inside_the_frame_and_moves_as_asked(direction: str) -> None:
    rng = random.Random(direction)
    for shape in SHAPES:
        spec = random_spec(rng, shape, "red", direction, "black")
        video = render(spec)
        assert video.shape == (FRAMES, SIZE, SIZE, 3) and video.dtype == np.uint8
        lit = video.max(axis=-1) > 0
        for frame in lit:
            ys, xs = np.nonzero(frame)
            assert xs.min() >= MARGIN and ys.min() >= MARGIN
            assert xs.max() < SIZE - MARGIN and ys.max() < SIZE - MARGIN
        dx, dy = DIRECTIONS[direction]
        first, last = np.argwhere(lit[0]).mean(0), np.argwhere(lit[-1]).mean(0)
        moved = last - first  # (row, column)
        expected = np.array([dy, dx]) * spec.speed * (FRAMES - 1)
        np.testing.assert_allclose(moved, expected, atol=1.0)


def test_render_is_anti_aliased_with_exact_colours() -> None:
    spec = ClipSpec("circle", "orange", "still", "navy", 64.0, 64.0, 15.0, 0.0)
    frame = render(spec)[0].astype(int)
    assert tuple(frame[64, 64]) == COLOURS["orange"]
    assert tuple(frame[2, 2]) == BACKGROUNDS["navy"]
    # Along a row through the centre the red channel ramps from navy to orange over ~1 px.
    row = frame[64, :, 0]
    partial = [
        (v, i) for i, v in enumerate(row) if BACKGROUNDS["navy"][0] < v < COLOURS["orange"][0]
    ]
    assert 1 <= len(partial) <= 4
    # Area close to π r².
    coverage = (frame[..., 0] - 20) / (250 - 20)
    assert coverage.sum() == pytest.approx(np.pi * 15.0**2, rel=0.01)


def test_signed_distance_reference_points() -> None:
    z = np.zeros(1)
    assert signed_distance("circle", z + 3.0, z + 4.0, 5.0)[0] == pytest.approx(0.0)
    assert signed_distance("square", z + 10.0, z, 10.0)[0] == pytest.approx(10.0 - 8.5)
    # Triangle (circumradius 12): apex at (0, −12) is on the edge; the centre is inside by the
    # inradius, half the circumradius.
    assert signed_distance("triangle", z, z - 12.0, 10.0)[0] == pytest.approx(0.0, abs=1e-9)
    assert signed_distance("triangle", z, z, 10.0)[0] == pytest.approx(-6.0)
