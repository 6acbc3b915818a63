"""The engine's :class:`~studio.engine.model.VideoVAE` over LTX-Video's causal video VAE.

Latents in model space are per-channel normalised, ``(z − mean_of_means) / std_of_means``, with
the statistics the checkpoint carries (``per_channel_statistics``). A timestep-conditioned
decoder (0.9.1 and later) decodes as the original pipeline does (``pipeline_ltx_video.py``
``__call__`` then ``vae_encode.py`` ``vae_decode``; docs/families/ltx.md §2): the normalised
latent is first mixed with fresh noise, ``z·(1 − decode_noise_scale) + ε·decode_noise_scale``,
then un-normalised and decoded at ``timestep = decode_timestep``. The noise here comes from a
CPU generator seeded with a fixed number (and the 0.9.1 decoder's injected noise from another
seeded generator), so a decode is repeatable.
"""

from __future__ import annotations

import torch
from torch import nn

from studio.engine.cancel import NEVER, CancelToken

#: The configs' decode settings (every ``configs/*.yaml``).
DECODE_TIMESTEP, DECODE_NOISE_SCALE = 0.05, 0.025
#: Seed of the decode noise.
DECODE_SEED = 0


class LTXVideoVAEAdapter:
    """``encode(video [B, 3, T, H, W] in [−1, 1]) → normalised latent [B, 128, T', H', W']``;
    ``decode(latent) → pixels [B, 3, T, H, W]`` in [−1, 1]; float32 out, the VAE's dtype in."""

    def __init__(self, vae: nn.Module, *, decode_timestep: float = DECODE_TIMESTEP,
                 decode_noise_scale: float = DECODE_NOISE_SCALE, seed: int = DECODE_SEED) -> None:
        self.vae = vae
        self.decode_timestep, self.decode_noise_scale = decode_timestep, decode_noise_scale
        self.seed = seed

    def _place(self, x: torch.Tensor) -> torch.Tensor:
        weight = next(self.vae.parameters())
        return x.to(weight.device, weight.dtype)

    def encode(self, video: torch.Tensor, cancel: CancelToken = NEVER) -> torch.Tensor:
        cancel.check()
        with torch.no_grad():
            return self.vae.normalise(self.vae.encode(self._place(video))).float()

    def decode_noise(self, shape: torch.Size) -> torch.Tensor:
        """The decode noise ``ε`` of a latent shape (float32, CPU, seeded)."""
        generator = torch.Generator().manual_seed(self.seed)
        return torch.randn(shape, generator=generator)

    def decode(self, latent: torch.Tensor, cancel: CancelToken = NEVER) -> torch.Tensor:
        cancel.check()
        z = latent.float()
        timestep = None
        if self.vae.timestep_conditioning:
            scale = self.decode_noise_scale
            z = z * (1 - scale) + self.decode_noise(z.shape).to(z.device) * scale
            timestep = torch.full((z.shape[0],), self.decode_timestep)
        with torch.no_grad():
            raw = self.vae.denormalise(self._place(z))
            if timestep is not None:
                timestep = timestep.to(raw.device, raw.dtype)
            # 0.9.1's decoder injects noise of its own: drawn from a seeded generator too.
            generator = torch.Generator(raw.device).manual_seed(self.seed + 1)
            return self.vae.decode(raw, timestep=timestep, generator=generator).float()
