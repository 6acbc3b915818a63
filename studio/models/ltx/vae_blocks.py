"""Building blocks of LTX-Video's causal video VAE, named as in the original single file
(``CausalVideoAutoencoder``; docs/families/ltx.md). Activations are ``[B, C, T, H, W]``.

Every 3-D convolution pads height and width itself and time by repeating the edge frames:
causally (the first frame twice in front) in the encoder, symmetrically (first and last frame
once) in the non-causal decoder. Normalisation is PixelNorm: each position divided by the RMS of
its channels, without parameters.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

PIXEL_NORM_EPS = 1e-8
LAYER_NORM_EPS = 1e-6
SINUSOID_DIM = 256


def pixel_norm(x: torch.Tensor) -> torch.Tensor:
    """``x / sqrt(mean_c(x²) + 1e-8)`` over the channel axis of ``[B, C, T, H, W]``."""
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + PIXEL_NORM_EPS)


class CausalConv3d(nn.Module):
    """Cubic 3-D convolution whose time padding repeats edge frames (see the module doc)."""

    def __init__(self, channels_in: int, channels_out: int, kernel: int = 3,
                 stride: tuple[int, int, int] = (1, 1, 1), padding_mode: str = "zeros") -> None:
        super().__init__()
        self.kernel = kernel
        self.conv = nn.Conv3d(channels_in, channels_out, kernel, stride=stride,
                              padding=(0, kernel // 2, kernel // 2), padding_mode=padding_mode)

    def forward(self, x: torch.Tensor, causal: bool = True) -> torch.Tensor:
        if self.kernel > 1:
            first, last = x[:, :, :1], x[:, :, -1:]
            if causal:
                x = torch.cat([first.expand(-1, -1, self.kernel - 1, -1, -1), x], dim=2)
            else:
                side = (self.kernel - 1) // 2
                x = torch.cat([first.expand(-1, -1, side, -1, -1), x,
                               last.expand(-1, -1, side, -1, -1)], dim=2)
        return self.conv(x)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of ``[B, C, T, H, W]`` (the original's ``norm3.norm``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=LAYER_NORM_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.movedim(1, -1)).movedim(-1, 1)


class TimestepEmbedder(nn.Module):
    """Decode timestep (already ×1000) ``[B]`` → ``[B, dim]``: 256-wide sinusoid laid out
    ``[cos, sin]`` with frequencies ``10000^(−i/128)``, then Linear → SiLU → Linear. The child
    ``timestep_embedder`` keeps the original's (diffusers PixArt embedder's) parameter names."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.timestep_embedder = nn.Module()
        self.timestep_embedder.linear_1 = nn.Linear(SINUSOID_DIM, dim)
        self.timestep_embedder.linear_2 = nn.Linear(dim, dim)

    def forward(self, timestep: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        half = SINUSOID_DIM // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32,
                                                            device=timestep.device) / half)
        args = timestep.float()[:, None] * freqs[None]
        sinusoid = torch.cat([torch.cos(args), torch.sin(args)], dim=-1).to(dtype)
        layers = self.timestep_embedder
        return layers.linear_2(F.silu(layers.linear_1(sinusoid)))


def _spatial_noise(x: torch.Tensor, scale: torch.Tensor,
                   generator: torch.Generator | None) -> torch.Tensor:
    """StyleGAN-like noise: one ``[H, W]`` draw shared by batch, channels and frames, scaled
    per channel by ``scale`` ``[C, 1, 1]``, added to ``x`` in place."""
    noise = torch.randn(x.shape[-2:], generator=generator, device=x.device, dtype=x.dtype)
    return x.add_((noise[None] * scale)[None, :, None])  # x: the caller's fresh conv output


