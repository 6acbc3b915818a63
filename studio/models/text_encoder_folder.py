"""Reading a T5 or CLIP text encoder folder (transformers layout), no code run: Open-Sora 2.0's
T5-XXL and CLIP-L, LTX-Video's T5-XXL.

A folder holds ``config.json``, the weights as ``model.safetensors`` (or an index and its
shards) and the tokenizer files, as ``google/t5-v1_1-xxl`` and ``openai/clip-vit-large-patch14``
are published. The folder is first checked by :mod:`studio.models.hf_folder` (no custom code,
only regular files); the config's ``model_type`` must name the expected model; only the
encoder's tensors are kept from the files (a full T5 also holds its decoder, the CLIP folder the
vision tower), renamed to the module's names, and loaded tensor by tensor onto the device
(:func:`studio.models.loading.load_module`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import CLIPConfig, CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

from studio.engine.cancel import NEVER, CancelToken
from studio.errors import CheckpointError
from studio.media.json_file import read_small_json
from studio.models import hf_folder
from studio.models.loading import load_module
from studio.models.weight_files import WeightFiles, probe_weights

#: Weight files looked for, in this order (an index names its shards).
WEIGHT_NAMES = ("model.safetensors.index.json", "model.safetensors")


@dataclass(frozen=True)
class EncoderKind:
    """What one folder must hold and how its tensors map onto the module.

    Attributes:
        name: how messages name the part.
        model_types: accepted ``config.json`` ``model_type`` values.
        hint: what to do when the folder is refused.
        config: ``config.json`` data → the encoder's configuration.
        build: configuration → the module.
        module_key: file key → module key, or None for a tensor that is not the encoder's.
        tied: module key → module key sharing its tensor.
        fp16_float32: suffix of module keys kept in float32 when loading in float16.
    """

    name: str
    model_types: tuple[str, ...]
    hint: str
    config: Callable[[dict[str, Any]], Any]
    build: Callable[[Any], nn.Module]
    module_key: Callable[[str], str | None]
    tied: dict[str, str]
    fp16_float32: str | None = None


def _t5_key(key: str) -> str | None:
    """T5 encoder tensors keep their names; the decoder and ``lm_head`` are not read."""
    return key if key == "shared.weight" or key.startswith("encoder.") else None


def _clip_key(key: str) -> str | None:
    """Older files (and a full CLIPModel) name text tensors ``text_model.…``; transformers 5
    names the text model's own tensors without that prefix. ``position_ids`` is an ``arange``
    buffer older files carry, not a weight."""
    if key.endswith("position_ids"):
        return None
    if key.startswith("text_model."):
        return key[len("text_model.") :]
    return key if key.startswith(("embeddings.", "encoder.", "final_layer_norm.")) else None


def _clip_config(data: dict[str, Any]) -> CLIPTextConfig:
    """The text half of a full CLIP config, or a text-only config as it is."""
    if data.get("model_type") == "clip":
        return CLIPConfig.from_dict(data).text_config
    return CLIPTextConfig.from_dict(data)


T5_KIND = EncoderKind(
    name="T5 text encoder", model_types=("t5",),
    hint="use the google/t5-v1_1-xxl folder published with Open-Sora 2.0 (config.json, "
         "model.safetensors, tokenizer files)",
    config=T5Config.from_dict, build=T5EncoderModel, module_key=_t5_key,
    tied={"encoder.embed_tokens.weight": "shared.weight"},
    # transformers keeps T5's feed-forward output projection in float32 under float16
    # (its activations overflow float16 otherwise); the loader does the same.
    fp16_float32=".DenseReluDense.wo.weight",
)  # fmt: skip
CLIP_KIND = EncoderKind(
    name="CLIP text encoder", model_types=("clip", "clip_text_model"),
    hint="use the openai/clip-vit-large-patch14 folder published with Open-Sora 2.0 "
         "(config.json, model.safetensors, tokenizer files)",
    config=_clip_config, build=CLIPTextModel, module_key=_clip_key, tied={},
)  # fmt: skip


def read_config(folder: Path, kind: EncoderKind) -> Any:
    """The encoder configuration from ``folder/config.json``.

    Raises:
        CheckpointError: no readable ``config.json``, or one naming another kind of model.
    """
    data = read_small_json(folder / "config.json")
    if not isinstance(data, dict):
        raise CheckpointError(f"{folder} has no readable config.json for the {kind.name}",
                              kind.hint)  # fmt: skip
    model_type = data.get("model_type")
    if model_type not in kind.model_types:
        raise CheckpointError(
            f"{folder} holds a {model_type!r} model (config.json), not the {kind.name}", kind.hint
        )
    try:
        return kind.config(data)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{folder}/config.json is not a valid {kind.name} configuration "
                              f"({exc})", kind.hint) from exc  # fmt: skip


def encoder_weights(folder: Path, kind: EncoderKind) -> WeightFiles:
    """The folder's safetensors, cut down to the encoder's tensors under the module's names.

    Raises:
        CheckpointError: no safetensors weights, or none of them the encoder's.
    """
    path = next((folder / name for name in WEIGHT_NAMES if (folder / name).is_file()), None)
    if path is None:
        pickles = sorted(p.name for p in folder.glob("*.bin"))
        found = f" (it holds {', '.join(pickles[:3])}: pickles are not read)" if pickles else ""
        raise CheckpointError(f"{folder} has no model.safetensors or "
                              f"model.safetensors.index.json{found}", kind.hint)  # fmt: skip
    weights = probe_weights(path)
    headers = tuple(replace(header, tensors={key: info for key, info in header.tensors.items()
                                             if kind.module_key(key) is not None})
                    for header in weights.headers)  # fmt: skip
    if not any(header.tensors for header in headers):
        raise CheckpointError(f"{weights.label} in {folder} holds no {kind.name} tensors",
                              kind.hint)  # fmt: skip
    return replace(weights, headers=headers)


def load_tokenizer(folder: Path, kind: EncoderKind) -> Any:
    """The folder's tokenizer (local files, never its code), errors naming the folder."""
    try:
        return hf_folder.load_tokenizer(folder)
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - tokenizer back ends raise many types
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{folder}: the tokenizer cannot be loaded ({first})",
                              kind.hint) from exc  # fmt: skip


