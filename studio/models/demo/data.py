"""Procedural training data for the demo model: moving shapes, their captions, a held-out split.

A clip is a :class:`ClipSpec` (shape, colour, direction, background, start, size, speed) rendered
to ``frames`` × ``size`` × ``size`` RGB pixels with anti-aliased edges (coverage from a signed
distance). Every clip has captions drawn from varied phrasings and synonyms. Some phrasings and
some (shape, colour, direction) combinations are never used for training; the evaluation prompts
are built from them. Everything is deterministic from a seed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from studio.models.demo.vocabulary import (
    BACKGROUNDS,
    COLOURS,
    DIRECTIONS,
    EVAL_TEMPLATES,
    HELD_OUT_COMBOS,
    SHAPES,
    TRAIN_TEMPLATES,
    caption,
)

FRAMES = 17
SIZE = 128
MARGIN = 4
"""Pixels kept free between the shape's bounding box and the frame edge, on every frame."""


@dataclass(frozen=True, slots=True)
class ClipSpec:
    """One procedural clip.

    Attributes:
        shape: one of :data:`SHAPES`.
        colour: one of :data:`COLOURS` (the shape's colour).
        direction: one of :data:`DIRECTIONS` ("still" does not move).
        background: one of :data:`BACKGROUNDS`, never the shape's colour.
        x, y: centre on frame 0, pixels (x to the right, y down).
        radius: half the shape's extent, pixels.
        speed: pixels per frame along the direction (0 for "still").
    """

    shape: str
    colour: str
    direction: str
    background: str
    x: float
    y: float
    radius: float
    speed: float

    def centre(self, frame: int) -> tuple[float, float]:
        """Centre ``(x, y)`` in pixels at ``frame``."""
        dx, dy = DIRECTIONS[self.direction]
        return self.x + dx * self.speed * frame, self.y + dy * self.speed * frame


@dataclass(frozen=True, slots=True)
class Example:
    """A clip and its caption."""

    spec: ClipSpec
    caption: str


def random_spec(
    rng: random.Random,
    shape: str,
    colour: str,
    direction: str,
    background: str = "black",
    frames: int = FRAMES,
    size: int = SIZE,
) -> ClipSpec:
    """Draw size, speed and a start so that the shape stays ``MARGIN`` px inside every frame."""
    radius = rng.uniform(11.0, 17.0)
    speed = 0.0 if direction == "still" else rng.uniform(2.6, 3.8)
    dx, dy = DIRECTIONS[direction]
    travel = speed * (frames - 1)
    low, high = MARGIN + radius + 1.0, size - MARGIN - radius - 1.0
    x = _start(rng, low, high, dx * travel)
    y = _start(rng, low, high, dy * travel)
    return ClipSpec(shape, colour, direction, background, x, y, radius, speed)


def _start(rng: random.Random, low: float, high: float, travel: float) -> float:
    """A start coordinate whose whole path ``start … start + travel`` lies in ``[low, high]``."""
    lo, hi = (low, high - travel) if travel >= 0 else (low - travel, high)
    assert lo <= hi, "the path does not fit in the frame"
    return rng.uniform(lo, hi)


