"""The LTX-Video transformer (``Transformer3DModel`` of Lightricks/LTX-Video; docs/families/ltx.md).

Tokens are the latent's 128 channels per cell, flattened in (f, h, w) order (patch size 1), so
the transformer never sees the grid: positions come as per-token coordinates (seconds, pixels,
pixels), which lets keyframe tokens appended to the sequence carry the time they pin.
Parameter names are the original checkpoint's without its ``model.diffusion_model.`` prefix, so
a single file's transformer loads with ``load_state_dict(..., strict=True)``.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from studio.models.ltx.rope import rope_for, rope_tables
from studio.models.ltx.transformer_blocks import LTXBlock, SkipBlocks
from studio.models.ltx.transformer_config import LTXTransformerConfig
from studio.models.ltx.transformer_embed import AdaLNSingle, CaptionProjection

log = logging.getLogger(__name__)

#: The text mask's additive bias on padding tokens (the original's, not −∞: an all-padding
#: row still attends uniformly instead of producing NaN).
MASK_BIAS = -10000.0


class LTXTransformer(nn.Module):
    """Velocity prediction for LTX-Video latent tokens.

    Build it on the ``meta`` device and load with ``load_state_dict(sd, strict=True,
    assign=True)`` to avoid initialising weights twice. ``transformer_blocks`` is the block list
    that block-level offloading streams.
    """

    def __init__(self, config: LTXTransformerConfig) -> None:
        super().__init__()
        if not isinstance(config, LTXTransformerConfig):
            raise TypeError(f"LTXTransformer needs an LTXTransformerConfig, got "
                            f"{type(config).__name__}")  # fmt: skip
        self.config = config
        dim = config.dim
        self.patchify_proj = nn.Linear(config.in_channels, dim)
        self.adaln_single = AdaLNSingle(dim)
        self.caption_projection = CaptionProjection(config.caption_channels, dim)
        self.transformer_blocks = nn.ModuleList(
            LTXBlock(dim, config.num_heads, config.head_dim, config.norm_eps)
            for _ in range(config.num_layers)
        )
        self.scale_shift_table = nn.Parameter(torch.randn(2, dim) / dim**0.5)
        self.proj_out = nn.Linear(dim, config.out_channels)

    @property
    def dtype(self) -> torch.dtype:
        """The compute dtype (that of the input projection)."""
        return self.patchify_proj.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.patchify_proj.weight.device

    def forward(
        self, x: torch.Tensor, t_tok: torch.Tensor, context: torch.Tensor,
        context_mask: torch.Tensor, coords: torch.Tensor, skip: SkipBlocks | None = None,
    ) -> torch.Tensor:
        """Predict the velocity (noise − clean) of every token.

        Args:
            x: tokens ``[B, L, in_channels]`` (latent flattened in (f, h, w) order).
            t_tok: per-token time ``[B, L]`` (or ``[B]`` for all tokens), t ∈ [0, 1], 1 = noise.
            context: text-encoder features ``[B, Lc, caption_channels]``.
            context_mask: ``[B, Lc]``, 1 = a real token, 0 = padding.
            coords: ``[B, 3, L]`` float (seconds, y pixels, x pixels) of each token
                (:func:`~studio.models.ltx.rope.video_coords`).
            skip: blocks to perturb in some batch rows (spatio-temporal guidance).

        Returns:
            float32 velocity ``[B, L, out_channels]``.
        """
        self._check(x, context_mask, coords, skip)
        dtype = self.dtype
        bias = ((1 - context_mask.to(dtype)) * MASK_BIAS).unsqueeze(1)  # [B, 1, Lc]
        temb, embedded = self._time(t_tok, x.shape[0])
        ctx = self.caption_projection(context.to(dtype))
        cos, sin = rope_tables(coords, self.config.dim, self.config.rope_theta,
                               self.config.max_pos)  # fmt: skip
        rope = rope_for(cos, sin, dtype)
        h = self.patchify_proj(x.to(dtype))
        for index, block in enumerate(self.transformer_blocks):
            perturb = skip if skip is not None and index in skip.blocks else None
            h = block(h, temb, ctx, bias, rope, perturb)
        shift, scale = (self.scale_shift_table[None, None] + embedded[:, :, None]).unbind(2)
        h = F.layer_norm(h, (h.shape[-1],), eps=1e-6) * (1 + scale) + shift
        return self.proj_out(h).float()

    def _time(self, t_tok: torch.Tensor, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Modulation ``[B, T, 6·D]`` and embedded time ``[B, T, D]``, T = 1 when every token
        of a row shares its time (the same numbers, L times less memory), else L.

        A clip holds few distinct times (clean conditioning tokens, the rest at t), so each is
        embedded once and the rows are gathered: the MLP's 6·D-wide product ran on every token.
        """
        t = t_tok.reshape(batch, -1)
        if t.shape[1] > 1 and bool((t == t[:, :1]).all()):
            t = t[:, :1]
        values, index = torch.unique(t.float(), return_inverse=True)
        temb, embedded = self.adaln_single(values * self.config.timestep_scale, self.dtype)
        return temb[index], embedded[index]

    def _check(self, x: torch.Tensor, mask: torch.Tensor, coords: torch.Tensor,
               skip: SkipBlocks | None) -> None:  # fmt: skip
        batch, length = x.shape[0], x.shape[1]
        if x.ndim != 3 or x.shape[2] != self.config.in_channels:
            raise ValueError(f"x must be [B, L, {self.config.in_channels}], got {tuple(x.shape)}")
        if tuple(coords.shape) != (batch, 3, length):
            raise ValueError(f"coords must be [{batch}, 3, {length}], got {tuple(coords.shape)}")
        if mask.ndim != 2 or mask.shape[0] != batch:
            raise ValueError(f"context_mask must be [{batch}, Lc], got {tuple(mask.shape)}")
        if skip is not None:
            if skip.batch.shape[0] != batch:
                raise ValueError(f"skip.batch has {skip.batch.shape[0]} rows, x has {batch}")
            if any(not 0 <= b < len(self.transformer_blocks) for b in skip.blocks):
                raise ValueError(f"skip.blocks {skip.blocks} outside 0…"
                                 f"{len(self.transformer_blocks) - 1}")  # fmt: skip
