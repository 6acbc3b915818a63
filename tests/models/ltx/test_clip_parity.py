"""A 17-frame clip at frame 8 of a 25-frame LTX-Video run: the studio against a restatement of
the original's ``prepare_conditioning`` with ``_handle_non_first_conditioning_sequence``
(Lightricks/LTX-Video ``ltx_video/pipelines/pipeline_ltx_video.py``, prefix mode "concat",
two prefix latent frames), then the original's loop (``test_pipeline_parity._original_run``).

The restatement: the clip (96 × 64 px, the video's size, so no resizing) is VAE-encoded into
f_l = 1 + 16/8 = 3 latent frames; latent frames 2… are lerped into the grid at latent frame
8 // 8 + 2 = 3 by the strength, with mask = strength; latent frames 0 and 1 are lerped with
their own noise and become extra tokens before the grid, their pixel coordinates those of a
two-frame latent clip (× (8, 32, 32), the causal fix) with 8 added to the time. An image at
frame 0 goes into latent frame 0. Noise is the studio's ``make_noise(plan.state_shape)``,
split as the original draws it (grid, then the prefix).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from studio.engine.request import ConditioningItem, GenerationRequest
from studio.media.video import read_video, write_video
from tests.models.ltx.test_pipeline_parity import (
    FPS,
    HEIGHT,
    TIMES,
    TOLERANCE,
    WIDTH,
    Setup,
    _noise,
    _original_run,
    _patchify,
    _pixel_coords,
    _reference_latent,
    _rel,
    _studio,
    setup,  # noqa: F401 - the module's fixture, shared
)

pytest.importorskip("diffusers")

FRAMES, CLIP_FRAMES, CLIP_AT, PREFIX = 25, 17, 8, 2


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 17-frame MP4 of smooth random motion at the video's size."""
    rng = np.random.default_rng(5)
    base = rng.integers(0, 200, (HEIGHT, WIDTH, 3)).astype(np.int64)
    frames = np.stack([np.roll(base, 3 * k, axis=1) + 3 * k for k in range(CLIP_FRAMES)])
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    write_video(path, frames.clip(0, 255).astype(np.uint8), FPS, crf=0)
    return str(path)


def _request(setup: Setup, clip: str, strength: float) -> GenerationRequest:  # noqa: F811
    items = (ConditioningItem(str(setup.images[0]), 0, 1.0),
             ConditioningItem(clip, CLIP_AT, strength))
    return GenerationRequest(
        prompt="a red kite over the dunes", negative_prompt="blurry, static", seed=7, steps=3,
        guidance=3.0, timesteps=TIMES, stg=0.0, reference_noise=0.0, width=WIDTH,
        height=HEIGHT, frames=FRAMES, fps=FPS, conditioning=items)  # fmt: skip


def _clip_latent(setup: Setup, path: str) -> torch.Tensor:  # noqa: F811
    """The clip's normalised posterior mean ``[1, C, 3, H', W']`` through diffusers' VAE."""
    frames, _, _ = read_video(path)
    pixels = torch.from_numpy(frames).float().div(127.5).sub(1.0).permute(3, 0, 1, 2)[None]
    vae = setup.pipe.vae
    with torch.no_grad():
        z = vae.encode(pixels).latent_dist.mode()
    return setup.pipe._normalize_latents(z, vae.latents_mean, vae.latents_std)


def _prepare(setup: Setup, plan, prefix_at: int = CLIP_AT  # noqa: F811
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The original's ``prepare_conditioning`` for [image at 0, clip at 8] (module docstring):
    (tokens ``[1, L, C]``, coordinates ``[1, 3, L]``, mask ``[1, L]``), prefix tokens first.
    ``prefix_at`` moves the prefix's time (a deliberately wrong oracle)."""
    grid, extra_noise = _noise(plan)
    init, (_, _, frames, height, width) = grid.clone(), grid.shape
    mask = torch.zeros(1, frames, height, width)
    image, clip_item = plan.request.conditioning
    init[:, :, :1] = _reference_latent(setup, setup.images[0])
    mask[:, :1] = image.strength
    latents, strength = _clip_latent(setup, clip_item.image), clip_item.strength
    start = CLIP_AT // 8 + PREFIX
    end = start + latents.shape[2] - PREFIX
    init[:, :, start:end] = torch.lerp(init[:, :, start:end], latents[:, :, PREFIX:], strength)
    mask[:, start:end] = strength
    prefix_noise = torch.cat(extra_noise[:PREFIX], dim=2)
    prefix = _patchify(torch.lerp(prefix_noise, latents[:, :, :PREFIX], strength))
    coords = _pixel_coords(PREFIX, height, width, prefix_at, causal=setup.causal)
    tokens = torch.cat([prefix, _patchify(init)], dim=1)
    coords = torch.cat([coords, _pixel_coords(frames, height, width, causal=setup.causal)], dim=2)
    mask = torch.cat([torch.full(prefix.shape[:2], strength), mask.flatten(1)], dim=1)
    return tokens, coords, mask


@pytest.mark.parametrize("strength", [1.0, 0.6])
def test_a_clip_at_frame_8_matches_the_original(setup: Setup, clip: str,  # noqa: F811
                                                strength: float) -> None:
    plan, ours = _studio(setup, _request(setup, clip, strength))
    assert plan.latent_shape[2] == 4 and plan.appended == ((CLIP_AT, PREFIX),)
    assert plan.state_shape[2] == 4 + PREFIX
    original = _original_run(setup, plan, prepare=_prepare)
    assert _rel(ours, original) < TOLERANCE
    if strength == 1.0:  # the in-grid clip frame is pinned: kept bit for bit
        torch.testing.assert_close(ours[:, :, 3], _clip_latent(setup, clip)[:, :, 2],
                                   rtol=1e-5, atol=1e-5)
    misplaced = _original_run(setup, plan, prepare=lambda s, p: _prepare(s, p, prefix_at=0))
    assert _rel(ours, misplaced) > 10 * TOLERANCE  # the comparison sees the prefix's time
