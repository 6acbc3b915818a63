"""The demo model's vocabulary as a contract: every word its captions use is listed, its example
prompts are captions of combinations it was trained on, and the loaded models (demo, Wan, LTX,
Open-Sora) hand their examples and vocabulary through ``model_info`` to the GUI."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest
import torch

from studio.models.demo.vocabulary import (
    BACKGROUND_PHRASES,
    BACKGROUND_WORDS,
    BACKGROUNDS,
    COLOUR_WORDS,
    COLOURS,
    DIRECTIONS,
    EVAL_TEMPLATES,
    HELD_OUT_COMBOS,
    MOTION_WORDS,
    PROMPT_EXAMPLES,
    SHAPE_WORDS,
    SHAPES,
    TRAIN_TEMPLATES,
    VOCABULARY,
    Meaning,
    caption,
    read_caption,
    words,
)
from studio.service.model_info import model_info

COMBOS = list(itertools.product(SHAPES, COLOURS, DIRECTIONS, BACKGROUNDS))


def test_every_word_of_every_caption_is_in_the_vocabulary() -> None:
    """Every template filled with every synonym, and every background phrase with every
    background word, after the "a"/"an" rule: no word is missing."""
    fillings = list(itertools.product(
        [p for g in COLOUR_WORDS.values() for p in g], [p for g in SHAPE_WORDS.values() for p in g],
        [p for g in MOTION_WORDS.values() for p in g]))
    heads = {t.format(colour=c, shape=s, motion=m) for t in TRAIN_TEMPLATES + EVAL_TEMPLATES
             for c, s, m in fillings}  # fmt: skip
    tails = {p.format(bg=b) for p in BACKGROUND_PHRASES for g in BACKGROUND_WORDS.values()
             for b in g}  # fmt: skip
    used = {w for text in heads | tails for w in words(text)} | {"an"}
    assert used == VOCABULARY  # nothing missing, nothing extra
    assert all(w == w.lower() and words(w) == [w] for w in VOCABULARY)
    assert {"leftwards", "backdrop", "coloured", "an", "grey", "snow"} <= VOCABULARY
    assert not {"hexagon", "diagonally", "sunset", "pink", "snow-white"} & VOCABULARY


def test_words_split_on_anything_but_letters() -> None:
    assert words("A snow-white Disc, 2x faster!") == ["a", "snow", "white", "disc", "x", "faster"]


@pytest.mark.parametrize("templates", [TRAIN_TEMPLATES, EVAL_TEMPLATES], ids=["train", "eval"])
def test_read_caption_inverts_caption(templates: tuple[str, ...]) -> None:
    rng = random.Random(0)
    for shape, colour, direction, background in rng.sample(COMBOS, 120):
        text = caption(rng, shape, colour, direction, background, templates, 0.5)
        assert read_caption(text, templates) == Meaning(shape, colour, direction, background), text
        assert set(words(text)) <= VOCABULARY, text


def test_read_caption_refuses_other_text() -> None:
    assert read_caption("a purple hexagon sliding diagonally over a sunset background") is None
    assert read_caption("a clip showing a red dot rising") is None  # an evaluation phrasing
    assert read_caption("a red dot rising on a pink background") is None
    assert read_caption("A  Red DOT rising") == Meaning("circle", "red", "up", "black")


def test_the_examples_are_training_captions_of_trained_combinations() -> None:
    assert 6 <= len(PROMPT_EXAMPLES) <= 10 and len(set(PROMPT_EXAMPLES)) == len(PROMPT_EXAMPLES)
    meanings = [read_caption(e) for e in PROMPT_EXAMPLES]
    assert all(m is not None for m in meanings), dict(zip(PROMPT_EXAMPLES, meanings, strict=True))
    assert not {(m.shape, m.colour, m.direction) for m in meanings} & HELD_OUT_COMBOS
    assert all(m.colour != m.background for m in meanings)  # the shape stays visible
    for field in ("shape", "direction", "background"):  # they show the whole vocabulary
        assert {getattr(m, field) for m in meanings} == set(
            {"shape": SHAPES, "direction": DIRECTIONS, "background": BACKGROUNDS}[field])
    assert all(set(words(e)) <= VOCABULARY for e in PROMPT_EXAMPLES)


def test_the_demo_model_hands_its_vocabulary_and_examples_to_the_gui() -> None:
    from studio.models.demo.loader import load_demo_model

    info = model_info(load_demo_model())
    assert info.vocabulary == VOCABULARY and info.prompt_examples == PROMPT_EXAMPLES
    assert isinstance(info.vocabulary, frozenset) and "circle" in info.prompt_guide


def test_open_vocabulary_families_offer_examples_and_no_vocabulary(tmp_path: Path) -> None:
    from studio.models.ltx import presets as ltx
    from studio.models.ltx.random_model import random_model as random_ltx
    from studio.models.opensora import presets as opensora
    from studio.models.opensora.bench_sizes import SIZES
    from studio.models.opensora.random_model import random_model as random_opensora
    from studio.models.registry import scan
    from studio.models.wan import loader as wan
    from studio.models.wan import presets as wan_presets
    from tests.models.tiny_wan import write_wan_set

    write_wan_set(tmp_path / "wan", "t2v", "original")
    (found,) = scan([tmp_path / "wan"])
    models = {wan_presets.PROMPT_EXAMPLES: wan.load_wan_model(found, "cpu", torch.float32),
              ltx.PROMPT_EXAMPLES: random_ltx("cpu", torch.float32),
              opensora.PROMPT_EXAMPLES: random_opensora(SIZES["opensora-tiny"], "cpu",
                                                        torch.float32)}  # fmt: skip
    for examples, model in models.items():
        info = model_info(model)
        assert info.prompt_examples == examples and 3 <= len(examples) <= 5, model.family
        assert info.vocabulary is None
    assert min(len(e.split()) for e in ltx.PROMPT_EXAMPLES) >= 50  # LTX: long, detailed
