"""Per-token conditioning masks (first-frame, last-frame and keyframe image-to-video).

A mask m ∈ [0, 1] per latent position: m = 1 pins the position to its conditioning latent for the
whole run; 0 < m < 1 lets it start denoising once t < 1 − m; m = 0 leaves it free. The rules
(LTX-Video's rectified-flow scheduler, restated in docs/flow-conventions.md §4):

* initial latent: ``lerp(noise, cond_latent, m)``
* timestep the model sees per token: ``t_tok = min(t, 1 − m)``
* after a step, a position takes its new value only while ``t − t_eps < 1 − m``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

T_EPS = 1e-6


@dataclass(frozen=True, slots=True)
class Conditioning:
    """Conditioning latents and their mask, on the latent grid.

    Attributes:
        latent: ``[B, C, T', H', W']`` conditioning latents (zeros where m = 0).
        mask: ``[B, 1, T', H', W']`` mask m ∈ [0, 1].
    """

    latent: torch.Tensor
    mask: torch.Tensor

    def to(self, device: torch.device | str, dtype: torch.dtype) -> Conditioning:
        return Conditioning(self.latent.to(device, dtype), self.mask.to(device, torch.float32))


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
    return Conditioning(latent, mask)


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
