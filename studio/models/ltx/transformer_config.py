"""Configuration of the LTX-Video transformer (``Transformer3DModel`` of Lightricks/LTX-Video).

Two files describe it: a single-file checkpoint's safetensors header (JSON ``config`` →
``transformer``, the original field names) and a diffusers folder's ``transformer/config.json``
(``LTXVideoTransformer3DModel``). Both are read and written here; every field a file may vary is
checked. Facts (sizes, which releases use causal temporal positions) are in docs/families/ltx.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from studio.models.ltx import transformer_config_fields as f

_ORIGINAL = "LTX transformer"
_DIFFUSERS = "diffusers LTXVideoTransformer3DModel"

#: Architecture choices of the original config that every published LTX-Video transformer makes,
#: with the original class's default for an absent field and the value supported here.
_ORIGINAL_FIXED = (
    ("activation_fn", "geglu", "gelu-approximate"), ("attention_bias", False, True),
    ("qk_norm", None, "rms_norm"), ("standardization_norm", "layer_norm", "rms_norm"),
    ("norm_elementwise_affine", True, False), ("adaptive_norm", "single_scale_shift",
    "single_scale_shift"), ("positional_embedding_type", "rope", "rope"),
    ("only_cross_attention", False, False), ("double_self_attention", False, False),
)  # fmt: skip
#: The same for diffusers (whose RoPE θ, max positions and time scale are not configurable).
_DIFFUSERS_FIXED = (
    ("patch_size", 1, 1), ("patch_size_t", 1, 1), ("activation_fn", "gelu-approximate",
    "gelu-approximate"), ("qk_norm", "rms_norm_across_heads", "rms_norm_across_heads"),
    ("norm_elementwise_affine", False, False), ("attention_bias", True, True),
    ("attention_out_bias", True, True),
)  # fmt: skip
_DIFFUSERS_ROPE = (10000.0, (20, 2048, 2048), 1000.0)


@dataclass(frozen=True, slots=True)
class LTXTransformerConfig:
    """Sizes of an LTX-Video transformer.

    ``max_pos`` are the (seconds, pixels, pixels) positions that map to the RoPE's fraction 1;
    ``timestep_scale`` multiplies t ∈ [0, 1] before the sinusoidal embedding.
    ``causal_temporal_positioning``: the first latent frame covers one pixel frame, so token
    times shift by 1 − 8 frames (clamped at 0) — set by 0.9.5 and later releases; the transformer
    does not use it itself, the caller's :func:`~studio.models.ltx.rope.video_coords` does.
    """

    num_layers: int
    num_heads: int
    head_dim: int
    in_channels: int = 128
    out_channels: int = 128
    caption_channels: int = 4096
    norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    max_pos: tuple[float, float, float] = (20, 2048, 2048)
    timestep_scale: float = 1000.0
    causal_temporal_positioning: bool = False

    @property
    def dim(self) -> int:
        """The inner width: heads × head_dim (2048 for 2B, 4096 for 13B)."""
        return self.num_heads * self.head_dim

    @classmethod
    def from_original(cls, d: Mapping[str, Any]) -> LTXTransformerConfig:
        """From the ``transformer`` object of a single file's header (original field names)."""
        for key, default, expected in _ORIGINAL_FIXED:
            f.fixed(d, _ORIGINAL, key, default, expected)
        in_channels = f.positive_int(d, _ORIGINAL, "in_channels")
        out = d.get("out_channels")  # None: as many as in
        scale = d.get("timestep_scale_multiplier")  # None: the original does not scale t
        config = cls(
            num_layers=f.positive_int(d, _ORIGINAL, "num_layers"),
            num_heads=f.positive_int(d, _ORIGINAL, "num_attention_heads"),
            head_dim=f.positive_int(d, _ORIGINAL, "attention_head_dim"),
            in_channels=in_channels,
            out_channels=in_channels if out is None else f.positive_int(d, _ORIGINAL,
                                                                        "out_channels"),
            caption_channels=f.positive_int(d, _ORIGINAL, "caption_channels"),
            norm_eps=f.positive_float(d, _ORIGINAL, "norm_eps", 1e-5),
            rope_theta=f.positive_float(d, _ORIGINAL, "positional_embedding_theta"),
            max_pos=f.positions(d, _ORIGINAL, "positional_embedding_max_pos"),
            timestep_scale=1.0 if scale is None else f.positive_float(
                d, _ORIGINAL, "timestep_scale_multiplier"),
            causal_temporal_positioning=f.flag(d, _ORIGINAL, "causal_temporal_positioning", False),
        )  # fmt: skip
        config._check_cross_width(d, _ORIGINAL, f.REQUIRED)  # absent: no cross-attention
        return config

    @classmethod
    def from_diffusers(
        cls, d: Mapping[str, Any], *, causal_temporal_positioning: bool = False
    ) -> LTXTransformerConfig:
        """From a diffusers ``transformer/config.json``.

        diffusers keeps causal positions out of the transformer's config (its
        ``LTXConditionPipeline``, made for 0.9.5+, always applies them; ``LTXPipeline`` never),
        so the caller says which from the folder's pipeline class.
        """
        for key, default, expected in _DIFFUSERS_FIXED:
            f.fixed(d, _DIFFUSERS, key, default, expected)
        config = cls(
            num_layers=f.positive_int(d, _DIFFUSERS, "num_layers", 28),
            num_heads=f.positive_int(d, _DIFFUSERS, "num_attention_heads", 32),
            head_dim=f.positive_int(d, _DIFFUSERS, "attention_head_dim", 64),
            in_channels=f.positive_int(d, _DIFFUSERS, "in_channels", 128),
            out_channels=f.positive_int(d, _DIFFUSERS, "out_channels", 128),
            caption_channels=f.positive_int(d, _DIFFUSERS, "caption_channels", 4096),
            norm_eps=f.positive_float(d, _DIFFUSERS, "norm_eps", 1e-6),
            causal_temporal_positioning=causal_temporal_positioning,
        )
        config._check_cross_width(d, _DIFFUSERS, 2048)
        return config

    def _check_cross_width(self, d: Mapping[str, Any], source: str, default: Any) -> None:
        # The captions are projected to the inner width before cross-attention reads them.
        width = f.positive_int(d, source, "cross_attention_dim", default)
        if width != self.dim:
            raise f.field_error(source, "cross_attention_dim", width, f"the inner width {self.dim}")

    def to_original(self) -> dict[str, Any]:
        """The header's ``transformer`` object (the fields the original class reads)."""
        d: dict[str, Any] = {"_class_name": "Transformer3DModel"}
        d.update({key: expected for key, _, expected in _ORIGINAL_FIXED})
        d.update(
            num_layers=self.num_layers, num_attention_heads=self.num_heads,
            attention_head_dim=self.head_dim, in_channels=self.in_channels,
            out_channels=self.out_channels, caption_channels=self.caption_channels,
            cross_attention_dim=self.dim, norm_eps=self.norm_eps,
            positional_embedding_theta=self.rope_theta,
            positional_embedding_max_pos=list(self.max_pos),
            timestep_scale_multiplier=self.timestep_scale,
            causal_temporal_positioning=self.causal_temporal_positioning,
        )  # fmt: skip
        return d

    def to_diffusers(self) -> dict[str, Any]:
        """A diffusers ``config.json``; ``ValueError`` for a RoPE diffusers cannot express."""
        rope = (self.rope_theta, tuple(self.max_pos), self.timestep_scale)
        if rope != _DIFFUSERS_ROPE:
            raise ValueError(f"diffusers fixes θ, max positions, time scale at {_DIFFUSERS_ROPE}")
        d: dict[str, Any] = {"_class_name": "LTXVideoTransformer3DModel"}
        d.update({key: expected for key, _, expected in _DIFFUSERS_FIXED})
        d.update(
            num_layers=self.num_layers, num_attention_heads=self.num_heads,
            attention_head_dim=self.head_dim, in_channels=self.in_channels,
            out_channels=self.out_channels, caption_channels=self.caption_channels,
            cross_attention_dim=self.dim, norm_eps=self.norm_eps,
        )  # fmt: skip
        return d


