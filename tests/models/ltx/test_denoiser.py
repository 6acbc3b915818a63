"""The denoiser adapter against calling the transformer directly with coordinates built the way
the original pipeline builds them (latent corner × (8, 32, 32), the causal fix, the keyframe's
frame number added, time ÷ fps)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from studio.engine.model import FrameLayout
from studio.models.ltx.denoiser import LTXDenoiser
from studio.models.ltx.text import with_mask
from studio.models.ltx.transformer import LTXTransformer
from studio.models.ltx.transformer_config import TINY


def _transformer(causal: bool) -> LTXTransformer:
    torch.manual_seed(0)
    config = dataclasses.replace(TINY, causal_temporal_positioning=causal)
    return LTXTransformer(config).eval()


def _reference_coords(frames: int, h: int, w: int, appended: tuple[tuple[int, int], ...],
                      fps: float, causal: bool) -> torch.Tensor:
    """``[3, L]``: grid tokens (f, h, w) then each appended group's tokens (a group of n
    latent frames placed as an n-frame clip whose first frame is ``frame``)."""
    rows = []
    for f in range(frames):
        for y in range(h):
            for x in range(w):
                t = max(f * 8 + 1 - 8, 0) if causal else f * 8
                rows.append((t / fps, y * 32.0, x * 32.0))
    for frame, count in appended:
        for f in range(count):
            t = max(f * 8 + 1 - 8, 0) if causal else f * 8
            for y in range(h):
                for x in range(w):
                    rows.append(((t + frame) / fps, y * 32.0, x * 32.0))
    return torch.tensor(rows).T


@pytest.mark.parametrize("causal", [False, True])
def test_adapter_equals_the_transformer_on_tokens(causal: bool) -> None:
    model = _transformer(causal)
    gen = torch.Generator().manual_seed(1)
    appended = ((16, 1), (8, 2), (24, 1))  # an image, a clip's two-frame prefix, an image
    layout = FrameLayout(fps=24.0, latent_frames=3, appended=appended)
    x = torch.randn(2, 16, 7, 2, 3, generator=gen)
    t_tok = torch.rand(2, 7, 2, 3, generator=gen)
    states = torch.randn(2, 7, 24, generator=gen)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0, 0]])
    v = LTXDenoiser(model)(x, t_tok, with_mask(states, mask), layout=layout)
    tokens = x.permute(0, 2, 3, 4, 1).reshape(2, -1, 16)
    coords = _reference_coords(3, 2, 3, appended, 24.0, causal).expand(2, -1, -1)
    direct = model(tokens, t_tok.reshape(2, -1), states, mask.float(), coords)
    expected = direct.reshape(2, 7, 2, 3, 16).permute(0, 4, 1, 2, 3)
    assert v.shape == x.shape
    torch.testing.assert_close(v, expected, rtol=0, atol=0)


def test_zero_padded_context_rows_read_as_padding() -> None:
    """The engine pads a shorter context with zero rows: the result must not change."""
    model = _transformer(False)
    gen = torch.Generator().manual_seed(2)
    layout = FrameLayout(fps=30.0, latent_frames=2)
    x, t_tok = torch.randn(1, 16, 2, 2, 2, generator=gen), torch.rand(1, 2, 2, 2, generator=gen)
    context = with_mask(torch.randn(1, 4, 24, generator=gen), torch.ones(1, 4))
    padded = torch.cat([context, torch.zeros(1, 3, 25)], dim=1)
    denoiser = LTXDenoiser(model)
    torch.testing.assert_close(denoiser(x, t_tok, padded, layout=layout),
                               denoiser(x, t_tok, context, layout=layout), rtol=1e-5, atol=1e-6)


def test_layout_must_match_the_state() -> None:
    with pytest.raises(ValueError, match="latent frames"):
        LTXDenoiser(_transformer(False))(torch.zeros(1, 16, 3, 1, 1), torch.zeros(1, 3, 1, 1),
                                         torch.zeros(1, 2, 25),
                                         layout=FrameLayout(24.0, 3, ((8, 1),)))
