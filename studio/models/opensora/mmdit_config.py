"""Configuration of Open-Sora 2.0's Flux-style MMDiT (``MMDiTConfig`` of the original).

Source: hpcaitech/Open-Sora at 7ad6a96a135feb81f755c84fb391818718f6beb2,
``opensora/models/mmdit/model.py`` and ``configs/diffusion/inference/256px.py`` (the published
``Open_Sora_v2`` 11B model; docs/families/opensora.md §2). Two ways in: the
preset :data:`OPEN_SORA_V2` and the tensor shapes of a state dict
(:func:`config_from_state_dict_shapes`), which reads both checkpoint layouts: separate
``q_proj`` / ``k_proj`` / ``v_proj`` (and ``v_mlp`` in single blocks; the inference config's
``fused_qkv=False``) or fused ``qkv`` / ``linear1`` (Flux's own layout).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from studio.errors import CheckpointError

#: The published model's rotary split of its 128-dimensional heads over (t, h, w).
PUBLISHED_AXES_DIM = (16, 56, 56)
#: Sinusoid width of the timestep embedding (``timestep_embedding(1000·t, 256)``).
TIME_EMBED_DIM = 256


@dataclass(frozen=True, slots=True)
class MMDiTConfig:
    """Sizes of an Open-Sora 2.0 MMDiT (field names as in the original config).

    ``in_channels`` is the packed token width (16 latent channels × 2×2 = 64); ``cond_in`` (with
    ``cond_embed``) reads ``in_channels + patch_size²`` features (the packed mask and masked
    reference latent). ``sum(axes_dim)`` must equal the head dimension.
    """

    in_channels: int = 64
    hidden_size: int = 3072
    num_heads: int = 24
    depth: int = 19
    depth_single_blocks: int = 38
    mlp_ratio: float = 4.0
    axes_dim: tuple[int, ...] = PUBLISHED_AXES_DIM
    theta: float = 10000.0
    vec_in_dim: int = 768
    context_in_dim: int = 4096
    qkv_bias: bool = True
    cond_embed: bool = True
    patch_size: int = 2

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of "
                             f"num_heads {self.num_heads}")  # fmt: skip
        if sum(self.axes_dim) != self.head_dim or any(d % 2 for d in self.axes_dim):
            raise ValueError(f"axes_dim {self.axes_dim} must be even and sum to the head "
                             f"dimension {self.head_dim}")  # fmt: skip

    @property
    def head_dim(self) -> int:
        """Channels per attention head (128 for the published model)."""
        return self.hidden_size // self.num_heads

    @property
    def mlp_hidden(self) -> int:
        """Width of the MLPs' hidden layer (``int(hidden_size · mlp_ratio)``)."""
        return int(self.hidden_size * self.mlp_ratio)

    @property
    def cond_channels(self) -> int:
        """Input width of ``cond_in``: packed latent channels plus the packed mask (p²)."""
        return self.in_channels + self.patch_size**2


#: Open-Sora 2.0 (``Open_Sora_v2.safetensors``, HunyuanVideo VAE): 11,891,390,528 parameters.
OPEN_SORA_V2 = MMDiTConfig()

_DOUBLE = re.compile(r"^double_blocks\.(\d+)\.")
_SINGLE = re.compile(r"^single_blocks\.(\d+)\.")


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(value.shape) if hasattr(value, "shape") else tuple(value)


def _count(keys: Sequence[str], pattern: re.Pattern[str]) -> int:
    indices = {int(m.group(1)) for k in keys if (m := pattern.match(k))}
    if indices and indices != set(range(len(indices))):
        raise CheckpointError(f"block indices are not contiguous: {sorted(indices)}")
    return len(indices)


def _require(shapes: Mapping[str, tuple[int, ...]], key: str) -> tuple[int, ...]:
    if key not in shapes:
        raise CheckpointError(f"not an Open-Sora 2.0 MMDiT state dict: no '{key}'")
    return shapes[key]


def _patch_size(shapes: Mapping[str, tuple[int, ...]], in_channels: int) -> int:
    if "cond_in.weight" not in shapes:
        return OPEN_SORA_V2.patch_size
    extra = shapes["cond_in.weight"][1] - in_channels
    patch = math.isqrt(max(extra, 0))
    if patch < 1 or patch * patch != extra:
        raise CheckpointError(f"cond_in reads {extra} extra features, not a square patch")
    return patch


def _qkv_bias(shapes: Mapping[str, tuple[int, ...]]) -> bool:
    prefix = "double_blocks.0.img_attn."
    return f"{prefix}q_proj.bias" in shapes or f"{prefix}qkv.bias" in shapes


def config_from_state_dict_shapes(
    state_dict: Mapping[str, Any],
    axes_dim: tuple[int, ...] | None = None,
    theta: float = OPEN_SORA_V2.theta,
) -> MMDiTConfig:
    """The config of an original-layout MMDiT state dict (tensors or shapes), fused or not.

    The head dimension is the size of the qk-norm ``.scale``; the RoPE split is not stored in a
    checkpoint: ``axes_dim`` defaults to the published (16, 56, 56) for 128-dimensional heads and
    must be given otherwise. A guidance-distilled file (``guidance_in``) is refused.
    """
    shapes = {k: _shape(v) for k, v in state_dict.items()}
    if any(k.startswith("guidance_in.") for k in shapes):
        raise CheckpointError("guidance-distilled MMDiT checkpoints are not supported")
    hidden, in_channels = _require(shapes, "img_in.weight")
    head_dim = _require(shapes, "double_blocks.0.img_attn.norm.query_norm.scale")[0]
    if axes_dim is None:
        if head_dim != sum(PUBLISHED_AXES_DIM):
            raise CheckpointError(f"head dimension {head_dim}: give the RoPE axes_dim")
        axes_dim = PUBLISHED_AXES_DIM
    return MMDiTConfig(
        in_channels=in_channels, hidden_size=hidden, num_heads=hidden // head_dim,
        depth=_count(list(shapes), _DOUBLE), depth_single_blocks=_count(list(shapes), _SINGLE),
        mlp_ratio=_require(shapes, "double_blocks.0.img_mlp.0.weight")[0] / hidden,
        axes_dim=tuple(axes_dim), theta=theta,
        vec_in_dim=_require(shapes, "vector_in.in_layer.weight")[1],
        context_in_dim=_require(shapes, "txt_in.weight")[1], qkv_bias=_qkv_bias(shapes),
        cond_embed="cond_in.weight" in shapes, patch_size=_patch_size(shapes, in_channels),
    )  # fmt: skip