class ResnetBlock3D(nn.Module):
    """PixelNorm → (timestep scale/shift) → SiLU → conv, twice, plus a shortcut (LayerNorm and a
    1×1×1 convolution when the width changes). ``temb`` ``[B, 4·C_in, 1, 1, 1]``."""

    def __init__(self, channels_in: int, channels_out: int, inject_noise: bool = False,
                 timestep_conditioning: bool = False, padding_mode: str = "zeros") -> None:
        super().__init__()
        self.conv1 = CausalConv3d(channels_in, channels_out, padding_mode=padding_mode)
        self.conv2 = CausalConv3d(channels_out, channels_out, padding_mode=padding_mode)
        self.inject_noise = inject_noise
        if inject_noise:
            self.per_channel_scale1 = nn.Parameter(torch.zeros(channels_in, 1, 1))
            self.per_channel_scale2 = nn.Parameter(torch.zeros(channels_in, 1, 1))
        self.widens = channels_in != channels_out
        if self.widens:
            self.conv_shortcut = nn.Conv3d(channels_in, channels_out, 1)
            self.norm3 = ChannelLayerNorm(channels_in)
        self.timestep_conditioning = timestep_conditioning
        if timestep_conditioning:
            self.scale_shift_table = nn.Parameter(torch.randn(4, channels_in) / channels_in**0.5)

    def forward(self, x: torch.Tensor, causal: bool, temb: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        # Every intermediate below is this block's own fresh tensor, so the SiLUs, the noise
        # and the residual run in place (no second activation-sized allocation), and each
        # modulation is one addcmul.
        h = pixel_norm(x)
        if self.timestep_conditioning:
            assert temb is not None  # the caller (ResStack) embeds the timestep
            ada = temb.unflatten(1, (4, -1)) + self.scale_shift_table[None, :, :, None, None, None]
            shift1, scale1, shift2, scale2 = ada.unbind(dim=1)
            h = torch.addcmul(shift1, h, 1 + scale1)
        h = self.conv1(F.silu(h, inplace=True), causal)
        if self.inject_noise:
            h = _spatial_noise(h, self.per_channel_scale1, generator)
        h = pixel_norm(h)
        if self.timestep_conditioning:
            h = torch.addcmul(shift2, h, 1 + scale2)
        h = self.conv2(F.silu(h, inplace=True), causal)
        if self.inject_noise:
            h = _spatial_noise(h, self.per_channel_scale2, generator)
        if self.widens:
            x = self.conv_shortcut(self.norm3(x))
        return h.add_(x)


class ResStack(nn.Module):
    """``res_x``: ``num_layers`` ResnetBlocks at one width; a timestep-conditioned one embeds the
    scaled timestep once (``time_embedder``, 4·C wide) for all of them."""

    def __init__(self, channels: int, num_layers: int, inject_noise: bool = False,
                 timestep_conditioning: bool = False, padding_mode: str = "zeros") -> None:
        super().__init__()
        if timestep_conditioning:
            self.time_embedder = TimestepEmbedder(4 * channels)
        self.timestep_conditioning = timestep_conditioning
        self.res_blocks = nn.ModuleList(
            ResnetBlock3D(channels, channels, inject_noise, timestep_conditioning, padding_mode)
            for _ in range(num_layers))

    def embed(self, timestep: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
        """The blocks' modulation ``[B, 4·C, 1, 1, 1]`` from the scaled timestep ``[B]`` (None
        without timestep conditioning)."""
        if not self.timestep_conditioning:
            return None
        assert timestep is not None  # LTXVideoVAE.decode refuses a missing timestep
        return self.time_embedder(timestep, dtype)[:, :, None, None, None]

    def forward(self, x: torch.Tensor, causal: bool, timestep: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        temb = self.embed(timestep, x.dtype)
        for block in self.res_blocks:
            x = block(x, causal, temb, generator)
        return x


def fold(x: torch.Tensor, stride: tuple[int, int, int]) -> torch.Tensor:
    """Space-to-depth: ``[B, C, T·s0, H·s1, W·s2]`` → ``[B, C·s0·s1·s2, T, H, W]``, channel
    index ``((c·s0 + i)·s1 + j)·s2 + k``."""
    b, c, t, h, w = x.shape
    s0, s1, s2 = stride
    x = x.reshape(b, c, t // s0, s0, h // s1, s1, w // s2, s2)
    return x.permute(0, 1, 3, 5, 7, 2, 4, 6).reshape(b, c * s0 * s1 * s2, t // s0, h // s1,
                                                     w // s2)


def unfold(x: torch.Tensor, stride: tuple[int, int, int]) -> torch.Tensor:
    """Depth-to-space, the inverse of :func:`fold`."""
    b, c, t, h, w = x.shape
    s0, s1, s2 = stride
    x = x.reshape(b, c // (s0 * s1 * s2), s0, s1, s2, t, h, w)
    return x.permute(0, 1, 5, 2, 6, 3, 7, 4).reshape(b, -1, t * s0, h * s1, w * s2)


class SpaceToDepthDown(nn.Module):
    """0.9.5's ``compress_*_res``: a convolution to ``out / cells`` channels folded into depth,
    plus the input folded and averaged over groups of channels. Time stride 2 first repeats the
    first frame, so ``1 + 2k`` frames become ``1 + k``."""

    def __init__(self, channels_in: int, channels_out: int, stride: tuple[int, int, int],
                 padding_mode: str = "zeros") -> None:
        super().__init__()
        self.stride = stride
        cells = stride[0] * stride[1] * stride[2]
        self.group = channels_in * cells // channels_out
        self.conv = CausalConv3d(channels_in, channels_out // cells, padding_mode=padding_mode)

    def forward(self, x: torch.Tensor, causal: bool = True) -> torch.Tensor:
        if self.stride[0] == 2:
            x = torch.cat([x[:, :, :1], x], dim=2)
        skip = fold(x, self.stride)
        skip = skip.unflatten(1, (-1, self.group)).mean(dim=2)
        return fold(self.conv(x, causal), self.stride) + skip


class DepthToSpaceUp(nn.Module):
    """Decoder ``compress_*``: a convolution to ``cells · C / reduction`` channels unfolded into
    space-time; with time stride 2 the first output frame is dropped (``1 + k`` → ``1 + 2k``).
    ``residual`` adds the unfolded input, tiled ``cells / reduction`` times over channels."""

    def __init__(self, channels: int, stride: tuple[int, int, int], residual: bool = False,
                 reduction: int = 1, padding_mode: str = "zeros") -> None:
        super().__init__()
        self.stride, self.residual = stride, residual
        self.cells = stride[0] * stride[1] * stride[2]
        self.reduction = reduction
        self.conv = CausalConv3d(channels, self.cells * channels // reduction,
                                 padding_mode=padding_mode)

    def forward(self, x: torch.Tensor, causal: bool = True) -> torch.Tensor:
        drop = self.stride[0] - 1
        out = unfold(self.conv(x, causal), self.stride)[:, :, drop:]
        if self.residual:  # the tiled input added by broadcasting, not materialised
            skip = unfold(x, self.stride)[:, None, :, drop:]
            out.unflatten(1, (self.cells // self.reduction, -1)).add_(skip)
        return out


class PerChannelStatistics(nn.Module):
    """The latent statistics stored with the weights: buffers ``mean-of-means`` and
    ``std-of-means`` ``[C]``. Like the original, loading ignores any other row under this prefix
    (single files also carry ``channel``, ``mean-of-stds``, ``mean-of-stds_over_std-of-means``)
    and takes a missing ``mean-of-means`` as zeros."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("mean-of-means", torch.zeros(channels))
        self.register_buffer("std-of-means", torch.ones(channels))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs) -> None:  # noqa: ANN001 - torch hook
        mean, std = prefix + "mean-of-means", prefix + "std-of-means"
        if mean not in state_dict and std in state_dict:
            state_dict[mean] = torch.zeros_like(state_dict[std])
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        unexpected_keys[:] = [k for k in unexpected_keys if not k.startswith(prefix)]

    def mean(self) -> torch.Tensor:
        return self.get_buffer("mean-of-means")

    def std(self) -> torch.Tensor:
        return self.get_buffer("std-of-means")
