"""The named ``studio bench`` configurations a family offers, and the FLOP counts they report.

A configuration fixes what is timed: the model (random weights built at run time, or one of the
catalogue's built-in sets), the video size, the VAE decode size and the generate section's
request, with optional targets the run is measured against. ``studio bench`` lists the
configurations of every registered family (:func:`studio.models.registry.families`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from studio.engine.model import LoadedModel
from studio.engine.shapes import LatentGeometry


@dataclass(frozen=True, slots=True)
class FlopCount:
    """FLOPs of one denoiser forward pass, by kind (all for the whole batch).

    Attributes:
        self_attention: self-attention scores QKᵀ and weighted sum AV, ``4·B·L²·dim`` per block.
        projections: q, k, v, o of self- and cross-attention.
        cross_attention: cross-attention scores and sum over the context, ``4·B·L·L_ctx·dim``.
        ffn: the feed-forward network, ``4·B·L·dim·ffn_dim`` per block.
        embeddings: patch, text and time embeddings and the output head.
    """

    self_attention: float
    projections: float
    cross_attention: float
    ffn: float
    embeddings: float

    @property
    def total(self) -> float:
        return (self.self_attention + self.projections + self.cross_attention + self.ffn
                + self.embeddings)

    @property
    def self_attention_share(self) -> float:
        """Fraction of the total spent in self-attention scores and sums (0…1)."""
        return self.self_attention / self.total

    def to_dict(self) -> dict[str, float]:
        return {"self_attention": self.self_attention, "projections": self.projections,
                "cross_attention": self.cross_attention, "ffn": self.ffn,
                "embeddings": self.embeddings, "total": self.total}  # fmt: skip


#: ``flops(tokens, context_len, batch, per_token_time)`` of one denoiser forward.
FlopCounter = Callable[[int, int, int, bool], FlopCount]
#: ``build(device, dtype)`` → a model of random weights.
ModelBuilder = Callable[[torch.device, torch.dtype], LoadedModel]


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """One benchmark configuration.

    Attributes:
        name: what ``--config`` takes.
        description: one line on what it runs (the table's title).
        geometry: the model's latent geometry.
        width, height, frames: the video size (pixels, frames).
        vae_width, vae_height, vae_frames: the size the VAE decode row uses.
        text_len: prompt rows of the denoiser's context.
        build: makes the model with random weights; None runs the built-in set ``model_id``.
        model_id: the catalogue id of the built-in set a configuration without ``build`` runs.
        flops: the denoiser's FLOP count (None: no throughput row).
        cuda_only: too large for a CPU run.
        steps, shift, fps, prompt: the generate section's request (``--steps`` overrides).
        generate_runs: generations the generate section times after a first one (median per
            stage); 1 times just one.
        targets: ``(row, seconds)`` the configuration must stay within, shown beside the rows:
            "load" (model load) and "generate" (the median generation).
    """

    name: str
    description: str
    geometry: LatentGeometry
    width: int
    height: int
    frames: int
    vae_width: int
    vae_height: int
    vae_frames: int
    text_len: int = 512
    build: ModelBuilder | None = None
    model_id: str = ""
    flops: FlopCounter | None = None
    cuda_only: bool = False
    steps: int = 2
    shift: float = 5.0
    fps: float = 16.0
    prompt: str = "a red fox runs over the snow in the sunny day"
    generate_runs: int = 1
    targets: tuple[tuple[str, float], ...] = ()

    def target(self, row: str) -> float | None:
        return dict(self.targets).get(row)

    @property
    def tokens(self) -> int:
        g = self.geometry
        return g.latent_frames(self.frames) * g.tokens_per_frame(self.height, self.width)

    def latent_shape(self, batch: int = 1) -> tuple[int, int, int, int, int]:
        return self.geometry.latent_shape(self.frames, self.height, self.width, batch)

    def vae_latent_shape(self) -> tuple[int, int, int, int, int]:
        return self.geometry.latent_shape(self.vae_frames, self.vae_height, self.vae_width)

    def describe(self) -> str:
        return (f"{self.name}: {self.description}; {self.width}×{self.height}×{self.frames} "
                f"({self.tokens} tokens); VAE decode at "
                f"{self.vae_width}×{self.vae_height}×{self.vae_frames}")
