"""Building blocks shared by the Wan 2.1 and Wan 2.2 causal video VAEs.

Every block takes ``(x, cache)``: ``x`` is one chunk of frames ``[B, C, T, H, W]`` and ``cache``
the :class:`FeatureCache` of the current encode/decode call. Temporal layers are causal (all
temporal padding sits before the first frame), and each keeps the last frames of the previous
chunk in the cache, so processing a clip chunk by chunk equals processing it in one piece.
Attribute names (``residual``, ``shortcut``, ``resample``, ``time_conv``, ``gamma``, …) follow the
original Wan checkpoints so their state dicts load unchanged.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn


class FeatureCache:
    """Temporal memory carried from one chunk to the next, local to one encode/decode call.

    Each temporal layer keeps the few frames it needs from the previous chunk (at most 2, the
    original's ``CACHE_T``), so the cache size does not depend on the clip length. Layers are
    keyed by identity; the cache lives only as long as the call that made it.
    """

    __slots__ = ("_frames", "_seen")

    def __init__(self) -> None:
        self._frames: dict[int, torch.Tensor] = {}
        self._seen: set[int] = set()

    def get(self, layer: nn.Module) -> torch.Tensor | None:
        """The frames ``layer`` stored after the previous chunk, or None on the first chunk."""
        return self._frames.get(id(layer))

    def put(self, layer: nn.Module, frames: torch.Tensor) -> None:
        self._frames[id(layer)] = frames

    def first_visit(self, layer: nn.Module) -> bool:
        """True the first time a layer asks, i.e. while it processes the clip's first chunk."""
        key = id(layer)
        if key in self._seen:
            return False
        self._seen.add(key)
        return True

    @property
    def tensors(self) -> int:
        return len(self._frames)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._frames.values())


_ONEDNN = torch.backends.mkldnn.is_available() and hasattr(torch, "mkldnn_convolution")


def _triple(value: int | tuple[int, int, int]) -> tuple[int, int, int]:
    return (value, value, value) if isinstance(value, int) else value


class CausalConv3d(nn.Conv3d):
    """A 3D convolution that looks only at present and past frames.

    ``padding=(p_t, p_h, p_w)`` pads height and width symmetrically and puts all 2·p_t temporal
    padding before the first frame. With a cache, the previous chunk's last 2·p_t input frames
    take the place of that zero padding.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int, int],
        stride: int | tuple[int, int, int] = 1,
        padding: int | tuple[int, int, int] = 0,
    ) -> None:
        pad_t, pad_h, pad_w = _triple(padding)
        super().__init__(
            in_channels, out_channels, kernel_size, stride=stride, padding=(0, pad_h, pad_w)
        )
        self.past = 2 * pad_t

    def forward(self, x: torch.Tensor, cache: FeatureCache | None = None) -> torch.Tensor:
        """``[B, C_in, T, H, W]`` → ``[B, C_out, T_out, H_out, W_out]``."""
        if self.past:
            history = cache.get(self) if cache is not None else None
            if history is None:
                history = x.new_zeros((*x.shape[:2], self.past, *x.shape[3:]))
            x = torch.cat([history, x], dim=2)
            if cache is not None:
                cache.put(self, x[:, :, -self.past :].clone())
        if x.device.type == "cpu" and x.dtype == torch.float32 and _ONEDNN:
            # PyTorch sends small batch-1 float32 inputs to its im2col kernel, several times
            # slower than oneDNN for these chunk shapes; same maths, same result.
            return torch.mkldnn_convolution(
                x, self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups
            )
        return super().forward(x)


class RMSNorm(nn.Module):
    """``F.normalize`` over channels (dim 1) · √C · gamma; gamma ``[C, 1, 1(, 1)]``, no bias."""

    def __init__(self, dim: int, images: bool = False) -> None:
        super().__init__()
        self.scale = dim**0.5
        self.gamma = nn.Parameter(torch.ones(dim, *((1, 1) if images else (1, 1, 1))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, ...]`` → same shape; float16/bfloat16 inputs are normalised in float32."""
        if x.dtype in (torch.float16, torch.bfloat16):
            normed = F.normalize(x.float(), dim=1).to(x.dtype)
        else:
            normed = F.normalize(x, dim=1)
        return normed * (self.gamma * self.scale)


