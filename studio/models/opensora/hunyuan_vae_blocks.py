"""Building blocks of the HunyuanVideo causal 3D VAE (the autoencoder Open-Sora 2.0 uses).

Every tensor is ``[B, C, T, H, W]``. All convolutions are causal in time: the input is padded by
``k − 1`` copies of its first frame on the past side (replicate padding) and symmetrically in
space, so frame t only sees frames ≤ t. The mid-block attention runs over all T·H·W positions
of a clip with a frame-causal mask (a position attends to every position of its own and earlier
frames). The GroupNorms, however, take their statistics over the whole clip (time included), so
a frame's output depends slightly on later frames too, and a clip is processed in one piece.

Module and parameter names follow Open-Sora's ``opensora/models/hunyuan_vae`` modules (which
diffusers' ``AutoencoderKLHunyuanVideo`` shares): ``down_blocks.N.resnets.M.conv1.conv.weight``,
``downsamplers.0.conv.conv.weight``, ``mid_block.attentions.0.to_q.weight``, ``to_out.0.weight``,
``conv_norm_out.weight`` …, so ``hunyuan_vae.safetensors`` loads with ``strict=True``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from studio.models.opensora.hunyuan_vae_config import HunyuanVAEConfig

NORM_EPS = 1e-6


class CausalConv3d(nn.Module):
    """A cubic-kernel 3-D convolution, replicate-padded (k // 2 in space, k − 1 in the past)."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, stride: tuple[int, ...] = (1, 1, 1)):
        super().__init__()
        half = kernel // 2
        self.padding = (half, half, half, half, kernel - 1, 0)  # W, H, T (past side only)
        self.conv = nn.Conv3d(c_in, c_out, kernel, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not any(self.padding):  # a 1×1×1 kernel: padding by nothing would still copy
            return self.conv(x)
        return self.conv(F.pad(x, self.padding, mode="replicate"))


class ResnetBlock(nn.Module):
    """GroupNorm → SiLU → conv → GroupNorm → SiLU → conv, plus a (1×1×1 projected) skip."""

    def __init__(self, c_in: int, c_out: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in, eps=NORM_EPS)
        self.conv1 = CausalConv3d(c_in, c_out)
        self.norm2 = nn.GroupNorm(groups, c_out, eps=NORM_EPS)
        self.conv2 = CausalConv3d(c_out, c_out)
        self.conv_shortcut = CausalConv3d(c_in, c_out, kernel=1) if c_in != c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x), inplace=True))  # in place: fresh norm outputs
        h = self.conv2(F.silu(self.norm2(h), inplace=True))
        skip = x if self.conv_shortcut is None else self.conv_shortcut(x)
        return h.add_(skip)


class FrameCausalAttention(nn.Module):
    """Single-head self-attention over every position of the clip, masked causally by frame.

    GroupNorm over channels, q/k/v/out linear projections (``to_out.0``), residual added.
    """

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, channels, eps=NORM_EPS)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        self.to_out = nn.ModuleList([nn.Linear(channels, channels)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        tokens = self.group_norm(x).permute(0, 2, 3, 4, 1).reshape(b, t * h * w, c)
        q, k, v = self.to_q(tokens), self.to_k(tokens), self.to_v(tokens)
        mask = frame_causal_mask(t, h * w, x.device)
        out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None], attn_mask=mask)
        out = self.to_out[0](out[:, 0])
        return x + out.reshape(b, t, h, w, c).permute(0, 4, 1, 2, 3)


def frame_causal_mask(frames: int, per_frame: int, device: torch.device) -> torch.Tensor:
    """``[L, L]`` boolean mask, L = frames·per_frame: True where key frame ≤ query frame."""
    frame = torch.arange(frames, device=device).repeat_interleave(per_frame)
    return frame[None, :] <= frame[:, None]


