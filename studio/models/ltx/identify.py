"""Say which LTX-Video part a probed file or folder is, from key names, shapes and configs.

Read from headers and small JSON files only (no tensor data), docs/families/ltx.md §1:

* a **single file** (``ltx-video-2b-v0.9.1.safetensors``, ``ltxv-13b-0.9.8-distilled.safetensors``)
  holds the transformer under ``model.diffusion_model.`` and the VAE under ``vae.``, with the
  header metadata ``config`` (JSON: ``transformer``, ``vae``, ``scheduler``, and
  ``allowed_inference_steps`` for distilled models);
* a **diffusers folder** (``model_index.json`` naming an LTX pipeline) holds ``transformer/``
  (``proj_in``, ``time_embed``, ``norm_q``), ``vae/`` (``latents_mean``), ``text_encoder/``,
  ``tokenizer/`` and ``scheduler/``;
* **T5-v1.1-XXL** as a transformers folder (``config.json`` ``model_type`` "t5"), or a single
  ``t5xxl_*.safetensors`` beside a tokenizer folder.

T5 files and tokenizer folders are LTX's only in an LTX context (:func:`ltx_context`): a
diffusers folder whose ``model_index.json`` names an LTX pipeline, or a folder holding an LTX
single file; elsewhere they stay Open-Sora's or Wan's.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.media.json_file import parse_json_text, read_small_json
from studio.models.family import DIT, TEXT_ENCODER, TOKENIZER, VAE, Component
from studio.models.hf_folder import folder_problem
from studio.models.weight_files import WeightFiles

FAMILY_NAME = "ltx"
#: Single-file prefixes of the transformer and the VAE.
DIT_PREFIX, VAE_PREFIX = "model.diffusion_model.", "vae."
#: Layout labels.
SINGLE, DIFFUSERS, ORIGINAL, HF = "single-file", "diffusers", "original", "hf"
#: Largest header ``config`` accepted (the published ones are a few kB) and its deepest nesting.
MAX_CONFIG_CHARS, MAX_CONFIG_DEPTH = 1 << 20, 8
_ORIGINAL_DIT = ("patchify_proj.weight", "adaln_single.linear.weight",
                 "caption_projection.linear_1.weight")
_DIFFUSERS_DIT = ("proj_in.weight", "time_embed.linear.weight",
                  "caption_projection.linear_1.weight", "transformer_blocks.0.attn1.norm_q.weight")
_VAE_KEYS = ("encoder.conv_in.conv.weight", "decoder.conv_in.conv.weight",
             "encoder.conv_out.conv.weight")
_VAE_STATS = ("per_channel_statistics.mean-of-means", "latents_mean")
TOKENIZER_FILES = ("spiece.model", "tokenizer.json", "tokenizer_config.json")
_VERSION = re.compile(r"(?<![\d.])0\.9(?:\.(\d+))?(?![\d])")
_LTX_NAME = re.compile(r"^ltx", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Sniffed:
    """What the headers tell about an LTX DiT: size, version, variant and the header config.

    Attributes:
        size: "2b", "13b" or "<dim>d" for another width.
        version: "0.9.1" … ("" when nothing tells).
        distilled: a distilled checkpoint (name or ``allowed_inference_steps``).
        config: the header ``config`` JSON (empty when absent).
        vae_version: the VAE's version from its keys ("" without VAE keys).
        problem: why the header cannot be used ("" when it can).
    """

    size: str
    version: str
    distilled: bool
    config: Mapping[str, Any]
    vae_version: str = ""
    problem: str = ""

    @property
    def variant(self) -> str:
        parts = [self.size, self.version or self.vae_version or "0.9"]
        return "-".join(parts + (["distilled"] if self.distilled else []))


def header_config(weights: WeightFiles) -> tuple[dict[str, Any], str]:
    """The header ``config`` JSON of a single file and why it is refused ("" when it is not);
    an absent config is ``({}, "")``."""
    text = weights.headers[0].metadata.get("config")
    if text is None:
        return {}, ""
    if len(text) > MAX_CONFIG_CHARS:
        return {}, f"{weights.label}: header config is {len(text)} characters, not a model config"
    try:
        data = parse_json_text(text, max_depth=MAX_CONFIG_DEPTH)
    except ValueError as exc:
        return {}, f"{weights.label}: header config is not valid JSON ({exc})"
    if not isinstance(data, dict) or not all(isinstance(data.get(part, {}), dict)
                                             for part in ("transformer", "vae", "scheduler")):
        return {}, f"{weights.label}: header config holds no transformer / vae / scheduler objects"
    return data, ""


def file_version(name: str) -> str:
    """"0.9.1" from ``ltx-video-2b-v0.9.1.safetensors`` ("0.9" for ``ltxv-2b-0.9``; "" none)."""
    match = _VERSION.search(name)
    if match is None:
        return ""
    return f"0.9.{match.group(1)}" if match.group(1) else "0.9"


def vae_version(shapes: Mapping[str, tuple[int, ...]], prefix: str = "") -> str:
    """0.9.0 / 0.9.1 / 0.9.5 from the VAE's keys: 0.9.5's encoder ends 16× wider than it starts
    (128 → 2048; 0.9.0/0.9.1: 128 → 512), 0.9.1 adds the decoder's timestep embedder."""
    conv_in, conv_out = shapes.get(prefix + _VAE_KEYS[0]), shapes.get(prefix + _VAE_KEYS[2])
    if conv_in and conv_out and len(conv_out) > 1 and conv_out[1] >= 16 * conv_in[0]:
        return "0.9.5"
    if any(k.startswith(prefix + "decoder.last_time_embedder.") for k in shapes):
        return "0.9.1"
    return "0.9.0"