class ResidualBlock(nn.Module):
    """RMSNorm → SiLU → conv 3³ → RMSNorm → SiLU → (dropout) → conv 3³, plus a shortcut.

    The indices of ``residual`` (0, 2, 3, 6) are the original state-dict layout.
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            RMSNorm(in_dim),
            nn.SiLU(),
            CausalConv3d(in_dim, out_dim, 3, padding=1),
            RMSNorm(out_dim),
            nn.SiLU(),
            nn.Dropout(0.0),
            CausalConv3d(out_dim, out_dim, 3, padding=1),
        )
        self.shortcut = CausalConv3d(in_dim, out_dim, 1) if in_dim != out_dim else nn.Identity()

    def forward(self, x: torch.Tensor, cache: FeatureCache | None = None) -> torch.Tensor:
        norm1, _, conv1, norm2, _, _, conv2 = self.residual
        h = conv1(F.silu(norm1(x), inplace=True), cache)
        h = conv2(F.silu(norm2(h), inplace=True), cache)
        return h.add_(self.shortcut(x))


class AttentionBlock(nn.Module):
    """Single-head self-attention over the pixels of each frame separately (no time mixing)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = RMSNorm(dim, images=True)
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor, cache: FeatureCache | None = None) -> torch.Tensor:
        """``[B, C, T, H, W]`` → same shape (``cache`` is unused: nothing mixes across time)."""
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)
        qkv = self.to_qkv(self.norm(frames)).view(b * t, 3, c, h * w).transpose(2, 3)
        q, k, v = (qkv[:, i : i + 1] for i in range(3))  # each [B·T, 1, H·W, C]
        y = F.scaled_dot_product_attention(q, k, v)
        y = self.proj(y.squeeze(1).transpose(1, 2).reshape(b * t, c, h, w))
        return y.view(b, t, c, h, w).transpose(1, 2) + x


ResampleMode = Literal["upsample2d", "upsample3d", "downsample2d", "downsample3d"]


