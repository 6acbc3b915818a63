"""Load a Wan set: a registry :class:`ModelSet` → a :class:`LoadedModel` the engine runs.

Each part is re-probed (headers only), mapped to the internal key layout
(:mod:`studio.models.wan.keys`), sized from its own tensor shapes, and loaded straight to the
device (:func:`studio.models.loading.load_module`). The DiT runs in the requested dtype with its
time MLP, modulation tables and norms kept in float32 (as ``WanDiT.to_dtype``); the text encoder
runs in the requested dtype; the VAE always runs in float32, as in the original pipelines.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch

from studio.engine.cancel import NEVER, CancelToken
from studio.engine.memory_model import TextEncoderShape
from studio.engine.model import (
    DIT_LOW,
    AttentionShape,
    Capabilities,
    LoadedModel,
    ModelModules,
    ResolutionShift,
)
from studio.errors import CheckpointError
from studio.models.calibrations import load_calibration
from studio.models.family import Component, ModelSet
from studio.models.loading import load_module
from studio.models.wan.clip_model import with_clip
from studio.models.wan.dit import FP32_PARAMETERS, WanDiT
from studio.models.wan.dit_config import WanDiTConfig, dit_config
from studio.models.wan.expert_model import i2v_channels, with_experts
from studio.models.wan.identify import FAMILY_NAME
from studio.models.wan.keys import (
    DIT,
    IMAGE_ENCODER,
    TEXT_ENCODER,
    TOKENIZER,
    VAE,
    identify_layout,
    key_map,
)
from studio.models.wan.memory import loaded_memory
from studio.models.wan.presets import (
    PROMPT_EXAMPLES,
    T2V_CUSTOM,
    VARIANTS,
    WanVariant,
    variant_for,
)
from studio.models.wan.text import UMT5TextEncoder, load_umt5_encoder
from studio.models.wan.vae import CausalVideoVAE
from studio.models.wan.vae_config import vae_config_from_shapes
from studio.models.wan.vae_factory import build_vae
from studio.models.weight_files import WeightFiles, probe_weights

log = logging.getLogger(__name__)

_FIX_SET = "rescan the folder and add the missing or matching files (see `studio models scan`)"
_TEXT_BLOCKS = "encoder.block"


def load_wan_model(
    model_set: ModelSet,
    device: torch.device | str,
    dtype: torch.dtype,
    cancel: CancelToken = NEVER,
) -> LoadedModel:
    """Load a complete Wan set: DiT (``dtype``), UMT5 encoder (``dtype``), VAE (float32).

    Raises:
        CheckpointError: the set is incomplete or mismatched, or a file does not fit its part
            (the message names the file).
    """
    _check_usable(model_set)
    device = torch.device(device)
    dit_weights, dit_map = mapped_part(model_set, DIT)
    config = dit_config(mapped_shapes(dit_weights, dit_map), dit_weights.paths[0].parent,
                        dit_weights.label)
    variant = _variant(config, dit_weights, model_set)
    vae_weights, vae_map = mapped_part(model_set, VAE)
    vae_config = vae_config_from_shapes(mapped_shapes(vae_weights, vae_map),
                                        vae_weights.label)
    if vae_config.z_dim != config.out_dim:
        raise CheckpointError(
            f"the VAE in {vae_weights.label} has {vae_config.z_dim} latent channels but the DiT "
            f"in {dit_weights.label} makes {config.out_dim}",
            f"{variant.title} needs the Wan {variant.vae_version} VAE ({variant.vae_file})",
        )
    encoder = _load_encoder(model_set, config, dit_weights.label, device, dtype, cancel)
    dit = _load_dit(config, dit_weights, dit_map, device, dtype, f"{variant.title} DiT", cancel)
    low = _load_low_expert(model_set, config, variant, device, dtype, cancel)
    vae: CausalVideoVAE = load_module(
        lambda: build_vae(vae_config), vae_weights, vae_map, device=device, dtype=torch.float32,
        what=f"Wan {vae_config.version} VAE", cancel=cancel,
    )
    vae.requires_grad_(False)
    log.info("loaded %s (%s) from %s", variant.title, variant.name, model_set.id)
    model = _assembled(model_set, variant, encoder, dit, vae, device, dtype)
    if variant.clip:
        model = with_clip(model, model_set, dtype, cancel)
    return with_experts(model, variant, dit, low, model_set) if low is not None else model


def _load_dit(config: WanDiTConfig, weights: WeightFiles, mapping: dict[str, str],
              device: torch.device, dtype: torch.dtype, what: str, cancel: CancelToken) -> WanDiT:
    dit = load_module(lambda: WanDiT(config), weights, mapping, device=device, dtype=dtype,
                      keep_float32=_keeps_float32, what=what, cancel=cancel)
    return dit.requires_grad_(False)


def _load_low_expert(model_set: ModelSet, config: WanDiTConfig, variant: WanVariant,
                     device: torch.device, dtype: torch.dtype, cancel: CancelToken
                     ) -> WanDiT | None:
    """An A14B set's low-noise expert (None for one-DiT releases); it must be shaped as the
    high-noise one."""
    if not variant.experts:
        return None
    weights, mapping = mapped_part(model_set, DIT_LOW)
    low_config = dit_config(mapped_shapes(weights, mapping), weights.paths[0].parent,
                            weights.label)
    if low_config != config:
        raise CheckpointError(f"the low-noise expert in {weights.label} is not shaped as the "
                              "high-noise one", "use the two experts of one A14B release")
    return _load_dit(config, weights, mapping, device, dtype,
                     f"{variant.title} low-noise DiT", cancel)


def _load_encoder(model_set: ModelSet, config: WanDiTConfig, dit_label: str,
                  device: torch.device, dtype: torch.dtype, cancel: CancelToken
                  ) -> UMT5TextEncoder:
    text_weights = probe_weights(_part(model_set, TEXT_ENCODER).path)
    tokenizer_dir = _part(model_set, TOKENIZER).path
    encoder = load_umt5_encoder(text_weights, tokenizer_dir, device=device, dtype=dtype,
                                cancel=cancel)
    if encoder.width != config.text_dim:
        raise CheckpointError(
            f"the text encoder in {text_weights.label} gives {encoder.width}-wide features but "
            f"the DiT in {dit_label} takes {config.text_dim}",
            "Wan needs the UMT5-XXL encoder (models_t5_umt5-xxl-enc-bf16.pth)",
        )
    return encoder


#: Prompts in the style Wan does well: a subject, its motion, the setting, light and camera.


def _assembled(model_set: ModelSet, variant: WanVariant, encoder: UMT5TextEncoder, dit: WanDiT,
               vae: CausalVideoVAE, device: torch.device, dtype: torch.dtype) -> LoadedModel:
    """The engine's view of the loaded parts. Text-to-video variants run the DiT with one time
    per sample (``velocity_uniform``: same result, less memory); TI2V needs per-token time."""
    text = TextEncoderShape(encoder.width, encoder.model.config.num_heads, dit.config.text_len)
    modules = ModelModules(
        parts={TEXT_ENCODER: encoder.model, DIT: dit, VAE: vae},
        blocks={DIT: "blocks", TEXT_ENCODER: _TEXT_BLOCKS},
        attention=AttentionShape(dit.config.num_heads, dit.config.head_dim),
    )
    memory = loaded_memory(dit, vae, encoder.model, text, variant.geometry,
                           per_token_time=variant.supports_image, text_blocks=_TEXT_BLOCKS)
    return LoadedModel(
        id=model_set.id, name=model_set.name or variant.title, family=FAMILY_NAME,
        variant=variant.name, geometry=variant.geometry, defaults=variant.defaults,
        preview=variant.preview, text_encoder=encoder,
        denoiser=dit.velocity if variant.supports_image else dit.velocity_uniform, vae=vae,
        device=device, dtype=dtype, modules=modules, memory=memory,
        capabilities=Capabilities(conditioning=variant.conditioning,
                                  shift_rule=ResolutionShift()),
        cache_calibration=load_calibration(FAMILY_NAME, variant.name),
        prompt_examples=PROMPT_EXAMPLES,
        image_channels=i2v_channels(vae, variant.geometry.temporal_factor)
        if variant.image_channels else None,
    )  # fmt: skip


def _check_usable(model_set: ModelSet) -> None:
    if model_set.family != FAMILY_NAME:
        raise CheckpointError(f"{model_set.id} is a {model_set.family!r} set, not a Wan model",
                              "load it with its own family")
    if model_set.problems:
        raise CheckpointError(f"the Wan set in {model_set.id} cannot be loaded: "
                              + "; ".join(model_set.problems), _FIX_SET)
    listed = VARIANTS.get(model_set.variant, T2V_CUSTOM)
    roles = (DIT, VAE, TEXT_ENCODER, TOKENIZER) + ((DIT_LOW,) if listed.experts else ()) + (
        (IMAGE_ENCODER,) if listed.clip else ())
    missing = [role for role in roles if model_set.component(role) is None]
    if missing or not model_set.complete:
        raise CheckpointError(f"the Wan set in {model_set.id} is incomplete: no "
                              + ", ".join(missing or ["part"]), _FIX_SET)


def _part(model_set: ModelSet, role: str) -> Component:
    component = model_set.component(role)
    assert component is not None, "checked by _check_usable"
    return component


def mapped_part(model_set: ModelSet, role: str) -> tuple[WeightFiles, dict[str, str]]:
    """Probe a part again (headers only) and map its keys to the internal layout (the
    low-noise expert's file holds a DiT)."""
    weights = probe_weights(_part(model_set, role).path)
    layout = identify_layout(weights.tensors())
    if layout is None or layout.role != (DIT if role == DIT_LOW else role):
        found = layout.role if layout else "no Wan part"
        raise CheckpointError(f"{weights.label} should hold the {role} but holds {found}",
                              _FIX_SET)
    return weights, key_map(layout, weights.tensors())


def mapped_shapes(weights: WeightFiles, mapping: Mapping[str, str]) -> dict[str, tuple[int, ...]]:
    return {mapping[key]: shape for key, shape in weights.shapes().items() if key in mapping}


def _keeps_float32(key: str) -> bool:
    return any(fragment in key for fragment in FP32_PARAMETERS)


def _variant(config: WanDiTConfig, weights: WeightFiles, model_set: ModelSet) -> WanVariant:
    """The release: the set's (an A14B pair was recognised when scanning), else the DiT's."""
    listed = VARIANTS.get(model_set.variant)
    branch = "flf2v" if config.image_tokens else "i2v" if config.image_dim else ""
    variant = listed if listed is not None and (listed.experts or listed.clip) else variant_for(
        config.in_dim, config.dim, config.num_layers, branch,
        f"{weights.paths[0].parent.name}/{weights.paths[0].name}")
    if variant is None:
        raise CheckpointError(f"{weights.label}: a Wan DiT with {config.in_dim} latent channels "
                              "is not supported", "use Wan 2.1 T2V or Wan 2.2 TI2V-5B")
    return VARIANTS[variant.name]