def _size(width: int) -> str:
    return {2048: "2b", 4096: "13b"}.get(width, f"{width}d")


def sniff(weights: WeightFiles, prefix: str, dit_width: int, name: str) -> Sniffed:
    """The :class:`Sniffed` facts of a DiT's files (``prefix``: its key prefix)."""
    config, problem = header_config(weights)
    shapes = weights.shapes()
    has_vae = any(k.startswith(VAE_PREFIX) for k in shapes) and prefix == DIT_PREFIX
    distilled = "distill" in name.lower() or "allowed_inference_steps" in config
    return Sniffed(size=_size(dit_width), version=file_version(name), distilled=distilled,
                   config=config, problem=problem,
                   vae_version=vae_version(shapes, VAE_PREFIX) if has_vae else "")  # fmt: skip


def describe_weights(weights: WeightFiles) -> Component | None:
    """The LTX part these files hold (None: none of LTX-Video's)."""
    path = weights.index or weights.paths[0]
    shapes = weights.shapes()
    common = dict(family=FAMILY_NAME, path=path, files=weights.paths,
                  dtype=weights.dominant_dtype(), size=weights.size)  # fmt: skip
    for prefix, keys, layout in ((DIT_PREFIX, _ORIGINAL_DIT, SINGLE), ("", _ORIGINAL_DIT, ORIGINAL),
                                 ("", _DIFFUSERS_DIT, DIFFUSERS)):  # fmt: skip
        if all(prefix + key in shapes for key in keys):
            return _dit(weights, shapes, prefix, layout, common)
    if all(k in shapes for k in _VAE_KEYS) and any(k in shapes for k in _VAE_STATS):
        layout = DIFFUSERS if "latents_mean" in shapes else ORIGINAL
        config = read_small_json(path.parent / "config.json") if layout == DIFFUSERS else None
        version = diffusers_vae_version(config) if isinstance(config, dict) \
            else vae_version(shapes)
        return Component(role=VAE, variant=version, layout=layout,
                         channels=_vae_channels(shapes), config=_beside(path), **common)
    if ltx_context(path.parent):
        return _text_weights(weights, shapes, common)
    return None


def _dit(weights: WeightFiles, shapes: Mapping[str, tuple[int, ...]], prefix: str, layout: str,
         common: dict) -> Component:
    """The transformer (and, in a single file, the VAE beside it): size, version, variant."""
    path: Path = common["path"]
    proj = shapes[prefix + ("proj_in.weight" if layout == DIFFUSERS else "patchify_proj.weight")]
    name = path.name if layout != DIFFUSERS else f"{path.parent.parent.name}/{path.name}"
    found = sniff(weights, prefix, proj[0], name)
    if layout == DIFFUSERS:
        found = _diffusers_version(found, path.parent.parent)
    context = shapes[prefix + "caption_projection.linear_1.weight"][1]
    return Component(role=DIT, variant=found.variant, layout=layout, channels=proj[1],
                     context_dim=context, problem=found.problem,
                     config=_beside(path) if layout == DIFFUSERS else None, **common)


