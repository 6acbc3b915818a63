"""Latent previews against hand-computed pixels and an independent loop; thumbnails."""

from __future__ import annotations

import numpy as np
import torch

from studio.engine.model import PreviewFactors
from studio.media.preview import contact_sheet, latent_to_rgb, upscale_nearest

TWO_CHANNELS = PreviewFactors(
    rgb_factors=((0.5, -0.25, 1.0), (0.1, 0.2, -0.3)),
    bias=(0.0, 0.1, -0.2),
)


def hand_latent() -> torch.Tensor:
    """``[C=2, T'=1, H'=1, W'=2]``: pixel 0 is (1.0, 0.5), pixel 1 is (−2.0, 3.0)."""
    return torch.tensor([[[[1.0, -2.0]]], [[[0.5, 3.0]]]])


def test_hand_computed_pixels() -> None:
    rgb = latent_to_rgb(hand_latent(), TWO_CHANNELS)
    assert rgb.shape == (1, 1, 2, 3) and rgb.dtype == np.uint8
    # pixel 0: r = 0.5 + 0.05 = 0.55 → 0.775·255 = 197.6 → 198
    #          g = −0.25 + 0.1 + 0.1 = −0.05 → 0.475·255 = 121.1 → 121
    #          b = 1.0 − 0.15 − 0.2 = 0.65 → 0.825·255 = 210.4 → 210
    # pixel 1: r = −1.0 + 0.3 = −0.7 → 0.15·255 = 38.25 → 38
    #          g = 0.5 + 0.6 + 0.1 = 1.2 → clamped → 255
    #          b = −2.0 − 0.9 − 0.2 = −3.1 → clamped → 0
    assert rgb[0, 0].tolist() == [[198, 121, 210], [38, 255, 0]]


def test_batched_and_low_precision_inputs() -> None:
    latent = hand_latent()
    expected = latent_to_rgb(latent, TWO_CHANNELS)
    batched = torch.stack([latent, torch.zeros_like(latent)])  # [B=2, C, T', H', W']
    assert np.array_equal(latent_to_rgb(batched, TWO_CHANNELS), expected)  # batch 0 is shown
    half = latent_to_rgb(latent.to(torch.bfloat16), TWO_CHANNELS)
    assert np.abs(half.astype(int) - expected).max() <= 1
    needs_grad = latent.clone().requires_grad_(True)
    assert np.array_equal(latent_to_rgb(needs_grad, TWO_CHANNELS), expected)


def test_matches_an_independent_loop() -> None:
    gen = torch.Generator().manual_seed(3)
    channels = 16
    factors = PreviewFactors(
        rgb_factors=tuple(
            tuple(float(v) for v in row) for row in torch.randn(channels, 3, generator=gen) * 0.2
        ),
        bias=(0.05, -0.1, 0.02),
    )
    latent = torch.randn(1, channels, 3, 5, 7, generator=gen)
    got = latent_to_rgb(latent, factors)
    assert got.shape == (3, 5, 7, 3)

    x = latent[0].double().numpy()
    expected = np.zeros((3, 5, 7, 3))
    for k in range(3):  # plain sums, channel by channel
        value = np.full((3, 5, 7), factors.bias[k])
        for c in range(channels):
            value += x[c] * factors.rgb_factors[c][k]
        expected[..., k] = np.clip((value + 1) / 2, 0, 1) * 255
    assert np.abs(got.astype(float) - expected).max() <= 0.5 + 1e-4
    assert 20 < got.mean() < 235 and got.std() > 5  # a real image, not saturated


def test_upscale_nearest() -> None:
    frames = np.arange(2 * 2 * 3 * 3, dtype=np.uint8).reshape(2, 2, 3, 3)
    big = upscale_nearest(frames, 4)
    assert big.shape == (2, 8, 12, 3) and big.dtype == np.uint8
    for t in range(2):
        for y in range(8):
            for x in range(12):
                assert np.array_equal(big[t, y, x], frames[t, y // 4, x // 4])
    assert upscale_nearest(frames[0], 2).shape == (4, 6, 3)
    same = upscale_nearest(frames, 1)
    assert np.array_equal(same, frames) and same is not frames


def test_contact_sheet_layout() -> None:
    frames = np.stack([np.full((2, 3, 3), 10 * (i + 1), np.uint8) for i in range(5)])
    sheet = contact_sheet(frames, 3)
    assert sheet.shape == (4, 9, 3)  # 2 rows × 3 columns of 2×3 tiles
    tiles = [[10, 20, 30], [40, 50, 0]]  # the last tile is empty (black)
    for row in range(2):
        for col in range(3):
            tile = sheet[row * 2 : row * 2 + 2, col * 3 : col * 3 + 3]
            assert (tile == tiles[row][col]).all()


def test_contact_sheet_gap_and_clamped_columns() -> None:
    frames = np.stack([np.full((2, 2, 3), 100 + i, np.uint8) for i in range(3)])
    strip = contact_sheet(frames, 10, gap=1)  # at most T columns: one row
    assert strip.shape == (2, 3 * 2 + 2, 3)
    assert (strip[:, 2] == 0).all() and (strip[:, 5] == 0).all()  # the gaps are black
    assert (strip[:, 3:5] == 101).all() and (strip[:, 6:8] == 102).all()
