"""Say what a probed Wan file is — part, variant, layout, sizes — from key names and shapes.

Used by the registry on headers only (no tensor data): the DiT's variant from
``patch_embedding.weight`` [dim, in_dim, 1, 2, 2] and its block count, the VAE's from its latent
channels (``conv2.weight`` [z, z, 1, 1, 1]), the text encoder's from its embedding
(docs/families/wan.md §1).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from studio.errors import CheckpointError
from studio.models.family import Component
from studio.models.hf_folder import folder_problem
from studio.models.wan.comfy import without_embedded_tokenizer
from studio.models.wan.dit_config import CLIP_WIDTH, dit_config
from studio.models.wan.keys import (
    DIT,
    IMAGE_ENCODER,
    TEXT_ENCODER,
    TOKENIZER,
    VAE,
    identify_layout,
    key_map,
)
from studio.models.wan.presets import UMT5_XXL_SIZES, VAE_VARIANTS, variant_for
from studio.models.weight_files import WeightFiles

#: The name scans and sets know the family by.
FAMILY_NAME = "wan"
#: Floating-point safetensors dtypes (fp8 included: loading casts them to the compute dtype).
FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64", "F8_E4M3", "F8_E5M2"})
#: Files that make a folder a tokenizer folder.
TOKENIZER_FILES = ("tokenizer.json", "spiece.model", "tokenizer_config.json")
#: The files a tokenizer is read from (a ``tokenizer_config.json`` alone loads nothing).
VOCABULARY_FILES = ("tokenizer.json", "spiece.model")

_DIT_BLOCK = re.compile(r"^blocks\.(\d+)\.modulation$")
_T5_BLOCK = re.compile(r"^encoder\.block\.(\d+)\.layer\.0\.layer_norm\.weight$")


def describe_weights(weights: WeightFiles) -> Component | None:
    """The Wan part these files hold, or None when they are not a Wan DiT, VAE or UMT5 encoder."""
    weights = without_embedded_tokenizer(weights)
    tensors = weights.tensors()
    layout = identify_layout(tensors)
    if layout is None:
        return None
    mapping = key_map(layout, tensors)
    shapes = {mapping[key]: info.shape for key, info in tensors.items() if key in mapping}
    path = weights.index or weights.paths[0]
    config = path.parent / "config.json"
    common = dict(family=FAMILY_NAME, path=path, files=weights.paths, layout=layout.label,
                  dtype=weights.dominant_dtype(), size=weights.size,
                  problem=_dtype_problem(weights))
    if layout.role == DIT:
        patch, text = shapes.get("patch_embedding.weight"), shapes.get("text_embedding.0.weight")
        if not _dims(patch, 5) or not _dims(text, 2):
            return None
        layers = sum(1 for key in shapes if _DIT_BLOCK.match(key))
        image = "flf2v" if "img_emb.emb_pos" in shapes else (
            "i2v" if any(key.startswith("img_emb.") for key in shapes) else "")
        variant = variant_for(patch[1], patch[0], layers, image,
                              f"{path.parent.name}/{path.name}")
        return Component(role=DIT, variant=variant.name if variant else f"{patch[1]}-channel",
                         channels=patch[1], context_dim=text[1], config=config,
                         **{**common, "problem": common["problem"] or _config_problem(shapes,
                                                                                      weights)})
    if layout.role == VAE:
        conv2 = shapes.get("conv2.weight")
        if not _dims(conv2, 5):
            return None
        name = VAE_VARIANTS.get(conv2[0], (f"{conv2[0]}-channel-vae", ""))[0]
        return Component(role=VAE, variant=name, channels=conv2[0], **common)
    if layout.role == IMAGE_ENCODER:
        return _image_encoder(shapes, common)
    embedding = shapes.get("shared.weight") or shapes.get("encoder.embed_tokens.weight")
    if not _dims(embedding, 2):
        return None
    sizes = {"vocab_size": embedding[0], "d_model": embedding[1],
             "num_layers": sum(1 for key in shapes if _T5_BLOCK.match(key))}  # fmt: skip
    xxl = all(UMT5_XXL_SIZES[name] == value for name, value in sizes.items())
    return Component(role=TEXT_ENCODER, variant="umt5-xxl" if xxl else "umt5-custom",
                     channels=embedding[1], config=config, **common)


def _image_encoder(shapes: dict[str, tuple[int, ...]], common: dict) -> Component | None:
    """The CLIP image encoder (Wan's open-clip file or a transformers one), by its width."""
    patch = shapes.get("visual.patch_embedding.weight") or shapes.get(
        "vision_model.embeddings.patch_embedding.weight")
    if not _dims(patch, 4):
        return None
    variant = "clip-vit-h-14" if patch[0] == CLIP_WIDTH else "clip-custom"
    return Component(role=IMAGE_ENCODER, variant=variant, channels=patch[0], **common)


def _dtype_problem(weights: WeightFiles) -> str:
    """Why tensors of these dtypes cannot be a Wan part's weights ("" when they can): integer
    tensors, or fp8 scales the loader would refuse (missing, misplaced, not one number)."""
    odd = sorted({info.dtype for info in weights.tensors().values()} - FLOAT_DTYPES)
    if odd:
        return (f"{weights.label} holds tensors of dtype {', '.join(odd)}; a Wan part's weights "
                "are floating point")
    problems = weights.fp8_problems()
    return "; ".join(problems[:3]) + (f" and {len(problems) - 3} more" if len(problems) > 3
                                      else "")


def _config_problem(shapes: dict[str, tuple[int, ...]], weights: WeightFiles) -> str:
    """Why the loader could not build this DiT's configuration ("" when it can), so that a
    scan lists as usable exactly what loads."""
    try:
        dit_config(shapes, weights.paths[0].parent, weights.label)
    except CheckpointError as exc:
        return exc.message
    return ""


def _dims(shape: Sequence[int] | None, ndim: int) -> bool:
    return shape is not None and len(shape) == ndim


def describe_tokenizer(folder: Path, names: Sequence[str]) -> Component:
    """A tokenizer folder (``google/umt5-xxl`` or diffusers ``tokenizer/``)."""
    files = tuple(folder / name for name in names)
    size = 0
    for path in files:
        try:
            size += path.stat().st_size
        except OSError:
            continue
    variant = "umt5" if "umt5" in str(folder).lower() else ""
    problem = "" if any(name in VOCABULARY_FILES for name in names) else (
        f"{folder} is not a tokenizer folder: it holds neither tokenizer.json nor spiece.model")
    return Component(family=FAMILY_NAME, role=TOKENIZER, path=folder, files=files, layout="hf",
                     variant=variant, dtype="-", size=size,
                     problem=folder_problem(folder) or problem)
