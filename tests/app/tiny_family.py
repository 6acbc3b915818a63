"""A tiny analytic model family for the app tests (no weights, no training, milliseconds a step).

It implements the protocols of ``studio/models/family.py`` exactly:

* the text encoder hashes each prompt's words into a fixed context ``[B, 4, 8]``;
* the denoiser knows the clean latent x₀ a context asks for (a colour per channel plus a
  moving stripe) and returns the exact rectified-flow velocity towards it,
  ``v = (x − x₀) / t`` — so x̂₀ = x − t·v is x₀ at every step and the sampler lands on x₀;
* the VAE is average pooling (encode) and nearest upsampling (decode) with a causal time axis
  (r = 4: latent frame 0 ↔ pixel frame 0, latent frame k ↔ pixel frames 4k−3 … 4k).

``step_delay_s`` slows each denoiser call down so a cancel can land mid-run (the tests never
assert on time); setting ``denoiser.fail_with`` makes the next call raise it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from studio.engine.cancel import NEVER, CancelToken
from studio.engine.model import FamilyDefaults, LoadedModel, PreviewFactors
from studio.engine.shapes import LatentGeometry

CONTEXT_LEN, CONTEXT_DIM = 4, 8
GEOMETRY = LatentGeometry(channels=3, temporal_factor=4, spatial_factor=8, patch=(1, 2, 2))
DEFAULTS = FamilyDefaults(steps=6, guidance=3.0, shift="auto", fps=8.0, frames=9,
                          sizes=((64, 48), (48, 48), (96, 64)), negative_prompt="blurry")
PREVIEW = PreviewFactors(rgb_factors=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
                         bias=(0.0, 0.0, 0.0))


class HashTextEncoder:
    def encode(self, prompts: Sequence[str]) -> torch.Tensor:
        """``[B, 4, 8]`` in [−1, 1], a deterministic function of each prompt's text."""
        rows = []
        for prompt in prompts:
            digest = hashlib.sha256(prompt.encode("utf-8")).digest()
            values = torch.tensor(list(digest), dtype=torch.float32)[: CONTEXT_LEN * CONTEXT_DIM]
            rows.append((values / 127.5 - 1.0).reshape(CONTEXT_LEN, CONTEXT_DIM))
        return torch.stack(rows)


def target_latent(context: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """The x₀ a context asks for: ``[B, C, T', H', W']`` in about [−0.9, 0.9]."""
    b, c, t, h, w = shape
    colour = torch.tanh(context.mean(dim=1)[:, :c]) * 0.6  # [B, C]
    cols = torch.arange(w, dtype=torch.float32)
    frames = torch.arange(t, dtype=torch.float32)
    stripe = torch.cos((cols[None, :] - 2.0 * frames[:, None]) * 0.8) * 0.3  # [T', W']
    return colour[:, :, None, None, None] + stripe[None, None, :, None, :].expand(b, c, t, h, w)


class ExactDenoiser:
    def __init__(self, step_delay_s: float = 0.0) -> None:
        self.step_delay_s = step_delay_s
        self.fail_with: Exception | None = None
        self.calls = 0

    def __call__(self, x: torch.Tensor, t_tok: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """v = (x − x₀) / t per token (t clamped at 1e-3; tokens at t = 0 never move)."""
        self.calls += 1
        if self.fail_with is not None:
            raise self.fail_with
        if self.step_delay_s:
            time.sleep(self.step_delay_s)
        x0 = target_latent(context, x.shape).to(x.dtype)
        return (x - x0) / t_tok.clamp(min=1e-3)[:, None].to(x.dtype)


class PoolingVAE:
    def encode(self, video: torch.Tensor, cancel: CancelToken = NEVER) -> torch.Tensor:
        """``[B, 3, T, H, W]`` → ``[B, 3, T', H/8, W/8]`` (frame 0, then every 4th)."""
        cancel.check()
        keep = video[:, :, :: GEOMETRY.temporal_factor]
        b, c, t, h, w = keep.shape
        flat = keep.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        pooled = F.avg_pool2d(flat, GEOMETRY.spatial_factor)
        return pooled.reshape(b, t, c, *pooled.shape[-2:]).permute(0, 2, 1, 3, 4)

    def decode(self, latent: torch.Tensor, cancel: CancelToken = NEVER) -> torch.Tensor:
        """``[B, 3, T', H', W']`` → ``[B, 3, 1 + 4(T'−1), 8H', 8W']`` in [−1, 1]."""
        cancel.check()
        s, r = GEOMETRY.spatial_factor, GEOMETRY.temporal_factor
        first = latent[:, :, :1]
        rest = latent[:, :, 1:].repeat_interleave(r, dim=2)
        video = torch.cat([first, rest], dim=2)
        video = video.repeat_interleave(s, dim=3).repeat_interleave(s, dim=4)
        return video.clamp(-1.0, 1.0)


def tiny_model(model_id: str = "tiny", step_delay_s: float = 0.0) -> LoadedModel:
    return LoadedModel(
        id=model_id, name="Tiny analytic model", family="tiny", variant="analytic",
        geometry=GEOMETRY, defaults=DEFAULTS, preview=PREVIEW, text_encoder=HashTextEncoder(),
        denoiser=ExactDenoiser(step_delay_s), vae=PoolingVAE(), device=torch.device("cpu"),
        dtype=torch.float32,
    )