class Resample(nn.Module):
    """Spatial 2× up/down-sampling of every frame, optionally with a temporal 2× ``time_conv``.

    ``downsample3d``: frame 0 of the clip passes through; later frames are convolved in windows
    of 3 with stride 2, each window starting at the previous window's last frame, so 1 + 2k
    frames become 1 + k. ``upsample3d``: frame 0 passes through; every later frame becomes two
    (the halves of a causal ``time_conv`` with 2C outputs), so 1 + k frames become 1 + 2k.
    """

    def __init__(self, dim: int, mode: ResampleMode, out_dim: int | None = None) -> None:
        super().__init__()
        self.mode = mode
        if mode.startswith("up"):
            self.resample = nn.Sequential(
                nn.Upsample(scale_factor=2.0, mode="nearest-exact"),
                nn.Conv2d(dim, dim // 2 if out_dim is None else out_dim, 3, padding=1),
            )
            if mode == "upsample3d":
                self.time_conv = CausalConv3d(dim, dim * 2, (3, 1, 1), padding=(1, 0, 0))
        else:
            self.resample = nn.Sequential(
                nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(dim, dim, 3, stride=2)
            )
            if mode == "downsample3d":
                self.time_conv = CausalConv3d(dim, dim, (3, 1, 1), stride=(2, 1, 1))

    def forward(self, x: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
        if self.mode == "upsample3d":
            x = self._double_frames(x, cache)
        b, c, t, h, w = x.shape
        y = self.resample(x.transpose(1, 2).reshape(b * t, c, h, w))
        x = y.view(b, t, *y.shape[1:]).transpose(1, 2)
        if self.mode == "downsample3d":
            x = self._halve_frames(x, cache)
        return x

    def _double_frames(self, x: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
        """``[B, C, T, H, W]`` → ``[B, C, 2T (− 1 in the first chunk), H, W]``."""
        parts = []
        if cache.first_visit(self):
            parts.append(x[:, :, :1])
            x = x[:, :, 1:]
        if x.shape[2]:
            y = self.time_conv(x, cache)  # [B, 2C, T, H, W]: two output frames per input frame
            b, c2, t, h, w = y.shape
            y = y.view(b, 2, c2 // 2, t, h, w).permute(0, 2, 3, 1, 4, 5)
            parts.append(y.reshape(b, c2 // 2, 2 * t, h, w))
        return torch.cat(parts, dim=2) if len(parts) > 1 else parts[0]

    def _halve_frames(self, x: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
        """``[B, C, T, H, W]`` → ``[B, C, T/2 (+ 1 in the first chunk), H, W]``."""
        history = cache.get(self)
        cache.put(self, x[:, :, -1:].clone())
        parts = []
        if history is None:
            parts.append(x[:, :, :1])
        else:
            x = torch.cat([history, x], dim=2)
        assert x.shape[2] % 2 == 1, "chunks must hold 1 + 2k frames first, then 2k frames"
        if x.shape[2] > 1:
            parts.append(self.time_conv(x))
        return torch.cat(parts, dim=2) if len(parts) > 1 else parts[0]


class Stream(nn.Sequential):
    """An ``nn.Sequential`` whose layers all take ``(x, cache)``."""

    def forward(self, x: torch.Tensor, cache: FeatureCache) -> torch.Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, cache)
        return x


class OutputHead(nn.Sequential):
    """RMSNorm → SiLU → causal conv 3³ (state-dict indices ``0`` and ``2``)."""

    def __init__(self, dim: int, out_channels: int) -> None:
        super().__init__(RMSNorm(dim), nn.SiLU(), CausalConv3d(dim, out_channels, 3, padding=1))

    def forward(self, x: torch.Tensor, cache: FeatureCache) -> torch.Tensor:  # type: ignore[override]
        norm, _, conv = self
        return conv(F.silu(norm(x), inplace=True), cache)


def middle_blocks(dim: int) -> Stream:
    """Residual block → per-frame attention → residual block, at constant width."""
    return Stream(ResidualBlock(dim, dim), AttentionBlock(dim), ResidualBlock(dim, dim))


class CausalEncoder(nn.Module):
    """conv1 → ``downsamples`` stages → ``middle`` → ``head``; one chunk at a time.

    ``[B, C_in, T, H, W]`` → ``[B, C_out, T', H/8, W/8]`` (T' = 1 + (T − 1)/4 over a whole clip).
    ``widths`` = (width after conv1, width of the last stage).
    """

    def __init__(
        self, in_channels: int, widths: tuple[int, int], stages: list[nn.Module], out_channels: int
    ) -> None:
        super().__init__()
        self.conv1 = CausalConv3d(in_channels, widths[0], 3, padding=1)
        self.downsamples = Stream(*stages)
        self.middle = middle_blocks(widths[1])
        self.head = OutputHead(widths[1], out_channels)

    def forward(self, x: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
        x = self.downsamples(self.conv1(x, cache), cache)
        return self.head(self.middle(x, cache), cache)


class CausalDecoder(nn.Module):
    """conv1 → ``middle`` → ``upsamples`` stages → ``head``; one chunk at a time.

    ``[B, C_in, T', H', W']`` → ``[B, C_out, T, 8·H', 8·W']``; over a whole clip
    T = 1 + 4(T' − 1). ``widths`` = (width after conv1, width of the last stage).
    """

    def __init__(
        self, in_channels: int, widths: tuple[int, int], stages: list[nn.Module], out_channels: int
    ) -> None:
        super().__init__()
        self.conv1 = CausalConv3d(in_channels, widths[0], 3, padding=1)
        self.middle = middle_blocks(widths[0])
        self.upsamples = Stream(*stages)
        self.head = OutputHead(widths[1], out_channels)

    def forward(self, x: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
        x = self.middle(self.conv1(x, cache), cache)
        return self.head(self.upsamples(x, cache), cache)
