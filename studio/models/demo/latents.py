"""The DiT's training set: procedural clips encoded once by the trained VAE, captions encoded once.

:func:`build_latent_dataset` renders ``clips`` training clips, encodes them with the VAE (raw μ),
measures the per-channel latent mean/std, normalises, fits the latent → RGB preview factors, and
encodes every caption (plus the empty prompt used for classifier-free guidance) with MiniLM.
:func:`shift_latent` is a cheap augmentation: it moves the shape by whole latent cells inside a
frozen border ring, which a convolutional VAE maps to an 8-pixel move of the same clip.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from studio.engine.model import PreviewFactors
from studio.models.demo.data import FRAMES, SIZE, ClipSpec, Example, render, training_examples
from studio.models.demo.text import MiniLMTextEncoder, encode_in_batches
from studio.models.wan.vae import CausalVideoVAE

log = logging.getLogger(__name__)

RING = 2
"""Latent cells along each edge that :func:`shift_latent` leaves in place (border effects)."""


@dataclass(frozen=True, slots=True)
class LatentDataset:
    """Normalised latents and caption contexts for DiT training.

    Attributes:
        latents: ``[N, C, T', H', W']`` float32, normalised with ``mean``/``std``.
        contexts: ``[N·K, L, 384]`` float16; rows ``i·K … i·K + K − 1`` caption clip i.
        empty: ``[1, L, 384]`` float32 context of the empty prompt (unconditional).
        boxes: ``[N, 4]`` int64 latent-cell bounding box (x0, y0, x1, y1) of each clip's shape
            over all frames, inclusive, one safety cell added.
        mean, std: per-channel statistics of the raw latents ``[C]``.
        preview: least-squares latent → RGB factors.
    """

    latents: torch.Tensor
    contexts: torch.Tensor
    empty: torch.Tensor
    boxes: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    preview: PreviewFactors

    @property
    def captions_per_clip(self) -> int:
        return self.contexts.shape[0] // self.latents.shape[0]

    def to_dict(self) -> dict[str, torch.Tensor]:
        rgb = torch.tensor(self.preview.rgb_factors, dtype=torch.float32)
        bias = torch.tensor(self.preview.bias, dtype=torch.float32)
        names = ("latents", "contexts", "empty", "boxes", "mean", "std")
        return {**{n: getattr(self, n) for n in names}, "rgb_factors": rgb, "rgb_bias": bias}

    @classmethod
    def from_dict(cls, data: dict[str, torch.Tensor]) -> LatentDataset:
        # Stored as float32; rounded back to the 5 decimals fit_preview gives them.
        preview = PreviewFactors(
            tuple(tuple(round(v, 5) for v in row) for row in data["rgb_factors"].tolist()),
            tuple(round(v, 5) for v in data["rgb_bias"].tolist()),
        )
        names = ("latents", "contexts", "empty", "boxes", "mean", "std")
        return cls(**{n: data[n] for n in names}, preview=preview)


def shape_box(spec: ClipSpec, cell: int = 8, frames: int = FRAMES) -> tuple[int, int, int, int]:
    """Latent-cell bounding box ``(x0, y0, x1, y1)`` of the shape over the clip, +1 cell margin."""
    reach = 1.25 * spec.radius
    (xa, ya), (xb, yb) = spec.centre(0), spec.centre(frames - 1)
    x0, x1 = min(xa, xb) - reach, max(xa, xb) + reach
    y0, y1 = min(ya, yb) - reach, max(ya, yb) + reach
    return (
        math.floor(x0 / cell) - 1,
        math.floor(y0 / cell) - 1,
        math.floor(x1 / cell) + 1,
        math.floor(y1 / cell) + 1,
    )


def shift_latent(latent: torch.Tensor, box: torch.Tensor, rng: random.Random) -> torch.Tensor:
    """Move the shape of one latent ``[C, T', H', W']`` by a random whole number of cells.

    Only the interior (inside a ``RING``-cell border) is rolled, and only by amounts that keep
    the shape's ``box`` inside the interior, so every cell rolled in is plain background.
    """
    h, w = latent.shape[-2:]
    x0, y0, x1, y1 = (int(v) for v in box)
    lo, hi_x, hi_y = RING, w - RING - 1, h - RING - 1
    dx = rng.randint(min(0, lo - x0), max(0, hi_x - x1))
    dy = rng.randint(min(0, lo - y0), max(0, hi_y - y1))
    if x0 + dx < lo or x1 + dx > hi_x:
        dx = 0
    if y0 + dy < lo or y1 + dy > hi_y:
        dy = 0
    if dx == 0 and dy == 0:
        return latent
    out = latent.clone()
    inner = latent[..., RING : h - RING, RING : w - RING]
    out[..., RING : h - RING, RING : w - RING] = torch.roll(inner, shifts=(dy, dx), dims=(-2, -1))
    return out


def _pixel_targets(video: np.ndarray, latent_frames: int, cell: int) -> np.ndarray:
    """Average RGB in [−1, 1] per latent position: ``[T', H', W', 3]``.

    Latent frame 0 stands for pixel frame 0, latent frame k ≥ 1 for pixel frames 4k − 3 … 4k.
    """
    x = video.astype(np.float32) / 127.5 - 1.0
    groups = [x[:1]] + [x[4 * k - 3 : 4 * k + 1] for k in range(1, latent_frames)]
    means = np.stack([g.mean(axis=0) for g in groups])
    t, hh, ww, _ = means.shape
    return means.reshape(t, hh // cell, cell, ww // cell, cell, 3).mean(axis=(2, 4))


def fit_preview(latents: torch.Tensor, targets: np.ndarray) -> PreviewFactors:
    """Least squares ``rgb ≈ z·F + b`` over every latent position: ``[N, C, T', H', W']``."""
    c = latents.shape[1]
    z = latents.permute(0, 2, 3, 4, 1).reshape(-1, c).double()
    design = torch.cat([z, torch.ones(z.shape[0], 1, dtype=torch.float64)], dim=1)
    rgb = torch.from_numpy(targets.reshape(-1, 3)).double()
    solution = torch.linalg.lstsq(design, rgb).solution  # [C + 1, 3]
    rows = tuple(tuple(round(float(v), 5) for v in row) for row in solution[:c])
    return PreviewFactors(rows, tuple(round(float(v), 5) for v in solution[c]))


@torch.no_grad()
def encode_clips(
    vae: CausalVideoVAE, examples: list[Example], stride: int, batch: int = 8
) -> tuple[torch.Tensor, np.ndarray]:
    """Raw μ ``[N, C, T', H', W']`` of every ``stride``-th example's clip, and pixel targets."""
    specs = [e.spec for e in examples[::stride]]
    latents, targets = [], []
    for i in tqdm(range(0, len(specs), batch), desc="encode", dynamic_ncols=True):
        videos = np.stack([render(s) for s in specs[i : i + batch]])
        pixels = torch.from_numpy(videos).permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0
        mu = vae.encode(pixels).float().cpu()
        latents.append(mu)
        targets.extend(_pixel_targets(v, mu.shape[2], SIZE // mu.shape[-1]) for v in videos)
    return torch.cat(latents), np.stack(targets)


def build_latent_dataset(
    vae: CausalVideoVAE,
    text_encoder: MiniLMTextEncoder,
    clips: int,
    captions_per_clip: int,
    seed: int,
) -> LatentDataset:
    """Render, encode and caption ``clips`` training clips (see the module docstring).

    ``vae`` must be built with mean 0 / std 1 so that its ``encode`` returns the raw μ.
    """
    examples = training_examples(clips, seed, captions_per_clip)
    raw, targets = encode_clips(vae, examples, captions_per_clip)
    mean = raw.mean(dim=(0, 2, 3, 4))
    std = raw.std(dim=(0, 2, 3, 4))
    latents = (raw - mean.view(1, -1, 1, 1, 1)) / std.view(1, -1, 1, 1, 1)
    preview = fit_preview(latents, targets)
    log.info("encoding %d captions", len(examples))
    contexts = encode_in_batches(text_encoder, [e.caption for e in examples]).half()
    empty = text_encoder.encode([""]).float().cpu()
    cell = SIZE // latents.shape[-1]
    boxes = torch.tensor([shape_box(e.spec, cell) for e in examples[::captions_per_clip]])
    return LatentDataset(latents, contexts, empty, boxes, mean, std, preview)