def load_encoder(
    folder: Path,
    kind: EncoderKind,
    *,
    device: torch.device | str,
    dtype: torch.dtype,
    cancel: CancelToken = NEVER,
) -> tuple[nn.Module, Any]:
    """The encoder (eval mode, on ``device`` in ``dtype``) and its tokenizer from ``folder``.

    Raises:
        CheckpointError: naming the folder when it is missing, runs code, lacks a part, holds
            another model, or its tokenizer knows more tokens than the encoder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a folder (the {kind.name} folder)", kind.hint)
    hf_folder.check_folder(folder)
    config = read_config(folder, kind)
    weights = encoder_weights(folder, kind)
    tokenizer = load_tokenizer(folder, kind)
    if len(tokenizer) > config.vocab_size:
        raise CheckpointError(f"the tokenizer in {folder} has {len(tokenizer)} tokens but the "
                              f"{kind.name} knows {config.vocab_size}", kind.hint)  # fmt: skip
    mapping = {key: kind.module_key(key) or key for key in weights.tensors()}
    model = load_module(lambda: kind.build(config), weights, mapping, device=device, dtype=dtype,
                        tied=kind.tied, keep_float32=_float32_keys(kind, dtype), what=kind.name,
                        cancel=cancel)  # fmt: skip
    return model.eval().requires_grad_(False), tokenizer


def _float32_keys(kind: EncoderKind, dtype: torch.dtype) -> Callable[[str], bool] | None:
    """Which module keys stay float32: the kind's float16 exceptions, only under float16."""
    suffix = kind.fp16_float32
    if dtype != torch.float16 or suffix is None:
        return None
    return lambda key: key.endswith(suffix)
