"""The demo model's world and its words: shapes, named colours, directions, and the captions.

Captions are built from phrasing templates with synonyms for every colour, shape and motion.
``TRAIN_TEMPLATES`` are used for training; ``EVAL_TEMPLATES`` never are. ``HELD_OUT_COMBOS`` lists
(shape, colour, direction) combinations that training never shows.
"""

from __future__ import annotations

import random
import re

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
