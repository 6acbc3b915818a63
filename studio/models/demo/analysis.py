"""Measure what a demo clip shows: the shape, its colour, its motion, the background, and
whether the shape stays whole.

Per frame the background is estimated from the border (median of a 3-pixel frame), the shape is
every pixel that differs clearly from it, and the shape's centroid, area, colour and how much of
its bounding box it fills are measured. Colours are named by the nearest named colour in CIELAB;
the shape by its fill ratio (a circle fills π/4 ≈ 0.79 of its box, a square 1, a triangle ½).
All pixel inputs are uint8 RGB ``[T, H, W, 3]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from studio.models.demo.vocabulary import BACKGROUNDS, COLOURS

BORDER = 3
DIFF_THRESHOLD = 60.0
"""Euclidean RGB distance (0…441) above which a pixel belongs to the shape."""
CORE_THRESHOLD = 0.6
"""Fraction of the strongest difference a pixel needs to count for the shape's colour."""
STILL_FRACTION = 0.12
"""A displacement below this fraction of the frame size counts as "still"."""
MIN_AREA = 12
#: Fill ratios between the shapes' ideal ones (π/4, 1 and ½) that separate them.
SQUARE_FILL, TRIANGLE_FILL = 0.89, 0.64
#: "Whole": in every frame, with an area within these factors of its frame-0 area.
WHOLE_AREA = (0.5, 2.0)


@dataclass(frozen=True, slots=True)
class ClipAnalysis:
    """What was found in one clip.

    Attributes:
        shape: "circle", "square", "triangle" (most frames' reading) or "" (no shape).
        background: named background colour (from the border, all frames).
        whole: the shape is found in every frame, its area within 0.5×…2× of frame 0's.
        colour: named colour of the shape ("" when no shape was found).
        direction: "left", "right", "up", "down", "still" or "" (no shape).
        displacement: centroid motion first → last detected frame, (dx, dy) pixels.
        area_cv: coefficient of variation of the shape's area over the frames (0 = constant).
        found_frames: frames in which a shape was found.
        mean_rgb: the shape's mean core colour, sRGB 0…255.
    """

    colour: str
    direction: str
    displacement: tuple[float, float]
    area_cv: float
    found_frames: int
    mean_rgb: tuple[float, float, float]
    shape: str = ""
    background: str = ""
    whole: bool = False


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in 0…255 (``[..., 3]``) → CIELAB (D65) ``[..., 3]``."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack(
        [116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1
    )


def _nearest(palette: dict[str, tuple[int, int, int]]):
    names = tuple(palette)
    labs = srgb_to_lab(np.array([palette[n] for n in names], dtype=np.float64))

    def name(rgb: tuple[float, float, float] | np.ndarray) -> str:
        return names[int(np.argmin(np.linalg.norm(labs - srgb_to_lab(np.asarray(rgb)), axis=-1)))]

    return name


name_colour = _nearest(COLOURS)
"""The named shape colour (from ``COLOURS``) nearest to an sRGB colour in CIELAB."""
name_background = _nearest(BACKGROUNDS)
"""The named background (from ``BACKGROUNDS``) nearest to an sRGB colour in CIELAB."""


def shape_of(mask: np.ndarray) -> str:
    """Name a shape mask by how much of its bounding box it fills."""
    ys, xs = np.nonzero(mask)
    box = (xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1)
    fill = mask.sum() / box
    return "square" if fill >= SQUARE_FILL else "triangle" if fill <= TRIANGLE_FILL else "circle"


def frame_background(frame: np.ndarray) -> np.ndarray:
    """Median colour of the ``BORDER``-pixel frame around ``frame`` (``[H, W, 3]`` → ``[3]``)."""
    b = BORDER
    border = np.concatenate(
        [
            frame[:b].reshape(-1, 3),
            frame[-b:].reshape(-1, 3),
            frame[b:-b, :b].reshape(-1, 3),
            frame[b:-b, -b:].reshape(-1, 3),
        ]
    )
    return np.median(border.astype(np.float32), axis=0)


def shape_mask(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mask [H, W] bool, difference [H, W])`` of pixels that differ from the background."""
    diff = np.linalg.norm(frame.astype(np.float32) - frame_background(frame), axis=-1)
    return diff > DIFF_THRESHOLD, diff


def direction_of(dx: float, dy: float, size: int) -> str:
    """Name a displacement (image coordinates, y down): the dominant axis, or "still"."""
    if math.hypot(dx, dy) < STILL_FRACTION * size:
        return "still"
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"


def analyse_clip(video: np.ndarray) -> ClipAnalysis:
    """Find the shape in every frame of ``video`` (uint8 ``[T, H, W, 3]``) and describe it."""
    centroids, areas, colours, shapes = [], [], [], []
    for frame in video:
        mask, diff = shape_mask(frame)
        area = int(mask.sum())
        if area < MIN_AREA:
            continue
        ys, xs = np.nonzero(mask)
        centroids.append((xs.mean() + 0.5, ys.mean() + 0.5))
        areas.append(area)
        shapes.append(shape_of(mask))
        core = diff >= CORE_THRESHOLD * diff.max()
        colours.append(frame[core].astype(np.float64).mean(axis=0))
    background = name_background(np.median([frame_background(f) for f in video], axis=0))
    if not centroids:
        return ClipAnalysis("", "", (0.0, 0.0), float("inf"), 0, (0.0, 0.0, 0.0), "",
                            background, False)  # fmt: skip
    dx = centroids[-1][0] - centroids[0][0]
    dy = centroids[-1][1] - centroids[0][1]
    mean_rgb = np.median(np.array(colours), axis=0)
    area = np.array(areas, dtype=np.float64)
    every_frame = len(areas) == len(video)
    low, high = WHOLE_AREA
    return ClipAnalysis(
        colour=name_colour(mean_rgb),
        direction=direction_of(dx, dy, video.shape[2]),
        displacement=(float(dx), float(dy)),
        area_cv=float(area.std() / area.mean()) if every_frame else float("inf"),
        found_frames=len(centroids),
        mean_rgb=(float(mean_rgb[0]), float(mean_rgb[1]), float(mean_rgb[2])),
        shape=max(set(shapes), key=shapes.count),
        background=background,
        whole=every_frame and bool(np.all((area >= low * area[0]) & (area <= high * area[0]))),
    )


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 images (255 = peak); ``inf`` when identical."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))
