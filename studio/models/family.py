"""The contract every model family fulfils, and the loaded-model bundle the engine runs.

A family (Wan 2.1, Wan 2.2 TI2V, the demo model) provides a text encoder, a denoiser and a VAE
behind three small protocols, plus its latent geometry, defaults and preview factors. The engine
only ever sees these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import torch

from studio.engine.cancel import NEVER, CancelToken
from studio.engine.shapes import LatentGeometry


class TextEncoder(Protocol):
    def encode(self, prompts: Sequence[str]) -> torch.Tensor:
        """Encode prompts to a context ``[B, L, D]`` (fixed L for a family) on the model device."""
        ...


class Denoiser(Protocol):
    def __call__(self, x: torch.Tensor, t_tok: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Predict the velocity.

        Args:
            x: noisy latent ``[B, C, T', H', W']`` (model space: normalised latents).
            t_tok: per-position time ``[B, T', H', W']``, t ∈ [0, 1], 1 = noise.
            context: text context ``[B, L, D]``.

        Returns:
            v ≈ ε − x₀, ``[B, C, T', H', W']``.
        """
        ...


class VideoVAE(Protocol):
    def encode(self, video: torch.Tensor, cancel: CancelToken = NEVER) -> torch.Tensor:
        """``[B, 3, T, H, W]`` pixels in [−1, 1] → normalised latent ``[B, C, T', H', W']``."""
        ...

    def decode(self, latent: torch.Tensor, cancel: CancelToken = NEVER) -> torch.Tensor:
        """Normalised latent ``[B, C, T', H', W']`` → pixels ``[B, 3, T, H, W]`` in [−1, 1]."""
        ...


@dataclass(frozen=True, slots=True)
class FamilyDefaults:
    """What a model is used with unless the user says otherwise.

    ``sizes`` are (width, height) presets the model was trained for.
    """

    steps: int
    guidance: float
    shift: float | Literal["auto"]
    fps: float
    frames: int
    sizes: tuple[tuple[int, int], ...]
    negative_prompt: str = ""


@dataclass(frozen=True, slots=True)
class PreviewFactors:
    """Linear latent → RGB map: ``rgb = Σ_c x_c·rgb_factors[c] + bias``, result in [−1, 1]."""

    rgb_factors: tuple[tuple[float, float, float], ...]
    bias: tuple[float, float, float]


@dataclass(slots=True)
class LoadedModel:
    """A complete, loaded model set ready to generate.

    Attributes:
        id: registry id ("demo" or the set's folder).
        name: human-readable name.
        family / variant: e.g. ("wan", "t2v-1.3b"), ("demo", "shapes-v1").
        geometry: latent geometry (channels, temporal and spatial factors, patch).
        defaults: default settings.
        preview: latent → RGB factors for live previews.
        text_encoder, denoiser, vae: the three parts.
        device, dtype: where the denoiser runs and in what precision.
        supports_image: whether conditioning items are meaningful for this model.
    """

    id: str
    name: str
    family: str
    variant: str
    geometry: LatentGeometry
    defaults: FamilyDefaults
    preview: PreviewFactors
    text_encoder: TextEncoder
    denoiser: Denoiser
    vae: VideoVAE
    device: torch.device
    dtype: torch.dtype
    supports_image: bool = True
