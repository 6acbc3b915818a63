"""The Wan family adapter: a registry :class:`ModelSet` → a :class:`LoadedModel` the engine runs.

Each part is re-probed (headers only), mapped to the internal key layout
(:mod:`studio.models.wan.keys`), sized from its own tensor shapes, and loaded straight to the
device (:func:`studio.models.loading.load_module`). The DiT runs in the requested dtype with its
time MLP, modulation tables and norms kept in float32 (as ``WanDiT.to_dtype``); the text encoder
runs in the requested dtype; the VAE always runs in float32, as in the original pipelines.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from studio.engine.cancel import NEVER, CancelToken
from studio.errors import CheckpointError
from studio.models.checkpoint import WeightFiles, probe_weights
from studio.models.family import LoadedModel
from studio.models.loading import load_module
from studio.models.registry import ModelSet
from studio.models.wan.dit import FP32_PARAMETERS, WanDiT
from studio.models.wan.dit_config import WanDiTConfig
from studio.models.wan.identify import Component
from studio.models.wan.keys import DIT, TEXT_ENCODER, TOKENIZER, VAE, identify_layout, key_map
from studio.models.wan.presets import VARIANTS, WanVariant, variant_for
from studio.models.wan.text import load_umt5_encoder
from studio.models.wan.vae import (
    WAN21_LATENT_MEAN,
    WAN21_LATENT_STD,
    WAN22_LATENT_MEAN,
    WAN22_LATENT_STD,
    CausalVideoVAE,
    WanVAEConfig,
    build_vae,
)

log = logging.getLogger(__name__)

_FIX_SET = "rescan the folder and add the missing or matching files (see `studio models scan`)"
_LATENT_STATS = {16: (WAN21_LATENT_MEAN, WAN21_LATENT_STD),
                 48: (WAN22_LATENT_MEAN, WAN22_LATENT_STD)}


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
    dit_weights, dit_map = _mapped(model_set, DIT)
    config = dit_config(_shapes(dit_weights, dit_map), dit_weights.paths[0].parent)
    variant = _variant(config, dit_weights)
    vae_weights, vae_map = _mapped(model_set, VAE)
    vae_config = vae_config_from_shapes(_shapes(vae_weights, vae_map), vae_weights.label)
    if vae_config.z_dim != config.in_dim:
        raise CheckpointError(
            f"the VAE in {vae_weights.label} has {vae_config.z_dim} latent channels but the DiT "
            f"in {dit_weights.label} takes {config.in_dim}",
            f"{variant.title} needs the Wan {variant.vae_version} VAE ({variant.vae_file})",
        )
    text_weights = probe_weights(_part(model_set, TEXT_ENCODER).path)
    tokenizer_dir = _part(model_set, TOKENIZER).path
    encoder = load_umt5_encoder(text_weights, tokenizer_dir, device=device, dtype=dtype,
                                cancel=cancel)
    if encoder.width != config.text_dim:
        raise CheckpointError(
            f"the text encoder in {text_weights.label} gives {encoder.width}-wide features but "
            f"the DiT in {dit_weights.label} takes {config.text_dim}",
            "Wan needs the UMT5-XXL encoder (models_t5_umt5-xxl-enc-bf16.pth)",
        )
    dit = load_module(lambda: WanDiT(config), dit_weights, dit_map, device=device, dtype=dtype,
                      keep_float32=_keeps_float32, what=f"{variant.title} DiT", cancel=cancel)
    vae: CausalVideoVAE = load_module(
        lambda: build_vae(vae_config), vae_weights, vae_map, device=device, dtype=torch.float32,
        what=f"Wan {vae_config.version} VAE", cancel=cancel,
    )
    vae.requires_grad_(False)
    dit.requires_grad_(False)
    log.info("loaded %s (%s) from %s", variant.title, variant.name, model_set.id)
    return LoadedModel(
        id=model_set.id, name=model_set.name or variant.title, family="wan",
        variant=variant.name, geometry=variant.geometry, defaults=variant.defaults,
        preview=variant.preview, text_encoder=encoder,
        denoiser=dit.velocity if variant.supports_image else dit.velocity_uniform, vae=vae,
        device=device, dtype=dtype, supports_image=variant.supports_image,
    )  # fmt: skip


def _check_usable(model_set: ModelSet) -> None:
    if model_set.family != "wan":
        raise CheckpointError(f"{model_set.id} is a {model_set.family!r} set, not a Wan model",
                              "load it with its own family")
    if model_set.problems:
        raise CheckpointError(f"the Wan set in {model_set.id} cannot be loaded: "
                              + "; ".join(model_set.problems), _FIX_SET)
    missing = [role for role in (DIT, VAE, TEXT_ENCODER, TOKENIZER)
               if model_set.component(role) is None]
    if missing or not model_set.complete:
        raise CheckpointError(f"the Wan set in {model_set.id} is incomplete: no "
                              + ", ".join(missing or ["part"]), _FIX_SET)


def _part(model_set: ModelSet, role: str) -> Component:
    component = model_set.component(role)
    assert component is not None, "checked by _check_usable"
    return component


def _mapped(model_set: ModelSet, role: str) -> tuple[WeightFiles, dict[str, str]]:
    """Probe a part again (headers only) and map its keys to the internal layout."""
    weights = probe_weights(_part(model_set, role).path)
    layout = identify_layout(weights.tensors())
    if layout is None or layout.role != role:
        found = layout.role if layout else "no Wan part"
        raise CheckpointError(f"{weights.label} should hold the {role} but holds {found}",
                              _FIX_SET)
    return weights, key_map(layout, weights.tensors())


def _shapes(weights: WeightFiles, mapping: Mapping[str, str]) -> dict[str, tuple[int, ...]]:
    return {mapping[key]: shape for key, shape in weights.shapes().items() if key in mapping}


def _keeps_float32(key: str) -> bool:
    return any(fragment in key for fragment in FP32_PARAMETERS)


def _variant(config: WanDiTConfig, weights: WeightFiles) -> WanVariant:
    variant = variant_for(config.in_dim, config.dim, config.num_layers, image_branch=False)
    if variant is None or not variant.supported:
        raise CheckpointError(f"{weights.label}: a Wan DiT with {config.in_dim} latent channels "
                              "is not supported", "use Wan 2.1 T2V or Wan 2.2 TI2V-5B")
    return VARIANTS[variant.name]


def dit_config(shapes: Mapping[str, Sequence[int]], folder: Path) -> WanDiTConfig:
    """Sizes from the tensor shapes; the head count from a ``config.json`` beside the weights
    (original ``num_heads`` or diffusers ``num_attention_heads``) when there is one, else
    dim / 128 as in every release."""
    config = WanDiTConfig.from_state_dict_shapes(shapes)
    try:
        data = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return config
    heads = data.get("num_heads", data.get("num_attention_heads")) if isinstance(data, dict) \
        else None
    if isinstance(heads, int) and heads > 0 and heads != config.num_heads:
        try:
            return dataclasses.replace(config, num_heads=heads)
        except ValueError as exc:
            raise CheckpointError(f"{folder / 'config.json'}: num_heads {heads} does not fit "
                                  f"dim {config.dim} ({exc})", _FIX_SET) from exc
    return config


_ENC_RES = re.compile(
    r"^encoder\.downsamples\.(\d+)\.(?:downsamples\.(\d+)\.)?residual\.6\.weight$"
)


def vae_config_from_shapes(shapes: Mapping[str, Sequence[int]], label: str) -> WanVAEConfig:
    """A Wan VAE's configuration from original-layout tensor shapes (no data read).

    Version (12 input channels = 2.2's 2×2 pixel patchify), widths, stage multipliers, residual
    blocks per stage and temporal downsampling (stages with a ``time_conv``) are all read from
    the shapes; the latent statistics are those of the release with that many channels.

    Raises:
        CheckpointError: shapes no Wan VAE has (``label`` names the file).
    """
    try:
        width, in_channels = shapes["encoder.conv1.weight"][:2]
        z_dim = shapes["conv2.weight"][0]
        decoder_in = shapes["decoder.conv1.weight"][0]
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{label}: not a Wan VAE (no {exc})", _FIX_SET) from exc
    nested = in_channels == 12
    stages: dict[int, list[tuple[int, int]]] = {}
    for key, shape in shapes.items():
        match = _ENC_RES.match(key)
        if match:
            outer, inner = int(match.group(1)), match.group(2)
            stage, slot = (outer, int(inner)) if nested else (outer, outer)
            stages.setdefault(stage, []).append((slot, shape[0]))
    if z_dim not in _LATENT_STATS or not stages:
        raise CheckpointError(f"{label}: a VAE with {z_dim} latent channels is not a Wan VAE",
                              "use Wan2.1_VAE.pth or Wan2.2_VAE.pth")
    groups = _group_stages(stages, nested)
    blocks = len(groups[0])
    mult = tuple(widths[-1] // width for widths in groups)
    temporal = tuple(_has_time_conv(shapes, s, blocks, nested) for s in range(len(mult) - 1))
    mean, std = _LATENT_STATS[z_dim]
    try:
        return WanVAEConfig(
            version="2.2" if nested else "2.1", dim=width,
            dec_dim=decoder_in // mult[-1] if nested else None, z_dim=z_dim, dim_mult=mult,
            num_res_blocks=blocks, temporal_downsample=temporal, latent_mean=mean, latent_std=std,
        )  # fmt: skip
    except (CheckpointError, ValueError, ZeroDivisionError) as exc:
        raise CheckpointError(f"{label}: unexpected Wan VAE shapes ({exc})", _FIX_SET) from exc


def _group_stages(stages: dict[int, list[tuple[int, int]]], nested: bool) -> list[list[int]]:
    """Residual output widths per encoder stage, in order."""
    if nested:
        return [[w for _, w in sorted(stages[s])] for s in sorted(stages)]
    groups: list[list[int]] = [[]]
    previous = None
    for index in sorted(stages):
        if previous is not None and index != previous + 1:  # a resample sat in between
            groups.append([])
        groups[-1].append(stages[index][0][1])
        previous = index
    return groups


def _has_time_conv(shapes: Mapping[str, Sequence[int]], stage: int, blocks: int,
                   nested: bool) -> bool:
    key = (f"encoder.downsamples.{stage}.downsamples.{blocks}.time_conv.weight" if nested
           else f"encoder.downsamples.{stage * (blocks + 1) + blocks}.time_conv.weight")
    return key in shapes
