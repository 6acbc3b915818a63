"""The Wan 2.2 VAE (TI2V-5B): 2×2 pixel patchify, residual stages, 16× spatial, 48 channels.

Same causal, chunked mechanics as Wan 2.1 (:mod:`studio.models.wan.vae`). What differs: pixels
are folded 2×2 into channels before the encoder (3 → 12) and unfolded after the decoder; each
encoder stage adds a parameter-free :class:`AvgDown3D` shortcut around its residual blocks and
downsampler, each decoder stage a :class:`DupUp3D` shortcut around its residual blocks and
upsampler; upsamplers keep their width. State-dict nesting is the original
``encoder.downsamples.i.downsamples.j.*`` / ``decoder.upsamples.i.upsamples.j.*``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from studio.models.wan.vae import WAN22_VAE, CausalVideoVAE, WanVAEConfig
from studio.models.wan.vae_blocks import (
    CausalDecoder,
    CausalEncoder,
    FeatureCache,
    Resample,
    ResidualBlock,
    Stream,
)


def patchify(video: torch.Tensor, patch: int = 2) -> torch.Tensor:
    """Fold ``patch``×``patch`` pixels into channels.

    ``[B, C, T, H, W]`` → ``[B, C·p², T, H/p, W/p]``; output channel ``c·p² + r·p + q`` holds
    pixel row offset q and column offset r (the original ``b (c r q) f h w`` order).
    """
    b, c, t, h, w = video.shape
    x = video.reshape(b, c, t, h // patch, patch, w // patch, patch)
    x = x.permute(0, 1, 6, 4, 2, 3, 5)  # [B, C, r, q, T, H/p, W/p]
    return x.reshape(b, c * patch * patch, t, h // patch, w // patch)


def unpatchify(x: torch.Tensor, patch: int = 2) -> torch.Tensor:
    """Inverse of :func:`patchify`: ``[B, C·p², T, H, W]`` → ``[B, C, T, H·p, W·p]``."""
    b, cpp, t, h, w = x.shape
    c = cpp // (patch * patch)
    y = x.reshape(b, c, patch, patch, t, h, w).permute(0, 1, 4, 5, 3, 6, 2)
    return y.reshape(b, c, t, h * patch, w * patch)


class AvgDown3D(nn.Module):
    """Parameter-free downsampling shortcut: space/time-to-channel, then average channel groups.

    ``[B, C_in, T, H, W]`` → ``[B, C_out, ⌈T/f_t⌉, H/f_s, W/f_s]``. Time is zero-padded at the
    front to a multiple of f_t, so a clip's first (single-frame) chunk is averaged with zeros.
    """

    def __init__(self, in_dim: int, out_dim: int, factor_t: int, factor_s: int) -> None:
        super().__init__()
        factor = factor_t * factor_s * factor_s
        assert (in_dim * factor) % out_dim == 0, "channels do not divide into groups"
        self.out_dim, self.factor_t, self.factor_s = out_dim, factor_t, factor_s
        self.group = in_dim * factor // out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ft, fs = self.factor_t, self.factor_s
        pad = -x.shape[2] % ft
        if pad:
            x = F.pad(x, (0, 0, 0, 0, pad, 0))
        b, c, t, h, w = x.shape
        x = x.reshape(b, c, t // ft, ft, h // fs, fs, w // fs, fs)
        x = x.permute(0, 1, 3, 5, 7, 2, 4, 6)  # [B, C, f_t, f_s, f_s, T/f_t, H/f_s, W/f_s]
        x = x.reshape(b, self.out_dim, self.group, t // ft, h // fs, w // fs)
        return x.mean(dim=2)


class DupUp3D(nn.Module):
    """Parameter-free upsampling shortcut: repeat channels, then channel-to-space/time.

    ``[B, C_in, T, H, W]`` → ``[B, C_out, T·f_t, H·f_s, W·f_s]``; in the clip's first chunk the
    leading f_t − 1 frames are dropped (1 + k frames → 1 + f_t·k, like the upsampler).
    """

    def __init__(self, in_dim: int, out_dim: int, factor_t: int, factor_s: int) -> None:
        super().__init__()
        factor = factor_t * factor_s * factor_s
        assert (out_dim * factor) % in_dim == 0, "channels do not divide into repeats"
        self.out_dim, self.factor_t, self.factor_s = out_dim, factor_t, factor_s
        self.repeats = out_dim * factor // in_dim

    def forward(self, x: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
        ft, fs = self.factor_t, self.factor_s
        b, _, t, h, w = x.shape
        x = x.repeat_interleave(self.repeats, dim=1)
        x = x.view(b, self.out_dim, ft, fs, fs, t, h, w).permute(0, 1, 5, 2, 6, 3, 7, 4)
        x = x.reshape(b, self.out_dim, t * ft, h * fs, w * fs)
        return x[:, :, ft - 1 :] if cache.first_visit(self) else x


class DownStage(nn.Module):
    """Residual blocks (+ downsampler), plus an :class:`AvgDown3D` shortcut around them."""

    def __init__(self, in_dim: int, out_dim: int, blocks: int, temporal: bool, down: bool) -> None:
        super().__init__()
        self.avg_shortcut = AvgDown3D(in_dim, out_dim, 2 if temporal else 1, 2 if down else 1)
        layers: list[nn.Module] = [
            ResidualBlock(in_dim if j == 0 else out_dim, out_dim) for j in range(blocks)
        ]
        if down:
            layers.append(Resample(out_dim, "downsample3d" if temporal else "downsample2d"))
        self.downsamples = Stream(*layers)

    def forward(self, x: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
        return self.downsamples(x, cache).add_(self.avg_shortcut(x))


class UpStage(nn.Module):
    """Residual blocks (+ a width-keeping upsampler and a :class:`DupUp3D` shortcut)."""

    def __init__(self, in_dim: int, out_dim: int, blocks: int, temporal: bool, up: bool) -> None:
        super().__init__()
        self.avg_shortcut = DupUp3D(in_dim, out_dim, 2 if temporal else 1, 2) if up else None
        layers: list[nn.Module] = [
            ResidualBlock(in_dim if j == 0 else out_dim, out_dim) for j in range(blocks)
        ]
        if up:
            layers.append(
                Resample(out_dim, "upsample3d" if temporal else "upsample2d", out_dim=out_dim)
            )
        self.upsamples = Stream(*layers)

    def forward(self, x: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
        y = self.upsamples(x, cache)
        return y if self.avg_shortcut is None else y.add_(self.avg_shortcut(x, cache))


class WanVAE22(CausalVideoVAE):
    """The Wan 2.2 VAE: 16× spatial, 4× temporal, 48 latent channels (``Wan2.2_VAE.pth``)."""

    def __init__(self, config: WanVAEConfig = WAN22_VAE) -> None:
        assert config.version == "2.2", "WanVAE22 needs a version '2.2' config"
        mult, blocks = config.dim_mult, config.num_res_blocks
        down, up = config.temporal_downsample, config.temporal_downsample[::-1]
        last = len(mult) - 1
        enc = [config.dim * m for m in (1, *mult)]
        encoder = CausalEncoder(
            3 * config.patch_size**2,
            (enc[0], enc[-1]),
            [
                DownStage(enc[i], enc[i + 1], blocks, i < last and down[i], i < last)
                for i in range(len(mult))
            ],
            2 * config.z_dim,
        )
        dec = [config.decoder_dim * m for m in (mult[-1], *mult[::-1])]
        decoder = CausalDecoder(
            config.z_dim,
            (dec[0], dec[-1]),
            [
                UpStage(dec[i], dec[i + 1], blocks + 1, i < last and up[i], i < last)
                for i in range(len(mult))
            ],
            3 * config.patch_size**2,
        )
        super().__init__(config, encoder, decoder)

    def patchify(self, video: torch.Tensor) -> torch.Tensor:
        return patchify(video, self.config.patch_size)

    def unpatchify(self, frames: torch.Tensor) -> torch.Tensor:
        return unpatchify(frames, self.config.patch_size)
