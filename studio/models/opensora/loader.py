"""Load an Open-Sora 2.0 set: a registry :class:`ModelSet` → the engine's :class:`LoadedModel`.

The MMDiT's tensors are read (fused q/k/v split, a single-file prefix dropped), its config read
from their shapes, and it runs in the requested dtype with its embedders, modulations and
qk-norms kept float32 (``OpenSoraMMDiT.to_dtype``); T5-XXL and CLIP-L load from their folders
in the requested dtype; the HunyuanVideo VAE runs in float32.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from studio.engine.cancel import NEVER, CancelToken
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
    ResolutionShift,
)
from studio.errors import CheckpointError
from studio.models.family import ModelSet, check_loadable
from studio.models.loading import read_tensors
from studio.models.opensora import conditioning
from studio.models.opensora.hunyuan_vae import HunyuanVAE, load_hunyuan_vae
from studio.models.opensora.identify import CLIP, FAMILY_NAME, strip_prefix
from studio.models.opensora.memory import loaded_memory
from studio.models.opensora.mmdit import OpenSoraMMDiT, unfuse_qkv
from studio.models.opensora.mmdit_config import MMDiTConfig, config_from_state_dict_shapes
from studio.models.opensora.packing import PackedDenoiser
from studio.models.opensora.presets import (
    DEFAULTS,
    GEOMETRY,
    PREVIEW,
    PROMPT_EXAMPLES,
    TITLE,
    VARIANT,
)
from studio.models.opensora.text import OpenSoraTextEncoder, load_opensora_text
from studio.models.weight_files import probe_weights

log = logging.getLogger(__name__)
_FIX = "rescan the folder and add the missing or matching files (see `studio models scan`)"


def load_opensora_model(model_set: ModelSet, device: torch.device | str, dtype: torch.dtype,
                        cancel: CancelToken = NEVER) -> LoadedModel:
    """Load a usable set.

    Raises:
        CheckpointError: the set is incomplete or mismatched, naming the file.
    """
    check_loadable(model_set, FAMILY_NAME, "Open-Sora", _FIX)
    device = torch.device(device)
    text = load_opensora_text(_path(model_set, TEXT_ENCODER), _path(model_set, CLIP), device,
                              dtype, cancel)  # fmt: skip
    mmdit = load_mmdit(model_set, device, dtype, cancel)
    _check_text(mmdit.config, text, model_set)
    vae = _load_vae(model_set, device, cancel)
    log.info("loaded %s from %s", TITLE, model_set.id)
    return assemble_opensora_model(
        OpenSoraParts(mmdit, vae, text), model_id=model_set.id, name=model_set.name or TITLE,
        device=device, dtype=dtype,
    )


@dataclass(frozen=True, slots=True)
class OpenSoraParts:
    """The loaded modules of one Open-Sora 2.0 model (any sizes, loaded or random)."""

    mmdit: OpenSoraMMDiT
    vae: HunyuanVAE
    text: OpenSoraTextEncoder


def assemble_opensora_model(parts: OpenSoraParts, *, model_id: str, name: str,
                            device: torch.device, dtype: torch.dtype, variant: str = VARIANT,
                            defaults: FamilyDefaults = DEFAULTS) -> LoadedModel:  # fmt: skip
    """The engine's :class:`LoadedModel` around loaded modules: the MMDiT behind
    :class:`PackedDenoiser` (reading the encoder's T5 rows), Open-Sora's conditioning, guidance
    and shift rules, the memory forecast of the modules as held."""
    mmdit, vae, text = parts.mmdit, parts.vae, parts.text
    modules = ModelModules(
        parts={TEXT_ENCODER: text.t5, DIT: mmdit, VAE: vae},
        blocks={DIT: "double_blocks,single_blocks"},
        attention=AttentionShape(mmdit.config.num_heads, mmdit.config.head_dim),
    )
    memory = loaded_memory(mmdit, vae, text.t5, text.clip, text_len=text.t5_len)
    return LoadedModel(
        id=model_id, name=name, family=FAMILY_NAME, variant=variant, geometry=GEOMETRY,
        defaults=defaults, preview=PREVIEW, text_encoder=text,
        denoiser=PackedDenoiser(mmdit, GEOMETRY.channels, text.t5_len), vae=vae,
        device=device, dtype=dtype, modules=modules, memory=memory,
        capabilities=Capabilities(samplers=("euler",), conditioning=(FIRST_FRAME, KEYFRAME),
                                  shift_rule=ResolutionShift()),
        image_channels=conditioning.image_channels(vae, GEOMETRY, device),
        guidance_rule=conditioning.guidance_rule, finish_latent=conditioning.finish_latent(),
        image_required=False, prompt_examples=PROMPT_EXAMPLES,
    )  # fmt: skip


def load_mmdit(model_set: ModelSet, device: torch.device, dtype: torch.dtype,
               cancel: CancelToken = NEVER) -> OpenSoraMMDiT:
    """The MMDiT of a set, on ``device`` (projections in ``dtype``)."""
    weights = probe_weights(_path(model_set, DIT))
    prefix = strip_prefix(weights.tensors())
    state = read_tensors(weights, [k for k in weights.tensors() if k.startswith(prefix)], cancel)
    state = {key[len(prefix):]: value for key, value in state.items()}
    hidden = state["img_in.weight"].shape[0]
    state = unfuse_qkv(state, hidden)
    config = config_from_state_dict_shapes(state, axes_dim=_axes(state))
    with torch.device("meta"):
        model = OpenSoraMMDiT(config)
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{weights.label} does not match the Open-Sora 2.0 MMDiT ({exc})",
                              _FIX) from exc  # fmt: skip
    return model.to_dtype(dtype).to(device).eval().requires_grad_(False)


def _axes(state: dict[str, torch.Tensor]) -> tuple[int, ...] | None:
    """The RoPE split (t, h, w): the published one for 128-wide heads; otherwise (a small test
    model) the head split as the published one is, 1 : 3.5 : 3.5, in even sizes."""
    head = state["double_blocks.0.img_attn.norm.query_norm.scale"].shape[0]
    if head == 128:
        return None
    t = max(2, (head // 8) // 2 * 2)
    h = (head - t) // 2 // 2 * 2
    return (head - 2 * h, h, h)


def _load_vae(model_set: ModelSet, device: torch.device, cancel: CancelToken) -> HunyuanVAE:
    weights = probe_weights(_path(model_set, VAE))
    state = read_tensors(weights, weights.tensors(), cancel)
    return load_hunyuan_vae(state, dtype=torch.float32).to(device).eval().requires_grad_(False)


def _check_text(config: MMDiTConfig, text: OpenSoraTextEncoder, model_set: ModelSet) -> None:
    if text.width != config.context_in_dim or text.pooled_width != config.vec_in_dim:
        raise CheckpointError(
            f"the text encoders of {model_set.id} give T5 {text.width} / CLIP "
            f"{text.pooled_width} features but the MMDiT reads {config.context_in_dim} / "
            f"{config.vec_in_dim}", "use google/t5-v1_1-xxl and openai/clip-vit-large-patch14")


def _path(model_set: ModelSet, role: str) -> Path:
    component = model_set.component(role)
    assert component is not None, "checked by check_loadable"
    return component.path
