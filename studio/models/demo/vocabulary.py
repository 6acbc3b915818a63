"""The demo model's world and its words: shapes, named colours, directions, and the captions.

Captions are built from phrasing templates with synonyms for every colour, shape and motion.
``TRAIN_TEMPLATES`` are used for training; ``EVAL_TEMPLATES`` never are. ``HELD_OUT_COMBOS`` lists
(shape, colour, direction) combinations that training never shows.
"""

from __future__ import annotations

import random
import re
from typing import NamedTuple

SHAPES = ("circle", "square", "triangle")

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 35, 35),
    "green": (40, 190, 60),
    "blue": (40, 90, 235),
    "yellow": (245, 225, 40),
    "white": (245, 245, 245),
    "orange": (250, 140, 20),
    "purple": (150, 50, 210),
}
"""Named shape colours, sRGB uint8."""

BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "gray": (110, 110, 110),
    "white": (245, 245, 245),
    "navy": (20, 30, 85),
}
"""Plain backgrounds, sRGB uint8. A caption that names no background means black."""

DIRECTIONS: dict[str, tuple[int, int]] = {
    "left": (-1, 0),
    "right": (1, 0),
    "up": (0, -1),
    "down": (0, 1),
    "still": (0, 0),
}
"""Unit motion per direction in image coordinates (x right, y down)."""

COLOUR_WORDS: dict[str, tuple[str, ...]] = {
    "red": ("red", "crimson", "scarlet"),
    "green": ("green", "emerald", "grass-green"),
    "blue": ("blue", "azure", "cobalt"),
    "yellow": ("yellow", "golden", "lemon"),
    "white": ("white", "snow-white", "ivory"),
    "orange": ("orange", "tangerine", "amber"),
    "purple": ("purple", "violet", "plum"),
}

BACKGROUND_WORDS: dict[str, tuple[str, ...]] = {
    "black": ("black", "dark"),
    "gray": ("gray", "grey"),
    "white": ("white", "bright white"),
    "navy": ("navy", "navy blue", "blue", "dark blue"),
}

SHAPE_WORDS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "disc", "ball", "dot"),
    "square": ("square", "box", "block"),
    "triangle": ("triangle", "triangular shape", "wedge"),
}

MOTION_WORDS: dict[str, tuple[str, ...]] = {
    "left": (
        "moving left",
        "drifting to the left",
        "sliding leftwards",
        "heading left",
        "travelling to the left",
    ),
    "right": (
        "moving right",
        "drifting to the right",
        "sliding rightwards",
        "heading right",
        "travelling to the right",
    ),
    "up": ("moving up", "rising", "floating upwards", "climbing", "travelling upwards"),
    "down": ("moving down", "falling", "sinking", "dropping downwards", "travelling downwards"),
    "still": (
        "staying still",
        "not moving",
        "standing still",
        "resting in place",
        "holding its position",
    ),
}

BACKGROUND_PHRASES = (
    "on a {bg} background",
    "against a {bg} backdrop",
    "over a plain {bg} background",
    "with a {bg} background",
)

TRAIN_TEMPLATES = (
    "a {colour} {shape} {motion}",
    "{colour} {shape} {motion}",
    "a {shape} in {colour} {motion}",
    "video of a {colour} {shape} {motion}",
    "there is a {colour} {shape} {motion}",
    "a {colour} {shape} that is {motion}",
)

EVAL_TEMPLATES = (
    "a clip showing a {colour} {shape} {motion}",
    "a {shape}, coloured {colour}, {motion}",
    "animation: one {colour} {shape} {motion}",
)
"""Phrasings reserved for evaluation."""

HELD_OUT_COMBOS = frozenset(
    {
        ("circle", "green", "up"),
        ("circle", "orange", "right"),
        ("circle", "purple", "still"),
        ("circle", "white", "down"),
        ("square", "red", "left"),
        ("square", "yellow", "up"),
        ("square", "blue", "down"),
        ("square", "purple", "right"),
        ("triangle", "blue", "still"),
        ("triangle", "white", "left"),
        ("triangle", "orange", "down"),
        ("triangle", "green", "right"),
    }
)
"""(shape, colour, direction) combinations never shown in training."""

_ARTICLE = re.compile(r"\ba ([aeiou])")


def caption(
    rng: random.Random,
    shape: str,
    colour: str,
    direction: str,
    background: str,
    templates: tuple[str, ...],
    background_share: float = 0.35,
) -> str:
    """A caption for a clip from one of ``templates`` with random synonyms.

    The background is named always when it is not black, and with probability
    ``background_share`` when it is.
    """
    text = rng.choice(templates).format(
        colour=rng.choice(COLOUR_WORDS[colour]),
        shape=rng.choice(SHAPE_WORDS[shape]),
        motion=rng.choice(MOTION_WORDS[direction]),
    )
    if background != "black" or rng.random() < background_share:
        phrase = rng.choice(BACKGROUND_PHRASES)
        text += " " + phrase.format(bg=rng.choice(BACKGROUND_WORDS[background]))
    return _ARTICLE.sub(r"an \1", text)


