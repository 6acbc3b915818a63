"""The engine's :class:`LoadedModel` around loaded (or random) LTX-Video modules.

The transformer behind :class:`~studio.models.ltx.denoiser.LTXDenoiser` (frame layout, text
mask channel), the VAE behind :class:`~studio.models.ltx.vae_adapter.LTXVideoVAEAdapter`,
T5 behind :class:`~studio.models.ltx.text.LTXTextEncoder`; the checkpoint's preset gives the
defaults, the STG blocks and the decode settings; its scheduler gives the "auto" schedule.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from studio.engine.model import (
    DIT,
    FIRST_FRAME,
    KEYFRAME,
    TEXT_ENCODER,
    VAE,
    AttentionShape,
    Capabilities,
    FamilyDefaults,
    LoadedModel,
    ModelModules,
    PreviewFactors,
)
from studio.engine.shapes import LatentGeometry
from studio.models.ltx.denoiser import LTXDenoiser
from studio.models.ltx.guidance import ltx_guidance
from studio.models.ltx.guidance_ranges import GuidanceSchedule
from studio.models.ltx.identify import FAMILY_NAME
from studio.models.ltx.memory import loaded_memory, vae_per_pixel
from studio.models.ltx.presets import (
    PREVIEW,
    PROMPT_EXAMPLES,
    SchedulerRule,
    defaults_for,
    preset_for,
)
from studio.models.ltx.text import LTXTextEncoder
from studio.models.ltx.transformer import LTXTransformer
from studio.models.ltx.transformer_config import LTXTransformerConfig
from studio.models.ltx.vae_adapter import LTXVideoVAEAdapter

#: The samplers the original offers: Euler (``stochastic_sampling: false``) and its stochastic
#: step (re-noising x̂₀ to the next time with fresh noise).
SAMPLERS = ("euler", "stochastic")


@dataclass(frozen=True, slots=True)
class LTXParts:
    """The loaded modules of one LTX-Video model (any sizes, loaded or random)."""

    transformer: LTXTransformer
    vae: torch.nn.Module
    text: LTXTextEncoder


def geometry_of(parts: LTXParts) -> LatentGeometry:
    """Latent channels from the transformer; 8× time, 32× space unless the VAE says otherwise."""
    config = getattr(parts.vae, "config", None)
    temporal = int(getattr(config, "temporal_ratio", 8))
    spatial = int(getattr(config, "spatial_ratio", 32))
    return LatentGeometry(parts.transformer.config.in_channels, temporal, spatial, (1, 1, 1))


def preview_for(channels: int) -> PreviewFactors:
    """ComfyUI's LTXV factors for 128 channels; a smaller test model takes the first rows."""
    rows = PREVIEW.rgb_factors[:channels]
    rows += ((0.0, 0.0, 0.0),) * (channels - len(rows))
    return PreviewFactors(rows, PREVIEW.bias)


def assemble_ltx_model(parts: LTXParts, *, model_id: str, name: str, variant: str,
                       device: torch.device, dtype: torch.dtype,
                       schedule: SchedulerRule | None = None,
                       defaults: FamilyDefaults | None = None) -> LoadedModel:  # fmt: skip
    """The :class:`LoadedModel` of ``parts`` for a checkpoint of ``variant`` ("2b-0.9.1")."""
    config, geometry = parts.transformer.config, geometry_of(parts)
    preset = preset_for(variant)
    blocks = tuple(b for b in preset.skip_blocks if b < config.num_layers)
    scale = (geometry.temporal_factor, geometry.spatial_factor, geometry.spatial_factor)
    modules = ModelModules(parts={TEXT_ENCODER: parts.text.t5, DIT: parts.transformer,
                                  VAE: parts.vae}, blocks={DIT: "transformer_blocks"},
                           attention=AttentionShape(config.num_heads, config.head_dim))
    vae = LTXVideoVAEAdapter(parts.vae, decode_timestep=preset.decode_timestep,
                             decode_noise_scale=preset.decode_noise_scale)  # fmt: skip
    return LoadedModel(
        id=model_id, name=name, family=FAMILY_NAME, variant=variant, geometry=geometry,
        defaults=defaults or defaults_for(variant), preview=preview_for(geometry.channels),
        text_encoder=parts.text, denoiser=LTXDenoiser(parts.transformer, scale), vae=vae,
        device=device, dtype=dtype, modules=modules,
        memory=loaded_memory(parts.transformer, parts.vae, parts.text.t5, geometry,
                             text_len=parts.text.text_len,
                             vae_per_pixel=vae_per_pixel(parts.vae.config, geometry)),
        capabilities=Capabilities(samplers=SAMPLERS, conditioning=(FIRST_FRAME, KEYFRAME),
                                  frame_layout=True),
        guidance_rule=ltx_guidance(blocks, preset.stg_mode, _within(preset.ranges, config)),
        schedule_rule=schedule or SchedulerRule(), image_required=False,
        prompt_examples=PROMPT_EXAMPLES,
    )  # fmt: skip


def _within(ranges: GuidanceSchedule | None, config: LTXTransformerConfig
            ) -> GuidanceSchedule | None:
    """``ranges`` perturbing only blocks the transformer has (test models are shallower)."""
    if ranges is None:
        return None
    kept = tuple(replace(r, skip_blocks=tuple(b for b in r.skip_blocks if b < config.num_layers))
                 for r in ranges.ranges)
    return replace(ranges, ranges=kept)