def _diffusers_version(found: Sniffed, root: Path) -> Sniffed:
    """A diffusers DiT's version: from the folder name, else from the VAE config beside it."""
    from dataclasses import replace

    version = found.version or file_version(root.name)
    if not version:
        vae = read_small_json(root / "vae" / "config.json")
        version = diffusers_vae_version(vae) if isinstance(vae, dict) else ""
    return replace(found, version=version)


def diffusers_vae_version(config: Mapping[str, Any]) -> str:
    """0.9.0 / 0.9.1 / 0.9.5 from a diffusers ``AutoencoderKLLTXVideo`` config."""
    widths = config.get("block_out_channels") or ()
    if len(widths) >= 2 and isinstance(widths[-1], int) and isinstance(widths[0], int) \
            and widths[-1] >= 16 * widths[0]:
        return "0.9.5"
    return "0.9.1" if config.get("timestep_conditioning") else "0.9.0"


def _vae_channels(shapes: Mapping[str, tuple[int, ...]]) -> int:
    stats = shapes.get("latents_mean") or shapes.get("per_channel_statistics.mean-of-means")
    return int(stats[0]) if stats else 0


def _beside(path: Path) -> Path | None:
    config = path.parent / "config.json"
    return config if config.is_file() else None


def _text_weights(weights: WeightFiles, shapes: Mapping[str, tuple[int, ...]],
                  common: dict) -> Component | None:
    """T5 weights in an LTX context: the folder they sit in when it is a transformers T5
    folder, else a single T5 file (``t5xxl_fp16.safetensors``)."""
    path: Path = common["path"]
    folder = describe_folder(path.parent)
    if folder is not None and folder.role == TEXT_ENCODER:
        return folder
    embedding = shapes.get("shared.weight") or shapes.get("encoder.embed_tokens.weight")
    if embedding is None or not any(k.startswith("encoder.block.0.") for k in shapes):
        return None
    return Component(role=TEXT_ENCODER, variant=t5_variant(embedding[1]), layout=SINGLE,
                     channels=int(embedding[1]), **common)


def t5_variant(width: int) -> str:
    return "t5-v1.1-xxl" if width == 4096 else f"t5-{width}"


def ltx_context(folder: Path) -> bool:
    """Whether T5 / tokenizer parts in ``folder`` belong to an LTX set: the folder or the one
    above it (a diffusers sub-folder's pipeline, a T5 folder beside a single file) is an LTX
    diffusers pipeline or holds an LTX single file."""
    return _is_ltx_root(folder) or _is_ltx_root(folder.parent)


def _is_ltx_root(root: Path) -> bool:
    index = read_small_json(root / "model_index.json") \
        if (root / "model_index.json").is_file() else None
    if isinstance(index, dict) and "LTX" in str(index.get("_class_name", "")):
        return True
    try:
        names = os.listdir(root)
    except OSError:
        return False
    return any(_LTX_NAME.match(n) and n.endswith(".safetensors") for n in names)


def set_root(directory: Path) -> Path | None:
    """A T5 or tokenizer folder beside an LTX single file joins that file's folder."""
    if _is_ltx_root(directory) or not _is_ltx_root(directory.parent):
        return None
    part = describe_folder(directory)
    return directory.parent if part is not None else None


def describe_folder(folder: Path, names: Sequence[str] | None = None) -> Component | None:
    """A T5 encoder folder (``config.json`` ``model_type`` "t5") or a tokenizer folder, as a
    whole, in an LTX context; None elsewhere."""
    if not ltx_context(folder):
        return None
    names = sorted(os.listdir(folder)) if names is None else list(names)
    files = tuple(sorted(folder / n for n in names if (folder / n).is_file()))
    common = dict(family=FAMILY_NAME, path=folder, files=files, layout=HF, dtype="-",
                  size=sum(p.stat().st_size for p in files), problem=folder_problem(folder))
    data = read_small_json(folder / "config.json") if "config.json" in names else None
    if isinstance(data, dict) and data.get("model_type") == "t5":
        width = int(data.get("d_model") or 0)
        return Component(role=TEXT_ENCODER, variant=t5_variant(width), channels=width,
                         config=folder / "config.json", **common)
    if data is None and any(n in TOKENIZER_FILES for n in names):
        return Component(role=TOKENIZER, variant="t5", **common)
    return None
