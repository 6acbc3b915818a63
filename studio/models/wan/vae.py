"""The Wan causal video VAE: configuration, chunked encode/decode, and the Wan 2.1 model.

Both Wan VAEs are causal in time: a convolution at frame t only sees frames ≤ t (all temporal
padding sits on the past side). That lets a clip be processed in chunks — encode takes frame 0
alone and then 4 frames at a time, decode takes one latent frame at a time — with a
``FeatureCache`` that hands every temporal layer the last frames of the previous chunk. The result
equals processing the clip in one piece, and memory does not grow with the frame count.

Module and parameter names follow the original ``Wan2.1_VAE.pth`` / ``Wan2.2_VAE.pth`` layout
(``encoder.conv1.weight``, ``decoder.middle.0.residual.0.gamma``, ``conv2.weight``, …), so those
state dicts load with ``strict=True``. The blocks live in :mod:`studio.models.wan.vae_blocks`,
the Wan 2.2 model in :mod:`studio.models.wan.vae22`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from studio.engine.cancel import NEVER, CancelToken
from studio.errors import CheckpointError, InvalidRequest
from studio.models.wan.vae_blocks import (
    CausalConv3d,
    CausalDecoder,
    CausalEncoder,
    FeatureCache,
    Resample,
    ResidualBlock,
)

logger = logging.getLogger(__name__)

# fmt: off
WAN21_LATENT_MEAN = (
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
    0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
)
WAN21_LATENT_STD = (
    2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
    3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
)
WAN22_LATENT_MEAN = (
    -0.2289, -0.0052, -0.1323, -0.2339, -0.2799, 0.0174, 0.1838, 0.1557,
    -0.1382, 0.0542, 0.2813, 0.0891, 0.1570, -0.0098, 0.0375, -0.1825,
    -0.2246, -0.1207, -0.0698, 0.5109, 0.2665, -0.2108, -0.2158, 0.2502,
    -0.2055, -0.0322, 0.1109, 0.1567, -0.0729, 0.0899, -0.2799, -0.1230,
    -0.0313, -0.1649, 0.0117, 0.0723, -0.2839, -0.2083, -0.0520, 0.3748,
    0.0152, 0.1957, 0.1433, -0.2944, 0.3573, -0.0548, -0.1681, -0.0667,
)
WAN22_LATENT_STD = (
    0.4765, 1.0364, 0.4514, 1.1677, 0.5313, 0.4990, 0.4818, 0.5013,
    0.8158, 1.0344, 0.5894, 1.0901, 0.6885, 0.6165, 0.8454, 0.4978,
    0.5759, 0.3523, 0.7135, 0.6804, 0.5833, 1.4146, 0.8986, 0.5659,
    0.7069, 0.5338, 0.4889, 0.4917, 0.4069, 0.4999, 0.6866, 0.4093,
    0.5709, 0.6065, 0.6415, 0.4944, 0.5726, 1.2042, 0.5458, 1.6887,
    0.3971, 1.0600, 0.3943, 0.5537, 0.5444, 0.4089, 0.7468, 0.7744,
)
# fmt: on


@dataclass(frozen=True, slots=True)
class WanVAEConfig:
    """Architecture of a Wan VAE and the statistics that normalise its latents.

    Attributes:
        version: "2.1" (8× spatial) or "2.2" (2×2 pixel patchify + 8×, residual stages).
        dim: encoder base width (2.1: 96, 2.2: 160).
        dec_dim: decoder base width (2.2: 256); None means ``dim``.
        z_dim: latent channels (2.1: 16, 2.2: 48).
        dim_mult: width multiplier of each stage.
        num_res_blocks: residual blocks per encoder stage (the decoder has one more).
        temporal_downsample: whether each of the first ``len(dim_mult) − 1`` stages halves time.
        latent_mean / latent_std: per-channel statistics, z = (μ − mean) / std.
    """

    version: str
    dim: int = 96
    dec_dim: int | None = None
    z_dim: int = 16
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    temporal_downsample: tuple[bool, ...] = (False, True, True)
    latent_mean: tuple[float, ...] = WAN21_LATENT_MEAN
    latent_std: tuple[float, ...] = WAN21_LATENT_STD

    def __post_init__(self) -> None:
        problem = ""
        if self.version not in ("2.1", "2.2"):
            problem = f"unknown version {self.version!r} (expected '2.1' or '2.2')"
        elif len(self.latent_mean) != self.z_dim or len(self.latent_std) != self.z_dim:
            problem = f"latent mean/std need {self.z_dim} values each"
        elif any(s <= 0 for s in self.latent_std):
            problem = "latent std values must be positive"
        elif len(self.temporal_downsample) != len(self.dim_mult) - 1:
            problem = f"temporal_downsample needs {len(self.dim_mult) - 1} entries"
        elif min(self.dim, self.decoder_dim, self.z_dim, self.num_res_blocks) < 1:
            problem = "widths and block counts must be positive"
        if problem:
            raise CheckpointError(
                f"Invalid Wan VAE configuration: {problem}",
                "check the model's config file or re-download the model",
            )

    @property
    def decoder_dim(self) -> int:
        return self.dim if self.dec_dim is None else self.dec_dim

    @property
    def patch_size(self) -> int:
        """Pixel patchify before the encoder (2.2: 2×2 pixels → 12 channels; 2.1: none)."""
        return 2 if self.version == "2.2" else 1

    @property
    def spatial_factor(self) -> int:
        """Pixels per latent cell along height and width (8 for 2.1, 16 for 2.2)."""
        return self.patch_size * 2 ** (len(self.dim_mult) - 1)

    @property
    def temporal_factor(self) -> int:
        """Frames per latent frame after the first one (4): T' = (T − 1) / r + 1."""
        return 2 ** sum(self.temporal_downsample)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WanVAEConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CheckpointError(
                f"Unknown Wan VAE config fields: {', '.join(unknown)}",
                "check the model's config file",
            )
        values = dict(data)
        for name in ("dim_mult", "temporal_downsample", "latent_mean", "latent_std"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)


