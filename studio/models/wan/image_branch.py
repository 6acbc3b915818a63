"""Wan 2.1 I2V/FLF2V-14B's image branch: CLIP features of the reference image(s) as a second
context the cross-attention reads beside the text (docs/families/wan.md §15).

``img_emb`` maps CLIP features ``[B, N, 1280]`` (N = 257 per image) to the model width: LayerNorm,
Linear, GELU, Linear, LayerNorm; FLF2V first adds a learned position table over its two images'
514 tokens (``emb_pos``). In every block the cross-attention attends to the text with (k, v) and
to the image tokens with its own (k_img, v_img), norm_k_img on the keys, and adds the two
results before the output projection.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ImageEmbedding(nn.Module):
    """``img_emb``: CLIP features ``[B, N, image_dim]`` → image context ``[B, N, dim]``.

    Parameters: ``proj.0`` / ``proj.4`` LayerNorms, ``proj.1`` / ``proj.3`` Linears, and for
    FLF2V ``emb_pos`` ``[1, image_tokens, image_dim]``.
    """

    def __init__(self, image_dim: int, dim: int, image_tokens: int = 0) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.LayerNorm(image_dim), nn.Linear(image_dim, image_dim),
                                  nn.GELU(), nn.Linear(image_dim, dim), nn.LayerNorm(dim))
        self.emb_pos = nn.Parameter(torch.zeros(1, image_tokens, image_dim)) \
            if image_tokens else None

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """float32 math (the branch is small), result in float32."""
        x = features.float()
        if self.emb_pos is not None:
            if x.shape[1] != self.emb_pos.shape[1]:
                raise ValueError(f"FLF2V takes {self.emb_pos.shape[1]} image tokens (two "
                                 f"images), got {x.shape[1]}")
            x = x + self.emb_pos.float()
        for layer in self.proj:
            x = _float32(layer)(x)
        return x


def _float32(layer: nn.Module):  # noqa: ANN202 - a callable
    """``layer`` applied with float32 weights whatever they are stored in."""
    if isinstance(layer, nn.LayerNorm):
        return lambda x: F.layer_norm(x, layer.normalized_shape, layer.weight.float(),
                                      layer.bias.float(), layer.eps)
    if isinstance(layer, nn.Linear):
        return lambda x: F.linear(x, layer.weight.float(), layer.bias.float())
    return layer

