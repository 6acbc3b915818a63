"""Live previews: a cheap latent → RGB approximation, nearest-neighbour upscaling, contact sheets.

During sampling the engine hands out x̂₀ (the current estimate of the clean latent). Decoding it
with the VAE would cost as much as a step, so the preview projects each latent pixel linearly
to RGB with the family's :class:`~studio.engine.model.PreviewFactors`: one small matrix
product on the latent's own device, then a single copy to the CPU.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from studio.engine.model import PreviewFactors


def latent_to_rgb(x0_hat: torch.Tensor, factors: PreviewFactors) -> np.ndarray:
    """Project a latent to a rough RGB video.

    ``rgb = Σ_c x_c · rgb_factors[c] + bias`` gives values in about [−1, 1]; they are mapped
    with ``(rgb + 1) / 2``, clamped to [0, 1], scaled by 255 and rounded.

    Args:
        x0_hat: latent ``[C, T', H', W']`` or ``[B, C, T', H', W']`` (batch 0 is shown), any
            device and floating dtype, in the family's model space (normalised latents).
        factors: the family's preview factors; ``len(factors.rgb_factors) == C``.

    Returns:
        uint8 ``[T', H', W', 3]`` on the CPU (one pixel per latent pixel).
    """
    x = x0_hat[0] if x0_hat.ndim == 5 else x0_hat
    assert x.ndim == 4, tuple(x0_hat.shape)
    assert x.shape[0] == len(factors.rgb_factors), (x.shape[0], len(factors.rgb_factors))
    weight = torch.tensor(factors.rgb_factors, dtype=torch.float32, device=x.device)  # [C, 3]
    bias = torch.tensor(factors.bias, dtype=torch.float32, device=x.device)  # [3]
    rgb = torch.einsum("cthw,ck->thwk", x.detach().float(), weight) + bias
    rgb = ((rgb + 1.0) / 2.0).clamp(0.0, 1.0) * 255.0
    return rgb.round().to(torch.uint8).cpu().numpy()


def upscale_nearest(frames: np.ndarray, factor: int) -> np.ndarray:
    """Enlarge images by an integer ``factor``, each pixel becoming a ``factor × factor`` block.

    Args:
        frames: ``[..., H, W, C]`` (e.g. uint8 ``[T, H, W, 3]`` or ``[H, W, 3]``).
        factor: ≥ 1.

    Returns:
        ``[..., H·factor, W·factor, C]``, same dtype.
    """
    assert factor >= 1, factor
    if factor == 1:
        return frames.copy()
    return np.repeat(np.repeat(frames, factor, axis=-3), factor, axis=-2)


def contact_sheet(frames: np.ndarray, columns: int, *, gap: int = 0) -> np.ndarray:
    """Tile frames left to right, top to bottom, into one image.

    Args:
        frames: ``[T, H, W, C]``, T ≥ 1.
        columns: tiles per row (≥ 1; at most T are used). Rows = ceil(T / columns); unused
            tiles of the last row stay black (zero).
        gap: black pixels between neighbouring tiles.

    Returns:
        ``[rows·H + (rows−1)·gap, columns·W + (columns−1)·gap, C]``, same dtype as ``frames``.
    """
    assert frames.ndim == 4 and frames.shape[0] >= 1, frames.shape
    assert columns >= 1 and gap >= 0, (columns, gap)
    count, height, width, channels = frames.shape
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    sheet = np.zeros(
        (rows * height + (rows - 1) * gap, columns * width + (columns - 1) * gap, channels),
        frames.dtype,
    )
    for i, frame in enumerate(frames):
        top, left = (i // columns) * (height + gap), (i % columns) * (width + gap)
        sheet[top : top + height, left : left + width] = frame
    return sheet
