"""The HunyuanVideo causal 3D VAE that Open-Sora 2.0 uses (``hunyuan_vae.safetensors``).

``encode`` maps pixels ``[B, 3, T, H, W]`` in [−1, 1] (T = 1 + 4k, H and W multiples of 8) to the
normalised latent mean ``scale·(μ − shift)`` ``[B, 16, 1 + (T − 1)/4, H/8, W/8]`` (no sampling);
``decode`` inverts the normalisation and maps back to pixels. Its convolutions and attention are
causal in time, but its GroupNorms (and the attention) span the whole clip, so a clip is
processed in one piece in time (as Open-Sora does: its configs turn temporal tiling off).

Large frames are split into overlapping spatial tiles (:class:`HunyuanVAETiling`, Open-Sora's
256-pixel tiles with a 192-pixel stride by default), each encoded/decoded alone and blended
linearly into its upper and left neighbours in the same order as Open-Sora's
``spatial_tiled_encode``/``spatial_tiled_decode`` and diffusers' ``tiled_encode``/``tiled_decode``
(so the results equal theirs). The cancel token is checked before every tile.

Parameter names are those of Open-Sora's ``AutoencoderKLCausal3D`` (``encoder.…``, ``decoder.…``,
``quant_conv``, ``post_quant_conv``), so the checkpoint loads strictly with no key map; diffusers'
``AutoencoderKLHunyuanVideo`` uses the same names.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import torch
from torch import nn

from studio.engine.cancel import NEVER, CancelToken
from studio.errors import CheckpointError, InvalidRequest
from studio.models.opensora.hunyuan_vae_blocks import Decoder, Encoder
from studio.models.opensora.hunyuan_vae_config import (
    OPENSORA_TILING,
    HunyuanVAEConfig,
    HunyuanVAETiling,
    config_from_state_dict,
)

logger = logging.getLogger(__name__)

TileFn = Callable[[torch.Tensor], torch.Tensor]


class HunyuanVAE(nn.Module):
    """Encoder, decoder and the two 1×1×1 convolutions around the latent (``quant_conv`` maps the
    encoder's 2·C channels to μ and log σ², ``post_quant_conv`` maps z → z). Stateless between
    calls. ``tiling`` may be replaced at any time (it is not part of the state dict)."""

    def __init__(self, config: HunyuanVAEConfig, tiling: HunyuanVAETiling = OPENSORA_TILING):
        super().__init__()
        self.config = config
        self.tiling = tiling
        c = config.latent_channels
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.quant_conv = nn.Conv3d(2 * c, 2 * c, kernel_size=1)
        self.post_quant_conv = nn.Conv3d(c, c, kernel_size=1)

    @torch.no_grad()
    def encode(self, video: torch.Tensor, cancel: CancelToken = NEVER) -> torch.Tensor:
        """Pixels → normalised latent mean.

        Args:
            video: ``[B, 3, T, H, W]`` in [−1, 1]; T = 1 + 4k; H, W multiples of 8. Cast to the
                module's device and dtype.
            cancel: checked before the clip, or before every tile when tiling applies.

        Returns:
            ``scale·(μ − shift)``, ``[B, C, 1 + (T − 1)/4, H/8, W/8]``, float32.
        """
        self._check_video(video)
        x = video.to(device=self.quant_conv.weight.device, dtype=self.quant_conv.weight.dtype)
        s = self.config.spatial_ratio
        size, stride = self.tiling.size, self.tiling.stride
        moments = self._run(x, self._encode_tile, (size, stride), (size // s, stride // s), cancel)
        mu = moments[:, : self.config.latent_channels].float()
        logger.debug("encoded %s → %s", tuple(video.shape), tuple(mu.shape))
        return self.config.scale_factor * (mu - self.config.shift_factor)

    @torch.no_grad()
    def decode(self, latent: torch.Tensor, cancel: CancelToken = NEVER) -> torch.Tensor:
        """Normalised latent → pixels.

        Args:
            latent: ``[B, C, T', H', W']`` as :meth:`encode` returns it.
            cancel: checked before the clip, or before every tile when tiling applies.

        Returns:
            ``[B, 3, 1 + 4(T' − 1), 8H', 8W']``, float32, nominally in [−1, 1] (not clamped).
        """
        self._check_latent(latent)
        weight = self.post_quant_conv.weight
        z = latent.to(device=weight.device, dtype=torch.float32)
        z = (z / self.config.scale_factor + self.config.shift_factor).to(weight.dtype)
        s = self.config.spatial_ratio
        size, stride = self.tiling.size, self.tiling.stride
        video = self._run(z, self._decode_tile, (size // s, stride // s), (size, stride), cancel)
        logger.debug("decoded %s → %s", tuple(latent.shape), tuple(video.shape))
        return video.float()

    def _encode_tile(self, x: torch.Tensor) -> torch.Tensor:
        return self.quant_conv(self.encoder(x))

    def _decode_tile(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(z))

    def _run(
        self,
        x: torch.Tensor,
        fn: TileFn,
        tile_in: tuple[int, int],
        tile_out: tuple[int, int],
        cancel: CancelToken,
    ) -> torch.Tensor:
        """``fn`` on the whole input, or tiled when tiling is on and a side exceeds the tile."""
        if not self.tiling.enabled or max(x.shape[-2:]) <= tile_in[0]:
            cancel.check()
            return fn(x)
        return tiled_apply(x, fn, tile_in, tile_out, cancel)

    def _check_video(self, video: torch.Tensor) -> None:
        s, r = self.config.spatial_ratio, self.config.temporal_ratio
        ok = video.ndim == 5 and video.shape[1] == self.config.in_channels
        if not ok or (video.shape[2] - 1) % r or video.shape[3] % s or video.shape[4] % s:
            raise InvalidRequest(
                "video",
                f"the HunyuanVideo VAE needs [B, {self.config.in_channels}, 1 + {r}k, {s}m, {s}n] "
                f"pixels, got {tuple(video.shape)}",
                f"use 1 + {r}k frames and a size that is a multiple of {s}",
            )

    def _check_latent(self, latent: torch.Tensor) -> None:
        c = self.config.latent_channels
        if latent.ndim != 5 or latent.shape[1] != c:
            raise InvalidRequest(
                "latent",
                f"the HunyuanVideo VAE decodes [B, {c}, T, H, W], got {tuple(latent.shape)}",
            )


def tiled_apply(
    x: torch.Tensor,
    fn: TileFn,
    tile_in: tuple[int, int],
    tile_out: tuple[int, int],
    cancel: CancelToken = NEVER,
) -> torch.Tensor:
    """Apply ``fn`` to overlapping spatial tiles of ``x`` and blend the results.

    Args:
        x: ``[B, C, T, H, W]``.
        fn: maps a tile of side ≤ ``tile_in[0]`` to one ``tile_out[0] / tile_in[0]`` times as large.
        tile_in / tile_out: (tile side, stride) in input and output units.
        cancel: checked before every tile.

    The tiles are joined by :func:`blend_tiles`; the result is cropped to the input's size
    times ``tile_out[0] / tile_in[0]``.
    """
    side, stride = tile_in
    rows: list[list[torch.Tensor]] = []
    for i in range(0, x.shape[-2], stride):
        rows.append([])
        for j in range(0, x.shape[-1], stride):
            cancel.check()
            rows[-1].append(fn(x[..., i : i + side, j : j + side]))
    height, width = (n * tile_out[0] // side for n in x.shape[-2:])
    return blend_tiles(rows, *tile_out)[..., :height, :width]


def blend_tiles(rows: list[list[torch.Tensor]], side: int, stride: int) -> torch.Tensor:
    """Cross-fade each tile (in place, over ``side − stride`` rows/columns) from the already
    blended tile above it, then from the one to its left; crop to ``stride × stride`` and join."""
    placed = []
    for i, row in enumerate(rows):
        for j, tile in enumerate(row):
            if i > 0:
                blend_into(rows[i - 1][j], tile, side - stride, dim=-2)
            if j > 0:
                blend_into(row[j - 1], tile, side - stride, dim=-1)
        placed.append(torch.cat([t[..., :stride, :stride] for t in row], dim=-1))
    return torch.cat(placed, dim=-2)


def blend_into(before: torch.Tensor, tile: torch.Tensor, extent: int, dim: int) -> None:
    """Cross-fade the first ``extent`` slices of ``tile`` (along ``dim``) from the last ones of
    ``before``: weight of ``tile`` k/extent at slice k. Modifies ``tile`` in place."""
    extent = min(before.shape[dim], tile.shape[dim], extent)
    if extent <= 0:
        return
    shape = [1] * tile.ndim
    shape[dim] = extent
    w = (torch.arange(extent, dtype=torch.float64) / extent).to(tile.dtype).to(tile.device)
    w = w.reshape(shape)
    head = tile.narrow(dim, 0, extent)
    tail = before.narrow(dim, before.shape[dim] - extent, extent)
    head.copy_(tail * (1 - w) + head * w)


def load_hunyuan_vae(
    state: Mapping[str, torch.Tensor],
    config: HunyuanVAEConfig | None = None,
    tiling: HunyuanVAETiling = OPENSORA_TILING,
    dtype: torch.dtype | None = None,
) -> HunyuanVAE:
    """Build the VAE for ``state`` (an Open-Sora ``hunyuan_vae.safetensors`` state dict) and load
    it strictly; ``config`` defaults to the one read from the tensor shapes."""
    config = config or config_from_state_dict(state)
    with torch.device("meta"):
        model = HunyuanVAE(config, tiling)
    try:
        model.load_state_dict(dict(state), strict=True, assign=True)
    except RuntimeError as error:
        raise CheckpointError(
            f"The HunyuanVideo VAE file does not match its architecture: {error}",
            "choose Open-Sora 2.0's hunyuan_vae.safetensors",
        ) from error
    return model.to(dtype=dtype) if dtype is not None else model