WAN21_VAE = WanVAEConfig(version="2.1")
WAN22_VAE = WanVAEConfig(
    version="2.2",
    dim=160,
    dec_dim=256,
    z_dim=48,
    latent_mean=WAN22_LATENT_MEAN,
    latent_std=WAN22_LATENT_STD,
)


class CausalVideoVAE(nn.Module):
    """Chunked encode/decode and latent normalisation shared by the Wan 2.1 and 2.2 VAEs.

    Holds ``encoder``, ``conv1`` (μ and log σ² → same, 1×1×1), ``conv2`` (z → z, 1×1×1) and
    ``decoder``, as in the original checkpoints. The mean/std are not part of the state dict.
    No state is kept between calls: each encode/decode owns its :class:`FeatureCache`, so one
    module may serve several threads.
    """

    def __init__(
        self, config: WanVAEConfig, encoder: CausalEncoder, decoder: CausalDecoder
    ) -> None:
        super().__init__()
        self.config = config
        self.encoder = encoder
        self.conv1 = CausalConv3d(2 * config.z_dim, 2 * config.z_dim, 1)
        self.conv2 = CausalConv3d(config.z_dim, config.z_dim, 1)
        self.decoder = decoder

    @torch.no_grad()
    def encode(self, video: torch.Tensor, cancel: CancelToken = NEVER) -> torch.Tensor:
        """Pixels → normalised latent mean.

        Args:
            video: ``[B, 3, T, H, W]`` in [−1, 1]; T = 1 + 4k; H, W multiples of
                ``config.spatial_factor``. Cast to the module's device and dtype.
            cancel: checked before every chunk (frame 0, then 4 frames at a time).

        Returns:
            z = (μ − mean)/std, ``[B, z_dim, 1 + (T − 1)/4, H/s, W/s]``, float32.
        """
        self._check_video(video)
        weight = self.conv1.weight
        x = self.patchify(video.to(device=weight.device, dtype=weight.dtype))
        cache = FeatureCache()
        chunks = []
        for start, stop in _chunk_spans(x.shape[2], self.config.temporal_factor):
            cancel.check()
            chunks.append(self.encoder(x[:, :, start:stop], cache))
        z = self.config.z_dim  # only μ is used: the first z channels of conv1
        mu = F.conv3d(torch.cat(chunks, dim=2), weight[:z], self.conv1.bias[:z])
        mean, std = self._statistics(mu.device)
        logger.debug("encoded %s → %s", tuple(video.shape), tuple(mu.shape))
        return (mu.float() - mean) / std

    @torch.no_grad()
    def decode(self, latent: torch.Tensor, cancel: CancelToken = NEVER) -> torch.Tensor:
        """Normalised latent → pixels, one latent frame at a time.

        Args:
            latent: ``[B, z_dim, T', H', W']`` (any H', W' ≥ 1, so spatial crops decode too).
            cancel: checked before every latent frame.

        Returns:
            ``[B, 3, 1 + 4(T' − 1), s·H', s·W']`` in [−1, 1], float32.
        """
        self._check_latent(latent)
        weight = self.conv2.weight
        mean, std = self._statistics(latent.device)
        mu = (latent.float() * std + mean).to(device=weight.device, dtype=weight.dtype)
        x = self.conv2(mu)
        cache = FeatureCache()
        out: torch.Tensor | None = None
        start = 0
        for i in range(x.shape[2]):
            cancel.check()
            frames = self.unpatchify(self.decoder(x[:, :, i : i + 1], cache))
            if out is None:  # latent frame 0 gives 1 frame, every later one r frames
                n = 1 + self.config.temporal_factor * (x.shape[2] - 1)
                out = frames.new_empty(
                    (*frames.shape[:2], n, *frames.shape[3:]), dtype=torch.float32
                )
            out[:, :, start : start + frames.shape[2]] = frames
            start += frames.shape[2]
        assert out is not None and start == out.shape[2]
        logger.debug("decoded %s → %s", tuple(latent.shape), tuple(out.shape))
        return out.clamp_(-1.0, 1.0)

    def patchify(self, video: torch.Tensor) -> torch.Tensor:
        """Pixels ``[B, 3, T, H, W]`` → encoder input (identity for Wan 2.1)."""
        return video

    def unpatchify(self, frames: torch.Tensor) -> torch.Tensor:
        """Decoder output → pixels ``[B, 3, T, H, W]`` (identity for Wan 2.1)."""
        return frames

    def _statistics(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent mean and std as float32 ``[1, z_dim, 1, 1, 1]`` on ``device``."""
        cfg = self.config
        mean = torch.tensor(cfg.latent_mean, dtype=torch.float32, device=device)
        std = torch.tensor(cfg.latent_std, dtype=torch.float32, device=device)
        return mean.view(1, -1, 1, 1, 1), std.view(1, -1, 1, 1, 1)

    def _check_video(self, video: torch.Tensor) -> None:
        cfg = self.config
        if video.ndim != 5 or video.shape[1] != 3:
            raise InvalidRequest(
                "video",
                f"expected [B, 3, T, H, W] pixels, got {list(video.shape)}",
                "pass RGB frames as one 5-D tensor",
            )
        frames, height, width = video.shape[2:]
        r, s = cfg.temporal_factor, cfg.spatial_factor
        if (frames - 1) % r:
            low = 1 + (frames - 1) // r * r
            raise InvalidRequest(
                "frames",
                f"{frames} frames cannot be encoded; the VAE needs 1 + {r}·k frames",
                f"use {low} or {low + r} frames",
            )
        if height % s or width % s:
            raise InvalidRequest(
                "size",
                f"{width}×{height} px cannot be encoded; width and height must be multiples of {s}",
                f"use {width // s * s or s}×{height // s * s or s}",
            )

    def _check_latent(self, latent: torch.Tensor) -> None:
        z = self.config.z_dim
        if latent.ndim != 5 or latent.shape[1] != z or latent.shape[2] < 1:
            raise InvalidRequest(
                "latent",
                f"expected [B, {z}, T', H', W'] for this Wan "
                f"{self.config.version} VAE, got {list(latent.shape)}",
                "decode the latent with the VAE of the model that made it",
            )


def _chunk_spans(frames: int, step: int) -> list[tuple[int, int]]:
    """Frame 0 alone, then ``step`` frames at a time: [(0, 1), (1, 5), (5, 9), …]."""
    return [(0, 1)] + [(i, i + step) for i in range(1, frames, step)]


class WanVAE21(CausalVideoVAE):
    """The Wan 2.1 VAE: 8× spatial, 4× temporal, 16 latent channels (``Wan2.1_VAE.pth``)."""

    def __init__(self, config: WanVAEConfig = WAN21_VAE) -> None:
        assert config.version == "2.1", "WanVAE21 needs a version '2.1' config"
        dims = [config.dim * m for m in (1, *config.dim_mult)]
        encoder = CausalEncoder(
            3, (dims[0], dims[-1]), _encoder_stages(config, dims), 2 * config.z_dim
        )
        dec = [config.decoder_dim * m for m in (config.dim_mult[-1], *config.dim_mult[::-1])]
        decoder = CausalDecoder(config.z_dim, (dec[0], dec[-1]), _decoder_stages(config, dec), 3)
        super().__init__(config, encoder, decoder)


def _encoder_stages(config: WanVAEConfig, dims: list[int]) -> list[nn.Module]:
    """Flat list: per stage ``num_res_blocks`` residual blocks, then a downsampler (not last)."""
    layers: list[nn.Module] = []
    for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        for _ in range(config.num_res_blocks):
            layers.append(ResidualBlock(in_dim, out_dim))
            in_dim = out_dim
        if i < len(config.temporal_downsample):
            layers.append(
                Resample(
                    out_dim, "downsample3d" if config.temporal_downsample[i] else "downsample2d"
                )
            )
    return layers


def _decoder_stages(config: WanVAEConfig, dims: list[int]) -> list[nn.Module]:
    """Flat list: per stage ``num_res_blocks + 1`` residual blocks, then an upsampler.

    Each upsampler halves the width, so every stage after the first starts at half width.
    """
    temporal_upsample = config.temporal_downsample[::-1]
    layers: list[nn.Module] = []
    for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        in_dim = in_dim // 2 if i > 0 else in_dim
        for _ in range(config.num_res_blocks + 1):
            layers.append(ResidualBlock(in_dim, out_dim))
            in_dim = out_dim
        if i < len(temporal_upsample):
            layers.append(Resample(out_dim, "upsample3d" if temporal_upsample[i] else "upsample2d"))
    return layers