def prompt_guide() -> str:
    """The demo model's vocabulary in one line: its contract with the person typing."""
    directions = ", ".join(d for d in DIRECTIONS if d != "still")
    backgrounds = ", ".join(b for b in BACKGROUNDS if b != "black")
    return (f"This demo model knows {', '.join(SHAPES)}; colours {', '.join(COLOURS)}; moving "
            f"{directions}, or still; on black (default), {backgrounds}. For example: \"a green "
            "square moving up on a gray background\".")


# --- the vocabulary as a contract: the words, a reader of captions, example prompts -----------

_WORD = re.compile(r"[^\W\d_]+")
_FIELD = re.compile(r"\{(\w+)\}")


def words(text: str) -> list[str]:
    """The lower-case letter runs of ``text`` ("snow-white" → "snow", "white"); digits and
    punctuation separate words, as in the prompt panel's marks."""
    return [word.lower() for word in _WORD.findall(text)]


def _known_words() -> frozenset[str]:
    """Every word a caption can contain: the phrasings (fields removed), every synonym and the
    canonical names, and "an" (the article rule turns "a amber" into "an amber")."""
    phrasings = TRAIN_TEMPLATES + EVAL_TEMPLATES + BACKGROUND_PHRASES
    synonyms = (COLOUR_WORDS, BACKGROUND_WORDS, SHAPE_WORDS, MOTION_WORDS)
    texts = [_FIELD.sub(" ", p) for p in phrasings] + ["an", *SHAPES, *COLOURS, *BACKGROUNDS,
                                                        *DIRECTIONS]
    texts += [phrase for table in synonyms for group in table.values() for phrase in group]
    return frozenset(word for text in texts for word in words(text))


VOCABULARY = _known_words()
"""Every word the demo model was trained or evaluated on, lower case."""


class Meaning(NamedTuple):
    """What a caption asks for, in canonical names."""

    shape: str
    colour: str
    direction: str
    background: str


def _choice(name: str, table: dict[str, tuple[str, ...]]) -> str:
    """A named regex group matching any synonym in ``table`` (longest first)."""
    phrases = sorted({p for group in table.values() for p in group}, key=len, reverse=True)
    return f"(?P<{name}>{'|'.join(map(re.escape, phrases))})"


def _pattern(phrasing: str, fields: dict[str, str]) -> re.Pattern[str]:
    parts = _FIELD.split(phrasing)  # literal, field, literal, field, …
    return re.compile("".join(fields[p] if i % 2 else re.escape(p) for i, p in enumerate(parts)))


_TABLES = {"colour": COLOUR_WORDS, "shape": SHAPE_WORDS, "motion": MOTION_WORDS}
_FIELDS = {name: _choice(name, table) for name, table in _TABLES.items()}
_BACKGROUND_TAILS = [
    _pattern("{head} " + phrase, {"head": "(?P<head>.+)", "bg": _choice("bg", BACKGROUND_WORDS)})
    for phrase in BACKGROUND_PHRASES
]


def _canonical(table: dict[str, tuple[str, ...]], phrase: str) -> str:
    return next(name for name, group in table.items() if phrase in group)


def read_caption(text: str, templates: tuple[str, ...] = TRAIN_TEMPLATES) -> Meaning | None:
    """What a caption written in one of ``templates`` (plus an optional background phrase)
    asks for; None when it is not such a caption. Case and "an"/"a" do not matter."""
    head = re.sub(r"\ban\b", "a", " ".join(text.lower().split()))
    background = "black"  # a caption naming no background means black
    for tail in _BACKGROUND_TAILS:
        if found := tail.fullmatch(head):
            head, background = found["head"], _canonical(BACKGROUND_WORDS, found["bg"])
            break
    for template in templates:
        if found := _pattern(template, _FIELDS).fullmatch(head):
            return Meaning(_canonical(SHAPE_WORDS, found["shape"]),
                           _canonical(COLOUR_WORDS, found["colour"]),
                           _canonical(MOTION_WORDS, found["motion"]), background)
    return None


PROMPT_EXAMPLES = (
    "a red circle moving right",
    "a green square moving up on a gray background",
    "a golden ball falling against a navy backdrop",
    "a violet wedge drifting to the left on a white background",
    "video of an orange box rising over a plain gray background",
    "a blue dot that is standing still on a white background",
    "crimson triangle sliding rightwards",
    "there is a white square sinking with a dark blue background",
)
"""Prompts the demo model does well: training phrasings, combinations it was trained on."""
