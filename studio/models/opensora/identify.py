"""Say which Open-Sora 2.0 part a probed file or folder is, from key names, shapes and configs.

Read from headers and ``config.json`` only (no tensor data): the MMDiT by ``txt_in.weight``,
``cond_in.weight`` and its first double block's attention (separate or fused q/k/v); the
HunyuanVideo VAE by its causal-conv encoder and ``post_quant_conv``; the T5 and CLIP text
encoders as whole transformers folders (``config.json`` ``model_type``). Open-Sora's Video DC-AE
files and the MMDiT made for them (128 channels in, patch 1) are recognised and refused by name
(docs/families/opensora.md §1).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from studio.media.json_file import read_small_json
from studio.models.family import DIT, TEXT_ENCODER, VAE, Component
from studio.models.hf_folder import folder_problem
from studio.models.weight_files import WeightFiles

#: The name scans and sets know the family by.
FAMILY_NAME = "opensora"
#: The CLIP-L text encoder's part name (T5-XXL is :data:`TEXT_ENCODER`).
CLIP = "clip_text"
#: Key prefixes a single-file export may wrap the MMDiT's keys in.
PREFIXES = ("model.diffusion_model.", "diffusion_model.", "model.")
#: Model types of the two text encoder folders.
T5_TYPES, CLIP_TYPES = ("t5",), ("clip", "clip_text_model")
DC_AE_PROBLEM = ("Open-Sora's Video DC-AE variant is not supported: use Open_Sora_v2.safetensors "
                 "with hunyuan_vae.safetensors")
_DIT_KEYS = ("txt_in.weight", "img_in.weight", "vector_in.in_layer.weight")
_ATTENTION = ("double_blocks.0.img_attn.q_proj.weight", "double_blocks.0.img_attn.qkv.weight")
_VAE_KEYS = ("encoder.conv_in.conv.weight", "post_quant_conv.weight",
             "decoder.conv_out.conv.weight", "encoder.down_blocks.0.resnets.0.conv1.conv.weight")
_DC_AE_NAMES = ("f32t4c128", "dc_ae")


def strip_prefix(keys: Mapping[str, object]) -> str:
    """The prefix wrapping an MMDiT's keys ("" when they are bare)."""
    for prefix in ("", *PREFIXES):
        if f"{prefix}txt_in.weight" in keys:
            return prefix
    return ""


def describe_weights(weights: WeightFiles) -> Component | None:
    """The Open-Sora part these files hold (None: not an Open-Sora MMDiT, VAE or text folder)."""
    path = weights.index or weights.paths[0]
    folder = _text_folder(path.parent)
    if folder is not None:
        return folder
    shapes = {key: info.shape for key, info in weights.tensors().items()}
    common = dict(family=FAMILY_NAME, path=path, files=weights.paths, layout="original",
                  dtype=weights.dominant_dtype(), size=weights.size)
    prefix = strip_prefix(shapes)
    if all(prefix + key in shapes for key in _DIT_KEYS) and any(
            prefix + key in shapes for key in _ATTENTION) and prefix + "cond_in.weight" in shapes:
        return _mmdit(shapes, prefix, path, common)
    if all(key in shapes for key in _VAE_KEYS):
        latent = shapes["post_quant_conv.weight"][0]
        return Component(role=VAE, variant="hunyuan-vae", channels=latent, **common)
    if any(name in path.name.lower() for name in _DC_AE_NAMES) and any(
            key.startswith(("encoder.", "decoder.")) for key in shapes):
        return Component(role=VAE, variant="video-dc-ae", problem=DC_AE_PROBLEM, **common)
    return None


def _mmdit(shapes: Mapping[str, tuple[int, ...]], prefix: str, path: Path,
           common: dict) -> Component:
    """The MMDiT: channels in (64 = 16 latent × 2×2), T5 width it reads; DC-AE's is refused."""
    in_channels = shapes[prefix + "img_in.weight"][1]
    problem = ""
    if in_channels == 128 or "dc_ae" in path.name.lower():
        problem = f"{path.name}: {DC_AE_PROBLEM}"
    return Component(role=DIT, variant="open-sora-2.0", channels=in_channels,
                     context_dim=shapes[prefix + "txt_in.weight"][1], problem=problem,
                     **{**common, "layout": "single-file" if prefix else "original"})


def _text_folder(folder: Path) -> Component | None:
    """A T5 or CLIP transformers folder (its ``config.json`` decides), else None."""
    data = read_small_json(folder / "config.json") if (folder / "config.json").is_file() else None
    if not isinstance(data, dict) or data.get("model_type") not in T5_TYPES + CLIP_TYPES:
        return None
    is_t5 = data["model_type"] in T5_TYPES
    text = data.get("text_config") if data["model_type"] == "clip" else data
    width = (data.get("d_model") if is_t5 else (text or {}).get("hidden_size")) or 0
    files = tuple(sorted(p for p in folder.iterdir() if p.is_file()))
    return Component(family=FAMILY_NAME, role=TEXT_ENCODER if is_t5 else CLIP, path=folder,
                     files=files, layout="hf", variant="t5" if is_t5 else "clip-l",
                     dtype="-", size=sum(p.stat().st_size for p in files), channels=int(width),
                     config=folder / "config.json", problem=folder_problem(folder))


def describe_folder(folder: Path) -> Component | None:
    """A text encoder folder as a whole (its tokenizer files must not be read as another
    family's tokenizer)."""
    return _text_folder(folder)
