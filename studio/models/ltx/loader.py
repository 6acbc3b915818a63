"""Load an LTX-Video set: a registry :class:`ModelSet` → the engine's :class:`LoadedModel`.

Configurations come from the single file's header ``config`` (``transformer``, ``vae``,
``scheduler``) or from a diffusers folder's ``config.json`` files; tensors stream from the
safetensors files one at a time onto the device (:func:`studio.models.loading.load_module`), the
transformer's in the compute dtype, the VAE's in float32, T5's in the compute dtype.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from studio.engine.cancel import NEVER, CancelToken
from studio.engine.model import LoadedModel
from studio.errors import CheckpointError
from studio.media.json_file import read_small_json
from studio.models.family import (
    DIT,
    TEXT_ENCODER,
    TOKENIZER,
    VAE,
    Component,
    ModelSet,
    check_loadable,
)
from studio.models.loading import load_module
from studio.models.ltx.assemble import LTXParts, assemble_ltx_model
from studio.models.ltx.identify import DIFFUSERS, FAMILY_NAME, HF, SINGLE, VAE_PREFIX, header_config
from studio.models.ltx.presets import SchedulerRule
from studio.models.ltx.text import LTXTextEncoder, load_t5_file, load_t5_folder
from studio.models.ltx.transformer import LTXTransformer
from studio.models.ltx.transformer_config import LTXTransformerConfig, published
from studio.models.ltx.transformer_keys import own_transformer_state
from studio.models.ltx.vae import LTXVideoVAE
from studio.models.ltx.vae_diffusers import config_from_diffusers
from studio.models.ltx.vae_keys import own_vae_state
from studio.models.ltx.vae_original import config_from_original
from studio.models.ltx.vae_presets import published_for
from studio.models.weight_files import WeightFiles, probe_weights

log = logging.getLogger(__name__)
_FIX = "rescan the folder and add the missing or matching files (see `studio models scan`)"


@dataclass(frozen=True, slots=True)
class Configs:
    """What a set's config files say: the transformer's and VAE's configuration (raw JSON) and
    the scheduler as a schedule rule."""

    transformer: LTXTransformerConfig
    vae: Mapping[str, Any]
    vae_layout: str
    schedule: SchedulerRule


def load_ltx_model(model_set: ModelSet, device: torch.device | str, dtype: torch.dtype,
                   cancel: CancelToken = NEVER) -> LoadedModel:
    """Load a usable set.

    Raises:
        CheckpointError: the set is incomplete or mismatched, or a file is damaged (naming it).
    """
    check_loadable(model_set, FAMILY_NAME, "LTX-Video", _FIX)
    device = torch.device(device)
    configs = read_configs(model_set)
    transformer = load_transformer(model_set, configs.transformer, device, dtype, cancel)
    vae = load_vae(model_set, configs, device, cancel)
    text = load_text(model_set, device, dtype, cancel)
    if text.width != configs.transformer.caption_channels:
        raise CheckpointError(f"the T5 encoder of {model_set.id} gives {text.width} features but "
                              f"the transformer reads {configs.transformer.caption_channels}",
                              "use T5-v1.1-XXL")  # fmt: skip
    log.info("loaded %s from %s", model_set.name, model_set.id)
    return assemble_ltx_model(LTXParts(transformer, vae, text), model_id=model_set.id,
                              name=model_set.name, variant=model_set.variant, device=device,
                              dtype=dtype, schedule=configs.schedule)  # fmt: skip


def read_configs(model_set: ModelSet) -> Configs:
    """The configurations of a set's transformer, VAE and scheduler; a damaged one raises
    :class:`CheckpointError` naming the file."""
    dit = _part(model_set, DIT)
    try:
        return _read_configs(model_set, dit)
    except CheckpointError as exc:
        if str(dit.path.name) in exc.message:
            raise
        raise CheckpointError(f"{dit.path.name}: {exc.message}", exc.hint) from exc


def _read_configs(model_set: ModelSet, dit: Component) -> Configs:
    if dit.layout == SINGLE:
        data, problem = header_config(probe_weights(dit.path))
        if problem:
            raise CheckpointError(problem, "the file is damaged; download it again")
        return Configs(_single_transformer(data, dit), data.get("vae") or {}, "original",
                       SchedulerRule.from_original(data.get("scheduler") or {}))
    root = dit.path.parent.parent
    index = _json(root / "model_index.json")
    version = dit.variant.split("-")[1] if "-" in dit.variant else ""
    causal = index.get("_class_name") == "LTXConditionPipeline" or keyframe_era(version)
    transformer = LTXTransformerConfig.from_diffusers(
        _json(dit.path.parent / "config.json"), causal_temporal_positioning=causal)
    vae = _part(model_set, VAE)
    schedule = _json(root / "scheduler" / "scheduler_config.json", required=False)
    return Configs(transformer, _json(vae.path.parent / "config.json"), DIFFUSERS,
                   SchedulerRule.from_diffusers(schedule) if schedule else SchedulerRule())


def _single_transformer(data: Mapping[str, Any], dit: Component) -> LTXTransformerConfig:
    """From the header; a file without one gets the published configuration of its size."""
    if data.get("transformer"):
        return LTXTransformerConfig.from_original(data["transformer"])
    log.warning("%s has no header config; using the published %s configuration", dit.path,
                dit.variant)
    config = published("ltx-13b" if dit.variant.startswith("13b") else "ltx-2b")
    version = dit.variant.split("-")[1] if "-" in dit.variant else ""
    return replace(config, causal_temporal_positioning=keyframe_era(version))


def keyframe_era(version: str) -> bool:
    """Whether a release ("0.9.5", "0.9.10" …) came with keyframe conditioning and its causal
    token times (0.9.5 and later); compared as numbers, not as text."""
    try:
        return tuple(int(part) for part in version.split(".")) >= (0, 9, 5)
    except ValueError:
        return False


def load_transformer(model_set: ModelSet, config: LTXTransformerConfig, device: torch.device,
                     dtype: torch.dtype, cancel: CancelToken = NEVER) -> LTXTransformer:
    """The transformer of a set on ``device`` in ``dtype``, streamed tensor by tensor."""
    dit = _part(model_set, DIT)
    weights = probe_weights(dit.path)
    keys = [k for k in weights.tensors() if not k.startswith(VAE_PREFIX)]
    mapping = {file_key: own for own, file_key in own_transformer_state({k: k for k in keys})
               .items()}  # fmt: skip
    weights = _only(weights, set(mapping))
    model = load_module(lambda: LTXTransformer(config), weights, mapping, device=device,
                        dtype=dtype, what="LTX-Video transformer", cancel=cancel)  # fmt: skip
    return model.requires_grad_(False)


def load_vae(model_set: ModelSet, configs: Configs, device: torch.device,
             cancel: CancelToken = NEVER) -> LTXVideoVAE:
    """The VAE of a set in float32 on ``device`` (a single file's ``vae.`` keys, or
    ``vae/``)."""
    part = _part(model_set, VAE)
    weights = probe_weights(part.path)
    keys = [k for k in weights.tensors() if part.layout != SINGLE or k.startswith(VAE_PREFIX)]
    mapping = {file_key: own for own, file_key in own_vae_state({k: k for k in keys}).items()}
    weights = _only(weights, set(mapping))
    if configs.vae_layout == DIFFUSERS:
        config = config_from_diffusers(configs.vae)
    elif configs.vae:
        config = config_from_original(configs.vae)
    else:  # a single file without a header config: the published VAE its shapes are
        shapes = weights.shapes()
        config = published_for({own: shapes[key] for key, own in mapping.items()})
    model = load_module(lambda: LTXVideoVAE(config), weights, mapping, device=device,
                        dtype=torch.float32, what="LTX-Video VAE", cancel=cancel)  # fmt: skip
    return model.requires_grad_(False)


def load_text(model_set: ModelSet, device: torch.device, dtype: torch.dtype,
              cancel: CancelToken = NEVER) -> LTXTextEncoder:
    """T5 from its folder, or from one file with the set's tokenizer folder."""
    t5 = _part(model_set, TEXT_ENCODER)
    if t5.layout == HF:
        model, tokenizer = load_t5_folder(t5.path, device, dtype, cancel)
    else:
        model, tokenizer = load_t5_file(t5.path, _part(model_set, TOKENIZER).path, device,
                                        dtype, cancel)  # fmt: skip
    return LTXTextEncoder(model, tokenizer)


def _only(weights: WeightFiles, keys: set[str]) -> WeightFiles:
    """``weights`` cut down to ``keys`` (a single file's other part is not read)."""
    return replace(weights, headers=tuple(
        replace(h, tensors={k: v for k, v in h.tensors.items() if k in keys})
        for h in weights.headers))  # fmt: skip


def _json(path: Path, required: bool = True) -> dict[str, Any]:
    data = read_small_json(path) if path.is_file() else None
    if isinstance(data, dict):
        return data
    if required:
        raise CheckpointError(f"{path} is missing or not a readable JSON object", _FIX)
    return {}


def _part(model_set: ModelSet, role: str) -> Component:
    component = model_set.component(role)
    if component is None:
        raise CheckpointError(f"the LTX-Video set in {model_set.id} has no {role}", _FIX)
    return component