#: LTX-Video 2B (0.9.0 … 0.9.8): 28 blocks, 32 heads × 64; 1,923,385,472 parameters.
LTX_2B = LTXTransformerConfig(num_layers=28, num_heads=32, head_dim=64)
#: LTX-Video 13B (0.9.7, 0.9.8): 48 blocks, 32 heads × 128; causal temporal positions.
LTX_13B = LTXTransformerConfig(
    num_layers=48, num_heads=32, head_dim=128, causal_temporal_positioning=True
)
#: A tiny random configuration for tests: 2 blocks, 2 heads × 8 (dim 16: 16 % 6 = 4 padding
#: RoPE channels, like 2048 % 6 = 2), 16 latent channels, 24-wide captions.
TINY = LTXTransformerConfig(
    num_layers=2, num_heads=2, head_dim=8, in_channels=16, out_channels=16, caption_channels=24
)
_PUBLISHED = {"ltx-2b": LTX_2B, "ltx-13b": LTX_13B}


def published(name: str) -> LTXTransformerConfig:
    """The published configuration ``name`` (``"ltx-2b"`` or ``"ltx-13b"``)."""
    if name not in _PUBLISHED:
        raise KeyError(f"no published LTX transformer '{name}'; known: {sorted(_PUBLISHED)}")
    return _PUBLISHED[name]