def render(spec: ClipSpec, frames: int = FRAMES, size: int = SIZE) -> np.ndarray:
    """Render ``spec`` to uint8 RGB ``[T, H, W, 3]`` with anti-aliased edges."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    fg = np.asarray(COLOURS[spec.colour], dtype=np.float32)
    bg = np.asarray(BACKGROUNDS[spec.background], dtype=np.float32)
    video = np.empty((frames, size, size, 3), dtype=np.uint8)
    for f in range(frames):
        cx, cy = spec.centre(f)
        dist = signed_distance(spec.shape, xs - cx, ys - cy, spec.radius)
        cover = np.clip(0.5 - dist, 0.0, 1.0)[..., None]
        video[f] = np.rint(bg + cover * (fg - bg)).astype(np.uint8)
    return video


def signed_distance(shape: str, px: np.ndarray, py: np.ndarray, radius: float) -> np.ndarray:
    """Signed distance in pixels (negative inside) to a shape centred at the origin.

    The circle has ``radius``; the square has half-side ``0.85·radius``; the triangle is
    equilateral, apex up, with circumradius ``1.2·radius`` (its centroid at the origin).
    """
    if shape == "circle":
        return np.hypot(px, py) - radius
    if shape == "square":
        half = 0.85 * radius
        qx, qy = np.abs(px) - half, np.abs(py) - half
        outside = np.hypot(np.maximum(qx, 0.0), np.maximum(qy, 0.0))
        return outside + np.minimum(np.maximum(qx, qy), 0.0)
    if shape == "triangle":
        return _triangle_distance(px, py, 1.2 * radius)
    raise ValueError(f"unknown shape {shape!r}")


def _triangle_distance(px: np.ndarray, py: np.ndarray, circumradius: float) -> np.ndarray:
    """Exact signed distance to an apex-up equilateral triangle (y grows downwards)."""
    angles = [-math.pi / 2, math.pi / 6, 5 * math.pi / 6]
    verts = [(circumradius * math.cos(a), circumradius * math.sin(a)) for a in angles]
    edge_dist = []
    inside = np.ones(px.shape, dtype=bool)
    for (ax, ay), (bx, by) in zip(verts, verts[1:] + verts[:1], strict=True):
        ex, ey = bx - ax, by - ay
        wx, wy = px - ax, py - ay
        h = np.clip((wx * ex + wy * ey) / (ex * ex + ey * ey), 0.0, 1.0)
        edge_dist.append(np.hypot(wx - ex * h, wy - ey * h))
        inside &= (ex * wy - ey * wx) >= 0.0
    dist = np.minimum.reduce(edge_dist)
    return np.where(inside, -dist, dist)


def is_held_out(shape: str, colour: str, direction: str) -> bool:
    """Whether this combination is reserved for evaluation (never in training)."""
    return (shape, colour, direction) in HELD_OUT_COMBOS


def _pick_background(rng: random.Random, colour: str, black_share: float) -> str:
    if rng.random() < black_share:
        return "black"
    choices = [b for b in BACKGROUNDS if b != colour and b != "black"]
    return rng.choice(choices)


def training_examples(count: int, seed: int = 0, captions_per_clip: int = 1) -> list[Example]:
    """``count`` clips from the training combinations, each with ``captions_per_clip`` captions.

    Returns ``count · captions_per_clip`` examples; the captions of one clip are consecutive.
    Captions that do not name the background are only given to clips on black.
    """
    rng = random.Random(seed)
    combos = [
        (s, c, d) for s in SHAPES for c in COLOURS for d in DIRECTIONS if not is_held_out(s, c, d)
    ]
    examples = []
    for i in range(count):
        shape, colour, direction = (
            combos[i % len(combos)] if i < len(combos) else rng.choice(combos)
        )
        background = _pick_background(rng, colour, black_share=0.5)
        spec = random_spec(rng, shape, colour, direction, background)
        for _ in range(captions_per_clip):
            text = caption(
                rng, spec.shape, spec.colour, spec.direction, spec.background, TRAIN_TEMPLATES
            )
            examples.append(Example(spec, text))
    return examples


def evaluation_examples(count: int = 50, seed: int = 1234) -> list[Example]:
    """Held-out prompts: held-out combinations or held-out phrasings (half of each, interleaved).

    Even entries use a held-out (shape, colour, direction) combination with any phrasing;
    odd entries use a training combination with a held-out phrasing. Backgrounds are black
    for half of them and named in the caption otherwise.
    """
    rng = random.Random(seed)
    held = sorted(HELD_OUT_COMBOS)
    seen = [(s, c, d) for s in SHAPES for c in COLOURS for d in DIRECTIONS if (s, c, d) not in held]
    examples = []
    for i in range(count):
        shape, colour, direction = held[(i // 2) % len(held)] if i % 2 == 0 else rng.choice(seen)
        background = _pick_background(rng, colour, black_share=0.5)
        spec = random_spec(rng, shape, colour, direction, background)
        templates = TRAIN_TEMPLATES + EVAL_TEMPLATES if i % 2 == 0 else EVAL_TEMPLATES
        examples.append(
            Example(spec, caption(rng, shape, colour, direction, background, templates))
        )
    return examples


def iter_videos(examples: list[Example]) -> Iterator[np.ndarray]:
    """Render each example's clip (uint8 ``[T, H, W, 3]``)."""
    for example in examples:
        yield render(example.spec)
