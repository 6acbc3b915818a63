"""Per-token conditioning masks (first-frame, last-frame and keyframe image-to-video).

A mask m ∈ [0, 1] per latent position: m = 1 pins the position to its conditioning latent for the
whole run; 0 < m < 1 lets it start denoising once t < 1 − m; m = 0 leaves it free. The rules
(LTX-Video's rectified-flow scheduler, restated in docs/flow-conventions.md §4):

* initial latent: ``lerp(noise, cond_latent, m)``
* timestep the model sees per token: ``t_tok = min(t, 1 − m)``
* after a step, a position takes its new value only while ``t − t_eps < 1 − m``.
* optionally, before each step, fully pinned positions (m = 1) are reset to their conditioning
  latent plus ``noise_scale·ε·t²`` (LTX-Video's ``image_cond_noise_scale``): fresh noise that
  shrinks as the video settles, so a pinned frame does not freeze the motion around it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import torch

from studio.engine.noise import make_noise

T_EPS = 1e-6


@dataclass(frozen=True, slots=True)
class Conditioning:
    """Conditioning latents and their mask, on the latent grid.

    Attributes:
        latent: ``[B, C, T', H', W']`` conditioning latents (zeros where m = 0).
        mask: ``[B, 1, T', H', W']`` mask m ∈ [0, 1].
        noise_scale: the noise put on fully pinned positions before each step, times t²
            (0 = none).
        noise_seed: seeds that noise, step by step (:func:`pinned_noise_seed`).
    """

    latent: torch.Tensor
    mask: torch.Tensor
    noise_scale: float = 0.0
    noise_seed: int = 0

    def to(self, device: torch.device | str, dtype: torch.dtype) -> Conditioning:
        return replace(self, latent=self.latent.to(device, dtype),
                       mask=self.mask.to(device, torch.float32))


def latent_frame_index(frame_index: int, frames: int, temporal_factor: int) -> int:
    """The latent frame that holds pixel frame ``frame_index`` (negative counts from the end).

    With a causal VAE latent frame 0 holds pixel frame 0 alone and latent frame k ≥ 1 holds pixel
    frames 1 + r·(k − 1) … r·k.
    """
    if frame_index < 0:
        frame_index += frames
    if not 0 <= frame_index < frames:
        raise IndexError(f"frame {frame_index} outside a {frames}-frame video")
    return 0 if frame_index == 0 else 1 + (frame_index - 1) // temporal_factor


def empty_conditioning(latent_shape: tuple[int, ...]) -> Conditioning:
    b, c, t, h, w = latent_shape
    return Conditioning(torch.zeros(latent_shape), torch.zeros(b, 1, t, h, w))


def place_latent_frame(
    cond: Conditioning, frame_latent: torch.Tensor, latent_index: int, strength: float
) -> Conditioning:
    """Return ``cond`` with latent frame ``latent_index`` set to ``frame_latent`` at ``strength``.

    ``frame_latent`` is ``[B, C, H', W']`` or ``[B, C, 1, H', W']``. A later item at the same
    frame replaces an earlier one.
    """
    if frame_latent.dim() == 5:
        frame_latent = frame_latent[:, :, 0]
    latent = cond.latent.clone()
    mask = cond.mask.clone()
    latent[:, :, latent_index] = frame_latent.to(latent.dtype)
    mask[:, :, latent_index] = float(strength)
    return replace(cond, latent=latent, mask=mask)


def initial_latent(noise: torch.Tensor, cond: Conditioning) -> torch.Tensor:
    """Starting point ``lerp(noise, cond_latent, m)``: ``[B, C, T', H', W']``.

    ``torch.lerp`` is exact at both ends (m = 1 gives the conditioning latent bit for bit, m = 0
    the noise), which ``noise + m·(cond − noise)`` is not in floating point.
    """
    m = cond.mask.to(noise.dtype)
    return torch.lerp(noise, cond.latent.to(noise.dtype), m)


def token_timesteps(t: float, mask: torch.Tensor) -> torch.Tensor:
    """Per-position timestep ``min(t, 1 − m)``: ``[B, T', H', W']`` (float32, t ∈ [0, 1])."""
    return torch.clamp(1.0 - mask[:, 0].float(), max=t)


def update_mask(t: float, mask: torch.Tensor) -> torch.Tensor:
    """Positions that take the new value after the step from t: ``t − t_eps < 1 − m``.

    Returns a bool tensor ``[B, 1, T', H', W']``.
    """
    return (t - T_EPS) < (1.0 - mask.float())


def pinned_noise_seed(seed: int, step: int) -> int:
    """The seed of the noise put on pinned positions at ``step``: a 63-bit hash of both, apart
    from the initial noise's and the stochastic sampler's seeds."""
    digest = hashlib.blake2b(f"pinned:{seed}:{step}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def perturb_pinned(x: torch.Tensor, cond: Conditioning, t: float, step: int) -> torch.Tensor:
    """``x`` with every fully pinned position (m > 1 − t_eps) set to its conditioning latent
    plus ``noise_scale·ε·t²`` (fresh noise of ``step``); unchanged when the scale is 0.

    Shapes: x ``[B, C, T', H', W']`` as the conditioning latent.
    """
    if cond.noise_scale <= 0.0:
        return x
    eps = make_noise(tuple(x.shape), pinned_noise_seed(cond.noise_seed, step), x.device, x.dtype)
    pinned = cond.mask.to(x.device) > 1.0 - T_EPS
    noised = cond.latent.to(x.device, x.dtype) + cond.noise_scale * eps * (t * t)
    return torch.where(pinned, noised, x)
