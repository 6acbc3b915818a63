"""LTX-Video's causal video VAE (``CausalVideoAutoencoder``; docs/families/ltx.md).

Parameter and buffer names are the original single file's ``vae.*`` keys without the prefix, so
``LTXVideoVAE(config).load_state_dict(state, strict=True)`` takes them as they are (diffusers
names go through :func:`studio.models.ltx.vae_keys.own_vae_state` first).

Video ``[B, 3, T, H, W]`` in [−1, 1], T = 1 + 8k, H and W multiples of 32 ↔ latent
``[B, 128, 1 + k, H/32, W/32]``. The encoder pads time causally (frame t sees frames ≤ t); the
published decoders are not causal. ``encode`` returns the posterior mean and ``decode`` takes
such raw latents; the diffusion model sees ``normalise``d ones, (z − mean-of-means)/std-of-means
per channel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from studio.errors import InvalidRequest
from studio.models.ltx.vae_blocks import (
    CausalConv3d,
    DepthToSpaceUp,
    PerChannelStatistics,
    ResnetBlock3D,
    ResStack,
    SpaceToDepthDown,
    TimestepEmbedder,
    pixel_norm,
)
from studio.models.ltx.vae_config import (
    DECODER_COMPRESS,
    RES,
    RES_WIDEN,
    LTXVAEConfig,
    VAEBlock,
    decoder_blocks,
    decoder_widths,
    encoder_widths,
)


def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """``[B, C, T, H·p, W·p]`` → ``[B, C·p·p, T, H, W]``, channel index ``(c·p + x)·p + y``
    (the column offset before the row offset, as the original lays them out)."""
    b, c, t, h, w = x.shape
    x = x.reshape(b, c, t, h // p, p, w // p, p).permute(0, 1, 6, 4, 2, 3, 5)
    return x.reshape(b, c * p * p, t, h // p, w // p)


def unpatchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """The inverse of :func:`patchify`."""
    b, c, t, h, w = x.shape
    x = x.reshape(b, c // (p * p), p, p, t, h, w).permute(0, 1, 4, 5, 3, 6, 2)
    return x.reshape(b, c // (p * p), t, h * p, w * p)


def _encoder_block(block: VAEBlock, width: int, new: int, mode: str) -> nn.Module:
    if block.kind == RES:
        return ResStack(width, block.num_layers, padding_mode=mode)
    if block.kind == RES_WIDEN:
        return ResnetBlock3D(width, new, padding_mode=mode)
    if block.kind.endswith("_res"):
        return SpaceToDepthDown(width, new, block.stride, mode)
    return CausalConv3d(width, new, stride=block.stride, padding_mode=mode)


class Encoder(nn.Module):
    """Patchify → ``conv_in`` → ``down_blocks`` → PixelNorm → SiLU → ``conv_out``, causal in time;
    ``[B, 3, T, H, W]`` → moments ``[B, C_out, T', H', W']`` (mean first)."""

    def __init__(self, config: LTXVAEConfig) -> None:
        super().__init__()
        mode, widths = config.spatial_padding_mode, encoder_widths(config)
        self.patch_size = config.patch_size
        self.conv_in = CausalConv3d(config.in_channels * config.patch_size**2,
                                    config.encoder_base_channels, padding_mode=mode)
        self.down_blocks = nn.ModuleList(
            _encoder_block(block, w, n, mode)
            for block, (w, n) in zip(config.encoder_blocks, widths, strict=True))
        self.conv_out = CausalConv3d(widths[-1][1], config.encoder_out_channels, padding_mode=mode)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(patchify(video, self.patch_size), True)
        for block in self.down_blocks:
            x = block(x, True)
        return self.conv_out(F.silu(pixel_norm(x)), True)


def _decoder_block(block: VAEBlock, width: int, new: int, config: LTXVAEConfig) -> nn.Module:
    mode = config.spatial_padding_mode
    if block.kind == RES:
        return ResStack(width, block.num_layers, block.inject_noise,
                        config.timestep_conditioning, mode)
    if block.kind == RES_WIDEN:  # never timestep-conditioned, as in the original
        return ResnetBlock3D(width, new, block.inject_noise, False, mode)
    return DepthToSpaceUp(width, DECODER_COMPRESS[block.kind], block.residual,
                          block.multiplier, mode)


class Decoder(nn.Module):
    """``conv_in`` → ``up_blocks`` → PixelNorm → (timestep scale/shift) → SiLU → ``conv_out`` →
    unpatchify; ``[B, C, T', H', W']`` → ``[B, 3, T, H, W]``."""

    def __init__(self, config: LTXVAEConfig) -> None:
        super().__init__()
        mode, widths = config.spatial_padding_mode, decoder_widths(config)
        self.patch_size, self.causal = config.patch_size, config.causal_decoder
        self.conv_in = CausalConv3d(config.latent_channels, widths[0][0], padding_mode=mode)
        self.up_blocks = nn.ModuleList(
            _decoder_block(block, w, n, config)
            for block, (w, n) in zip(decoder_blocks(config), widths, strict=True))
        last = widths[-1][1]
        self.conv_out = CausalConv3d(last, config.out_channels * config.patch_size**2,
                                     padding_mode=mode)
        self.timestep_conditioning = config.timestep_conditioning
        if self.timestep_conditioning:
            self.timestep_scale_multiplier = nn.Parameter(torch.tensor(1000.0))
            self.last_time_embedder = TimestepEmbedder(2 * last)
            self.last_scale_shift_table = nn.Parameter(torch.randn(2, last) / last**0.5)

    def forward(self, z: torch.Tensor, timestep: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        x = self.conv_in(z, self.causal)
        scaled = timestep * self.timestep_scale_multiplier if self.timestep_conditioning else None
        for block in self.up_blocks:
            if isinstance(block, ResStack):
                # The stack's blocks run from here, so each block's input is freed once the next
                # has it; calling the stack would hold its input (a whole activation) to its end.
                temb = block.embed(scaled, x.dtype)
                for res in block.res_blocks:
                    x = res(x, self.causal, temb, generator)
            elif isinstance(block, ResnetBlock3D):
                x = block(x, self.causal, None, generator)
            else:
                x = block(x, self.causal)
        x = pixel_norm(x)
        if self.timestep_conditioning:
            emb = self.last_time_embedder(scaled, x.dtype).unflatten(1, (2, -1))
            ada = (emb + self.last_scale_shift_table[None])[..., None, None, None]
            shift, scale = ada.unbind(1)
            x = torch.addcmul(shift, x, 1 + scale)
        # Rebinding x lets the convolution's input go before unpatchify copies its output.
        x = self.conv_out(F.silu(x, inplace=True), self.causal)
        return unpatchify(x, self.patch_size)


class LTXVideoVAE(nn.Module):
    """Encoder, decoder and ``per_channel_statistics`` of one LTX-Video VAE (see module doc)."""

    def __init__(self, config: LTXVAEConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.per_channel_statistics = PerChannelStatistics(config.latent_channels)

    @property
    def timestep_conditioning(self) -> bool:
        """Whether :meth:`decode` needs the decode timestep (0.9.1 and later)."""
        return self.config.timestep_conditioning

    @property
    def latent_channels(self) -> int:
        return self.config.latent_channels

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """``[B, 3, T, H, W]`` in [−1, 1] → the posterior mean ``[B, C, T', H', W']``, not
        normalised; T' = 1 + (T − 1)/8, H' = H/32, W' = W/32."""
        self._check_video(video)
        moments = self.encoder(video.to(self.encoder.conv_in.conv.weight.dtype))
        return moments[:, : self.config.latent_channels]

    def decode(self, z: torch.Tensor, timestep: torch.Tensor | float | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Raw latent ``[B, C, T', H', W']`` → video ``[B, 3, 1 + 8(T' − 1), 32·H', 32·W']``,
        roughly in [−1, 1]. ``timestep`` ``[B]`` (or one number): the decode timestep in [0, 1],
        required exactly when the decoder is timestep-conditioned. ``generator`` draws the
        0.9.1 decoder's injected noise (the global generator when None)."""
        if z.ndim != 5 or z.shape[1] != self.latent_channels:
            raise InvalidRequest("latent", f"expected [B, {self.latent_channels}, T', H', W'], "
                                 f"got {tuple(z.shape)}")
        z = z.to(self.decoder.conv_in.conv.weight.dtype)
        return self.decoder(z, self._timestep(timestep, z), generator)

    def normalise(self, z: torch.Tensor) -> torch.Tensor:
        """Per channel ``(z − mean-of-means) / std-of-means`` on ``[B, C, T', H', W']``."""
        stats = self.per_channel_statistics
        return (z - _channels(stats.mean(), z)) / _channels(stats.std(), z)

    def denormalise(self, z: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`normalise`."""
        stats = self.per_channel_statistics
        return z * _channels(stats.std(), z) + _channels(stats.mean(), z)

    def _timestep(self, timestep: torch.Tensor | float | None,
                  z: torch.Tensor) -> torch.Tensor | None:
        if not self.timestep_conditioning:
            if timestep is not None:
                raise InvalidRequest("decode timestep", f"this VAE ({self.config.version}) has no "
                                     "timestep-conditioned decoder", "pass timestep=None")
            return None
        if timestep is None:
            raise InvalidRequest("decode timestep", f"the {self.config.version} VAE decoder needs "
                                 "one", "pass the decode timestep, e.g. 0.05")
        t = torch.as_tensor(timestep, dtype=torch.float32, device=z.device).reshape(-1)
        if t.numel() not in (1, z.shape[0]):
            raise InvalidRequest("decode timestep", f"{t.numel()} values for a batch of "
                                 f"{z.shape[0]}")
        return t.expand(z.shape[0]).to(z.dtype)

    def _check_video(self, video: torch.Tensor) -> None:
        c = self.config
        if video.ndim != 5 or video.shape[1] != c.in_channels:
            raise InvalidRequest("video", f"expected [B, {c.in_channels}, T, H, W], "
                                 f"got {tuple(video.shape)}")
        t, h, w = video.shape[2:]
        if (t - 1) % c.temporal_ratio or h % c.spatial_ratio or w % c.spatial_ratio:
            raise InvalidRequest("video", f"{t} frames of {w}×{h}: frames must be 1 + "
                                 f"{c.temporal_ratio}k and sides multiples of {c.spatial_ratio}")


def _channels(values: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    return values.to(device=z.device, dtype=z.dtype).view(1, -1, 1, 1, 1)