class MidBlock(nn.Module):
    """ResnetBlock → (FrameCausalAttention) → ResnetBlock at the lowest resolution."""

    def __init__(self, channels: int, groups: int, attention: bool):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock(channels, channels, groups) for _ in range(2)])
        self.attentions = (
            nn.ModuleList([FrameCausalAttention(channels, groups)]) if attention else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.resnets[0](x)
        if self.attentions is not None:
            x = self.attentions[0](x)
        return self.resnets[1](x)


class Downsample(nn.Module):
    """A strided causal 3×3×3 convolution (stride (t, h, w), each 1 or 2)."""

    def __init__(self, channels: int, stride: tuple[int, int, int]):
        super().__init__()
        self.conv = CausalConv3d(channels, channels, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour upsampling by ``factor`` (t, h, w), then a causal 3×3×3 convolution.

    Frame 0 is only upsampled in space, so T frames become 1 + factor_t·(T − 1): the inverse of
    the causal downsampling's (T − 1)/2 + 1.
    """

    def __init__(self, channels: int, factor: tuple[int, int, int]):
        super().__init__()
        self.factor = factor
        self.conv = CausalConv3d(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = F.interpolate(x[:, :, 0], scale_factor=self.factor[1:], mode="nearest")[:, :, None]
        if x.shape[2] > 1:
            rest = F.interpolate(x[:, :, 1:].contiguous(), scale_factor=self.factor, mode="nearest")
            first = torch.cat((first, rest), dim=2)
        return self.conv(first)


class DownBlock(nn.Module):
    """``layers`` ResnetBlocks, then an optional Downsample (``downsamplers.0``)."""

    def __init__(
        self, c_in: int, c_out: int, layers: int, groups: int, stride: tuple[int, int, int]
    ):
        super().__init__()
        widths = [c_in] + [c_out] * layers
        self.resnets = nn.ModuleList(ResnetBlock(widths[i], c_out, groups) for i in range(layers))
        needs = stride != (1, 1, 1)
        self.downsamplers = nn.ModuleList([Downsample(c_out, stride)]) if needs else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for resnet in self.resnets:
            x = resnet(x)
        return x if self.downsamplers is None else self.downsamplers[0](x)


class UpBlock(nn.Module):
    """``layers`` ResnetBlocks, then an optional Upsample (``upsamplers.0``)."""

    def __init__(
        self, c_in: int, c_out: int, layers: int, groups: int, factor: tuple[int, int, int]
    ):
        super().__init__()
        widths = [c_in] + [c_out] * layers
        self.resnets = nn.ModuleList(ResnetBlock(widths[i], c_out, groups) for i in range(layers))
        needs = factor != (1, 1, 1)
        self.upsamplers = nn.ModuleList([Upsample(c_out, factor)]) if needs else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for resnet in self.resnets:
            x = resnet(x)
        return x if self.upsamplers is None else self.upsamplers[0](x)


def stage_factors(
    stages: int, spatial_ratio: int, temporal_ratio: int
) -> list[tuple[int, int, int]]:
    """The (t, h, w) down-/upsampling factor of each encoder stage (the decoder uses them in order
    from its first stage too). Spatial halvings come first (stages 0 … log2(s) − 1); with a
    4× temporal ratio the temporal halvings sit in the last log2(4) = 2 stages before the final
    one — for (128, 256, 512, 512): stage 0 (1, 2, 2), stages 1–2 (2, 2, 2), stage 3 none."""
    n_space = spatial_ratio.bit_length() - 1
    n_time = temporal_ratio.bit_length() - 1
    factors = []
    for i in range(stages):
        last = i == stages - 1
        space = 2 if i < n_space else 1
        time = 2 if (i >= stages - 1 - n_time and not last) else 1
        factors.append((time, space, space))
    return factors


class Encoder(nn.Module):
    """conv_in → down_blocks → mid_block → GroupNorm → SiLU → conv_out (2·latent channels)."""

    def __init__(self, config: HunyuanVAEConfig):
        super().__init__()
        widths, groups = config.block_out_channels, config.norm_num_groups
        factors = stage_factors(len(widths), config.spatial_ratio, config.temporal_ratio)
        self.conv_in = CausalConv3d(config.in_channels, widths[0])
        self.down_blocks = nn.ModuleList(
            DownBlock(widths[max(i - 1, 0)], widths[i], config.layers_per_block, groups, factors[i])
            for i in range(len(widths))
        )
        self.mid_block = MidBlock(widths[-1], groups, config.mid_block_add_attention)
        self.conv_norm_out = nn.GroupNorm(groups, widths[-1], eps=NORM_EPS)
        self.conv_out = CausalConv3d(widths[-1], 2 * config.latent_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(x)
        for block in self.down_blocks:
            x = block(x)
        x = self.mid_block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x), inplace=True))


class Decoder(nn.Module):
    """conv_in → mid_block → up_blocks (layers + 1 ResnetBlocks each) → norm → SiLU → conv_out."""

    def __init__(self, config: HunyuanVAEConfig):
        super().__init__()
        widths, groups = tuple(reversed(config.block_out_channels)), config.norm_num_groups
        factors = stage_factors(len(widths), config.spatial_ratio, config.temporal_ratio)
        self.conv_in = CausalConv3d(config.latent_channels, widths[0])
        self.mid_block = MidBlock(widths[0], groups, config.mid_block_add_attention)
        self.up_blocks = nn.ModuleList(
            UpBlock(
                widths[max(i - 1, 0)], widths[i], config.layers_per_block + 1, groups, factors[i]
            )
            for i in range(len(widths))
        )
        self.conv_norm_out = nn.GroupNorm(groups, widths[-1], eps=NORM_EPS)
        self.conv_out = CausalConv3d(widths[-1], config.out_channels)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.mid_block(self.conv_in(z))
        for block in self.up_blocks:
            x = block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x), inplace=True))
