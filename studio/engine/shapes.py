"""Pixel ↔ latent shape arithmetic for causal video VAEs and patchified denoisers."""

from __future__ import annotations

from dataclasses import dataclass

from studio.errors import InvalidRequest


@dataclass(frozen=True, slots=True)
class LatentGeometry:
    """How a model family maps pixels to latents and latents to tokens.

    Attributes:
        channels: latent channels C (16 for the Wan 2.1 VAE, 48 for Wan 2.2).
        temporal_factor: r, the causal VAE's temporal compression (T' = (T − 1)/r + 1).
        spatial_factor: s, the VAE's spatial compression (H' = H/s).
        patch: the denoiser's (p_t, p_h, p_w) patch size.
    """

    channels: int
    temporal_factor: int
    spatial_factor: int
    patch: tuple[int, int, int] = (1, 2, 2)

    @property
    def size_multiple(self) -> int:
        """Width and height must be multiples of this many pixels (s · p)."""
        return self.spatial_factor * self.patch[1]

    def latent_frames(self, frames: int) -> int:
        return (frames - 1) // self.temporal_factor + 1

    def latent_shape(
        self, frames: int, height: int, width: int, batch: int = 1
    ) -> tuple[int, int, int, int, int]:
        """``[B, C, T', H', W']`` for a video of ``frames`` × ``height`` × ``width`` pixels."""
        self.check_video_size(frames, height, width)
        s = self.spatial_factor
        return (batch, self.channels, self.latent_frames(frames), height // s, width // s)

    def tokens_per_frame(self, height: int, width: int) -> int:
        """Denoiser tokens per latent frame: (H'/p_h)·(W'/p_w)."""
        m = self.size_multiple
        return (height // m) * (width // m)

    def pixel_frames(self, latent_frames: int) -> int:
        return (latent_frames - 1) * self.temporal_factor + 1

    def nearest_frames(self, frames: int) -> tuple[int, int]:
        """The valid frame counts (1 + r·k) at or just below and above ``frames``."""
        r = self.temporal_factor
        below = max(1, 1 + ((frames - 1) // r) * r)
        return below, below + r if below < frames else below

    def nearest_side(self, pixels: int) -> tuple[int, int]:
        m = self.size_multiple
        below = max(m, (pixels // m) * m)
        return below, below + m if below < pixels else below

    def check_video_size(self, frames: int, height: int, width: int) -> None:
        """Raise :class:`InvalidRequest` naming the nearest valid values; never round silently."""
        r = self.temporal_factor
        if frames < 1 or (frames - 1) % r:
            low, high = self.nearest_frames(max(frames, 1))
            choices = f"{low} or {high}" if low != high else f"{low}"
            raise InvalidRequest(
                "frames",
                f"{frames} is not valid; this model needs 1 + {r}·k frames",
                f"use {choices}",
            )
        for field, value in (("height", height), ("width", width)):
            m = self.size_multiple
            if value < m or value % m:
                low, high = self.nearest_side(max(value, 1))
                choices = f"{low} or {high}" if low != high else f"{low}"
                raise InvalidRequest(
                    field,
                    f"{value} px is not valid; this model needs a multiple of {m} px",
                    f"use {choices}",
                )
