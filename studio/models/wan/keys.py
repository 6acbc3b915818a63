"""Wan checkpoint key layouts: recognise a file's part and layout, and map it to one layout.

Published Wan weights come in several key-name layouts. Every one of them is mapped to a single
internal layout before loading:

* DiT and VAE — the original Wan names (``blocks.N.self_attn.q.weight``,
  ``decoder.middle.0.residual.0.gamma``); sources: original files, diffusers folders
  (``transformer/``, ``vae/``; rules in docs/families/wan.md §8) and single files whose keys
  carry a ``model.diffusion_model.`` prefix.
* UMT5 text encoder — the Hugging Face ``UMT5EncoderModel`` names, because that is the module
  the studio runs; Wan's own ``models_t5_umt5-xxl-enc-bf16.pth`` names are mapped to them
  (docs/families/wan.md §4.3).

Recognition uses key names only (docs/families/wan.md §1.2); the variant is judged from shapes
elsewhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from studio.models.weight_files import strip_prefix

DIT, VAE, TEXT_ENCODER, TOKENIZER = "dit", "vae", "text_encoder", "tokenizer"
#: Wan 2.1 I2V/FLF2V-14B's CLIP image encoder (its vision tower is what the studio runs).
IMAGE_ENCODER = "image_encoder"

#: Prefixes single-file repackagings put in front of the DiT's own keys.
DIT_PREFIXES = ("model.diffusion_model.",)


@dataclass(frozen=True, slots=True)
class KeyLayout:
    """What a file holds, by its key names.

    Attributes:
        role: "dit", "vae" or "text_encoder".
        layout: "original" or "diffusers" (DiT, VAE); "wan" or "hf" (text encoder).
        prefix: stripped from every key before mapping ("" or ``model.diffusion_model.``).
    """

    role: str
    layout: str
    prefix: str = ""

    @property
    def label(self) -> str:
        """"original", "diffusers", "original (model.diffusion_model.)" … for tables."""
        return f"{self.layout} ({self.prefix.rstrip('.')})" if self.prefix else self.layout


# (role, layout, keys that must all be present) — checked in order, after prefix stripping.
_MARKERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (DIT, "original", ("head.modulation", "time_projection.1.weight")),
    (DIT, "diffusers", ("scale_shift_table", "condition_embedder.time_proj.weight")),
    (VAE, "original", ("conv2.weight", "decoder.middle.0.residual.0.gamma")),
    (VAE, "diffusers", ("post_quant_conv.weight", "decoder.mid_block.resnets.0.norm1.gamma")),
    (TEXT_ENCODER, "wan", ("token_embedding.weight", "blocks.0.ffn.gate.0.weight")),
    (TEXT_ENCODER, "hf", ("encoder.block.0.layer.1.DenseReluDense.wi_0.weight",
                          "encoder.final_layer_norm.weight")),
    (IMAGE_ENCODER, "original", ("visual.transformer.0.attn.to_qkv.weight",
                                 "visual.pos_embedding")),
    (IMAGE_ENCODER, "hf", ("vision_model.encoder.layers.0.self_attn.q_proj.weight",
                           "vision_model.embeddings.patch_embedding.weight")),
)


def identify_layout(keys: Iterable[str]) -> KeyLayout | None:
    """The part and key layout of a file from its tensor names, or None when it is no Wan part."""
    keys = set(keys)
    prefix = strip_prefix(keys, DIT_PREFIXES)
    bare = {key[len(prefix):] for key in keys}
    for role, layout, markers in _MARKERS:
        if all(marker in bare for marker in markers):
            return KeyLayout(role, layout, prefix if role == DIT else "")
    return None


def key_map(layout: KeyLayout, keys: Iterable[str]) -> dict[str, str]:
    """File key → internal key for every file key the layout knows (others stay unmapped)."""
    keys = list(keys)
    bare = {key: key[len(layout.prefix):] for key in keys if key.startswith(layout.prefix)}
    if layout.layout in ("original", "hf"):
        mapped = dict(bare)
    elif layout.role == DIT:
        mapped = {key: _apply(_DIT_FROM_DIFFUSERS, name) for key, name in bare.items()}
    elif layout.role == VAE:
        mapped = _vae_from_diffusers(bare)
    else:
        mapped = {key: _apply(_UMT5_FROM_WAN, name) for key, name in bare.items()}
    return {key: name for key, name in mapped.items() if name is not None}


def diffusers_module_name(name: str) -> str | None:
    """A DiT module's diffusers name → its original name (``blocks.0.attn1.to_q`` →
    ``blocks.0.self_attn.q``), for LoRA files written against diffusers; None when unknown."""
    mapped = _apply(_DIT_FROM_DIFFUSERS, f"{name}.weight")
    return mapped.removesuffix(".weight") if mapped and mapped.endswith(".weight") else None


def _apply(rules: tuple[tuple[re.Pattern[str], str], ...], name: str) -> str | None:
    for pattern, replacement in rules:
        renamed, count = pattern.subn(replacement, name)
        if count:
            return renamed
    return None


def _rules(pairs: Iterable[tuple[str, str]]) -> tuple[tuple[re.Pattern[str], str], ...]:
    return tuple((re.compile(pattern), replacement) for pattern, replacement in pairs)


_B = r"^blocks\.(\d+)\."

# diffusers WanTransformer3DModel → original WanModel (docs/families/wan.md §8.1).
# One rule per key family;
# the first match wins, unmatched keys are left unmapped and reported as unexpected.
_DIT_FROM_DIFFUSERS = _rules([
    (r"^patch_embedding\.", "patch_embedding."),
    (r"^condition_embedder\.text_embedder\.linear_1\.", "text_embedding.0."),
    (r"^condition_embedder\.text_embedder\.linear_2\.", "text_embedding.2."),
    (r"^condition_embedder\.time_embedder\.linear_1\.", "time_embedding.0."),
    (r"^condition_embedder\.time_embedder\.linear_2\.", "time_embedding.2."),
    (r"^condition_embedder\.time_proj\.", "time_projection.1."),
    (r"^condition_embedder\.image_embedder\.norm1\.", "img_emb.proj.0."),
    (r"^condition_embedder\.image_embedder\.ff\.net\.0\.proj\.", "img_emb.proj.1."),
    (r"^condition_embedder\.image_embedder\.ff\.net\.2\.", "img_emb.proj.3."),
    (r"^condition_embedder\.image_embedder\.norm2\.", "img_emb.proj.4."),
    (r"^condition_embedder\.image_embedder\.pos_embed$", "img_emb.emb_pos"),
    (r"^scale_shift_table$", "head.modulation"),
    (r"^proj_out\.", "head.head."),
    (_B + r"scale_shift_table$", r"blocks.\1.modulation"),
    (_B + r"attn1\.to_([qkv])\.", r"blocks.\1.self_attn.\2."),
    (_B + r"attn1\.to_out\.0\.", r"blocks.\1.self_attn.o."),
    (_B + r"attn1\.norm_([qk])\.", r"blocks.\1.self_attn.norm_\2."),
    (_B + r"attn2\.to_([qkv])\.", r"blocks.\1.cross_attn.\2."),
    (_B + r"attn2\.to_out\.0\.", r"blocks.\1.cross_attn.o."),
    (_B + r"attn2\.norm_([qk])\.", r"blocks.\1.cross_attn.norm_\2."),
    (_B + r"attn2\.add_([kv])_proj\.", r"blocks.\1.cross_attn.\2_img."),
    (_B + r"attn2\.norm_added_k\.", r"blocks.\1.cross_attn.norm_k_img."),
    (_B + r"norm2\.", r"blocks.\1.norm3."),
    (_B + r"ffn\.net\.0\.proj\.", r"blocks.\1.ffn.0."),
    (_B + r"ffn\.net\.2\.", r"blocks.\1.ffn.2."),
])  # fmt: skip

# Wan's own T5 names → transformers UMT5EncoderModel names (docs/families/wan.md §4.3).
_UMT5_FROM_WAN = _rules([
    (r"^token_embedding\.weight$", "shared.weight"),
    (_B + r"norm1\.", r"encoder.block.\1.layer.0.layer_norm."),
    (_B + r"attn\.([qkvo])\.", r"encoder.block.\1.layer.0.SelfAttention.\2."),
    (_B + r"pos_embedding\.embedding\.",
     r"encoder.block.\1.layer.0.SelfAttention.relative_attention_bias."),
    (_B + r"norm2\.", r"encoder.block.\1.layer.1.layer_norm."),
    (_B + r"ffn\.gate\.0\.", r"encoder.block.\1.layer.1.DenseReluDense.wi_0."),
    (_B + r"ffn\.fc1\.", r"encoder.block.\1.layer.1.DenseReluDense.wi_1."),
    (_B + r"ffn\.fc2\.", r"encoder.block.\1.layer.1.DenseReluDense.wo."),
    (r"^norm\.", "encoder.final_layer_norm."),
])  # fmt: skip

#: The tied input embedding of ``UMT5EncoderModel``: either name in a file fills both.
UMT5_TIED = {"encoder.embed_tokens.weight": "shared.weight"}

# Inside one residual block: diffusers name → original name (both VAEs).
_RESNET_PARTS = _rules([
    (r"^norm1\.", "residual.0."), (r"^conv1\.", "residual.2."),
    (r"^norm2\.", "residual.3."), (r"^conv2\.", "residual.6."),
    (r"^conv_shortcut\.", "shortcut."),
])  # fmt: skip

_VAE_FIXED = _rules([
    (r"^quant_conv\.", "conv1."),
    (r"^post_quant_conv\.", "conv2."),
    (r"^(encoder|decoder)\.conv_in\.", r"\1.conv1."),
    (r"^(encoder|decoder)\.norm_out\.", r"\1.head.0."),
    (r"^(encoder|decoder)\.conv_out\.", r"\1.head.2."),
    (r"^(encoder|decoder)\.mid_block\.attentions\.0\.", r"\1.middle.1."),
])  # fmt: skip

_MID_RESNET = re.compile(r"^(encoder|decoder)\.mid_block\.resnets\.([01])\.(.+)$")
_STAGED = re.compile(r"^(encoder\.down|decoder\.up)_blocks\.(\d+)\.(.+)$")
_RESNET = re.compile(r"^resnets\.(\d+)\.(.+)$")
_SAMPLER = re.compile(r"^(?:downsampler|upsampler|upsamplers\.0)\.(.+)$")


def _vae_from_diffusers(bare: Mapping[str, str]) -> dict[str, str | None]:
    """diffusers ``AutoencoderKLWan`` → original Wan VAE names (2.1 and 2.2;
    docs/families/wan.md §8.2).

    Stage layouts differ: the 2.1 encoder keeps the original flat index, the 2.1 decoder groups
    the flat list into ``up_blocks.s.resnets.j`` + ``upsamplers.0`` (index s·(R+1) + j, R =
    resnets per stage), and 2.2 nests stages (``down_blocks.i.resnets.j`` ↔
    ``downsamples.i.downsamples.j``, sampler at j = R). R is read from the file's own keys.
    """
    resnets: dict[tuple[str, int], int] = {}
    for name in bare.values():
        staged = _STAGED.match(name)
        inner = _RESNET.match(staged.group(3)) if staged else None
        if staged and inner:
            slot = (staged.group(1), int(staged.group(2)))
            resnets[slot] = max(resnets.get(slot, 0), int(inner.group(1)) + 1)
    nested = any(part == "encoder.down" for part, _ in resnets)  # 2.2 nests encoder stages
    return {key: _vae_name(name, resnets, nested) for key, name in bare.items()}


def _vae_name(name: str, resnets: Mapping[tuple[str, int], int], nested: bool) -> str | None:
    fixed = _apply(_VAE_FIXED, name)
    if fixed is not None:
        return fixed
    mid = _MID_RESNET.match(name)
    if mid:
        part = _apply(_RESNET_PARTS, mid.group(3))
        return part and f"{mid.group(1)}.middle.{2 * int(mid.group(2))}.{part}"
    staged = _STAGED.match(name)
    if not staged:
        return None
    where, stage, rest = staged.group(1), int(staged.group(2)), staged.group(3)
    outer = "encoder.downsamples" if where == "encoder.down" else "decoder.upsamples"
    inner_list = "downsamples" if where == "encoder.down" else "upsamples"
    count = resnets.get((where, stage), 0)
    resnet, sampler = _RESNET.match(rest), _SAMPLER.match(rest)
    if where == "encoder.down" and not nested:  # 2.1 encoder: flat index kept
        part = _apply(_RESNET_PARTS, rest)
        return f"{outer}.{stage}.{part or rest}"
    if nested:  # 2.2: stage i, item j
        if resnet:
            part = _apply(_RESNET_PARTS, resnet.group(2))
            return part and f"{outer}.{stage}.{inner_list}.{resnet.group(1)}.{part}"
        return sampler and f"{outer}.{stage}.{inner_list}.{count}.{sampler.group(1)}"
    stride = max(n for (part, _), n in resnets.items() if part == where) + 1  # 2.1 decoder
    if resnet:
        part = _apply(_RESNET_PARTS, resnet.group(2))
        return part and f"{outer}.{stage * stride + int(resnet.group(1))}.{part}"
    return sampler and f"{outer}.{stage * stride + stride - 1}.{sampler.group(1)}"
