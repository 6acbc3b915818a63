"""Tiny random Wan model sets written to disk in every layout the studio reads.

Real key names and real module classes, random weights, dims of a few dozen: a whole set is a
few megabytes and loads in well under a second. Layouts:

* ``original``  — ``diffusion_pytorch_model.safetensors`` + ``config.json``, ``Wan2.x_VAE.pth``,
  ``models_t5_umt5-xxl-enc-bf16.pth``, ``google/umt5-xxl/`` (as Wan publishes it);
* ``sharded``   — the same with the DiT split into shards and a ``*.safetensors.index.json``;
* ``prefixed``  — the DiT as one file whose keys start with ``model.diffusion_model.``;
* ``diffusers`` — ``model_index.json`` + ``transformer/``, ``vae/``, ``text_encoder/``,
  ``tokenizer/`` with diffusers / transformers key names.

The original → diffusers tables here are written independently of ``studio.models.wan.keys``
(which maps the other way), and the tests check them against the real diffusers classes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from torch import nn
from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

from studio.models.wan.dit import WanDiT
from studio.models.wan.dit_config import WanDiTConfig
from studio.models.wan.text import umt5_config
from studio.models.wan.vae import WAN22_LATENT_MEAN, WAN22_LATENT_STD, WanVAEConfig
from studio.models.wan.vae_factory import build_vae

TINY_DIT_21 = WanDiTConfig(dim=128, ffn_dim=64, num_heads=4, num_layers=1, text_dim=32)
TINY_DIT_22 = WanDiTConfig(dim=128, ffn_dim=64, num_heads=4, num_layers=1, in_dim=48, out_dim=48,
                           text_dim=32)  # fmt: skip
TINY_VAE_21 = WanVAEConfig(version="2.1", dim=8, num_res_blocks=1)
TINY_VAE_22 = WanVAEConfig(version="2.2", dim=8, dec_dim=8, z_dim=48, num_res_blocks=1,
                           latent_mean=WAN22_LATENT_MEAN, latent_std=WAN22_LATENT_STD)
TINY_UMT5 = umt5_config(vocab_size=40, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4)
WORDS = [
    "a", "cat", "dog", "runs", "walks", "in", "on", "the", "snow", "grass", "red", "blue", "green",
    "video", "of", "slowly", "quickly", "big", "small", "sunny", "day", "night", "bird", "flies",
    "over", "river",
]  # fmt: skip

LAYOUTS = ("original", "sharded", "prefixed", "diffusers")
DIT_PREFIX = "model.diffusion_model."


def random_state(module: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Distinct random values for every tensor of ``module``'s state dict (float32)."""
    generator = torch.Generator().manual_seed(seed)
    return {k: (torch.randn(v.shape, generator=generator) * 0.2).to(v.dtype)
            for k, v in module.state_dict().items()}  # fmt: skip


def dit_state(config: WanDiTConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    return random_state(WanDiT(config), seed)


def vae_state(config: WanVAEConfig, seed: int = 1) -> dict[str, torch.Tensor]:
    return random_state(build_vae(config), seed)


def umt5_state(config: UMT5Config = TINY_UMT5, seed: int = 2) -> dict[str, torch.Tensor]:
    state = random_state(UMT5EncoderModel(config), seed)
    state["encoder.embed_tokens.weight"] = state["shared.weight"]  # tied
    return state


# ---- original → diffusers (the direction diffusers' converter goes) -------------------------

_DIT_TO_DIFFUSERS = [
    ("text_embedding.0.", "condition_embedder.text_embedder.linear_1."),
    ("text_embedding.2.", "condition_embedder.text_embedder.linear_2."),
    ("time_embedding.0.", "condition_embedder.time_embedder.linear_1."),
    ("time_embedding.2.", "condition_embedder.time_embedder.linear_2."),
    ("time_projection.1.", "condition_embedder.time_proj."),
    ("head.modulation", "scale_shift_table"), ("head.head.", "proj_out."),
    (".modulation", ".scale_shift_table"),
    (".self_attn.o.", ".attn1.to_out.0."), (".cross_attn.o.", ".attn2.to_out.0."),
    (".self_attn.norm_", ".attn1.norm_"), (".cross_attn.norm_", ".attn2.norm_"),
    (".self_attn.", ".attn1.to_"), (".cross_attn.", ".attn2.to_"),
    (".norm3.", ".norm2."), (".ffn.0.", ".ffn.net.0.proj."), (".ffn.2.", ".ffn.net.2."),
]  # fmt: skip


def dit_to_diffusers(key: str) -> str:
    for old, new in _DIT_TO_DIFFUSERS:
        if old in key:
            return key.replace(old, new, 1)
    return key


_RESNET_TO_DIFFUSERS = {"residual.0.": "norm1.", "residual.2.": "conv1.",
                        "residual.3.": "norm2.", "residual.6.": "conv2.",
                        "shortcut.": "conv_shortcut."}  # fmt: skip


def _resnet(rest: str) -> str:
    for old, new in _RESNET_TO_DIFFUSERS.items():
        if rest.startswith(old):
            return new + rest[len(old):]
    return rest


def vae_to_diffusers(key: str, config: WanVAEConfig) -> str:
    blocks = config.num_res_blocks
    for old, new in (("conv1.", "quant_conv."), ("conv2.", "post_quant_conv.")):
        if key.startswith(old):
            return new + key[len(old):]
    part, _, rest = key.partition(".")
    for old, new in (("conv1.", "conv_in."), ("head.0.", "norm_out."), ("head.2.", "conv_out."),
                     ("middle.1.", "mid_block.attentions.0.")):
        if rest.startswith(old):
            return f"{part}.{new}{rest[len(old):]}"
    match = re.match(r"middle\.([02])\.(.+)", rest)
    if match:
        return f"{part}.mid_block.resnets.{int(match.group(1)) // 2}.{_resnet(match.group(2))}"
    nested = re.match(r"(down|up)samples\.(\d+)\.(?:down|up)samples\.(\d+)\.(.+)", rest)
    if nested:  # Wan 2.2
        kind, stage, j, tail = nested.groups()
        j = int(j)
        per_stage = blocks if kind == "down" else blocks + 1
        if j < per_stage:
            return f"{part}.{kind}_blocks.{stage}.resnets.{j}.{_resnet(tail)}"
        return f"{part}.{kind}_blocks.{stage}.{kind}sampler.{tail}"
    flat = re.match(r"(down|up)samples\.(\d+)\.(.+)", rest)
    if flat and flat.group(1) == "down":  # Wan 2.1 encoder keeps the flat index
        return f"{part}.down_blocks.{flat.group(2)}.{_resnet(flat.group(3))}"
    if flat:  # Wan 2.1 decoder: stages of (blocks + 1) resnets and one upsampler
        index, tail = int(flat.group(2)), flat.group(3)
        stage, j = divmod(index, blocks + 2)
        if j <= blocks:
            return f"{part}.up_blocks.{stage}.resnets.{j}.{_resnet(tail)}"
        return f"{part}.up_blocks.{stage}.upsamplers.0.{tail}"
    return key


_UMT5_TO_WAN = [
    (r"^shared\.weight$", "token_embedding.weight"),
    (r"^encoder\.block\.(\d+)\.layer\.0\.layer_norm\.", r"blocks.\1.norm1."),
    (r"^encoder\.block\.(\d+)\.layer\.0\.SelfAttention\.relative_attention_bias\.",
     r"blocks.\1.pos_embedding.embedding."),
    (r"^encoder\.block\.(\d+)\.layer\.0\.SelfAttention\.([qkvo])\.", r"blocks.\1.attn.\2."),
    (r"^encoder\.block\.(\d+)\.layer\.1\.layer_norm\.", r"blocks.\1.norm2."),
    (r"^encoder\.block\.(\d+)\.layer\.1\.DenseReluDense\.wi_0\.", r"blocks.\1.ffn.gate.0."),
    (r"^encoder\.block\.(\d+)\.layer\.1\.DenseReluDense\.wi_1\.", r"blocks.\1.ffn.fc1."),
    (r"^encoder\.block\.(\d+)\.layer\.1\.DenseReluDense\.wo\.", r"blocks.\1.ffn.fc2."),
    (r"^encoder\.final_layer_norm\.", "norm."),
]  # fmt: skip


def umt5_to_wan(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        if key == "encoder.embed_tokens.weight":
            continue
        for pattern, replacement in _UMT5_TO_WAN:
            renamed, count = re.subn(pattern, replacement, key)
            if count:
                out[renamed] = value
                break
        else:
            raise KeyError(key)
    return out


# ---- writers -------------------------------------------------------------------------------


def save_sharded(state: dict[str, torch.Tensor], folder: Path, stem: str, shards: int) -> Path:
    """Split ``state`` over ``shards`` safetensors files plus an index; returns the index."""
    keys = list(state)
    size = -(-len(keys) // shards)
    weight_map = {}
    for i in range(shards):
        name = f"{stem}-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: state[k].contiguous() for k in keys[i * size:(i + 1) * size]}
        save_file(part, folder / name)
        weight_map.update(dict.fromkeys(part, name))
    index = folder / f"{stem}.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return index


def write_dit(folder: Path, config: WanDiTConfig, layout: str, state: dict[str, torch.Tensor],
              dtype: torch.dtype = torch.float32) -> Path:
    """Write a DiT in ``layout``; returns the file (or index) that names it."""
    folder.mkdir(parents=True, exist_ok=True)
    cast = {k: v.to(dtype).contiguous() for k, v in state.items()}
    if layout == "diffusers":
        cast = {dit_to_diffusers(k): v for k, v in cast.items()}
        (folder / "config.json").write_text(json.dumps({
            "_class_name": "WanTransformer3DModel", "num_attention_heads": config.num_heads,
            "attention_head_dim": config.head_dim, "in_channels": config.in_dim,
            "out_channels": config.out_dim, "text_dim": config.text_dim,
            "ffn_dim": config.ffn_dim, "num_layers": config.num_layers}))  # fmt: skip
    elif layout in ("original", "sharded"):
        (folder / "config.json").write_text(json.dumps({
            "_class_name": "WanModel", "model_type": "t2v" if config.in_dim == 16 else "ti2v",
            "dim": config.dim, "ffn_dim": config.ffn_dim, "num_heads": config.num_heads,
            "num_layers": config.num_layers, "in_dim": config.in_dim, "out_dim": config.out_dim,
            "text_len": 512, "freq_dim": config.freq_dim, "eps": 1e-6}))  # fmt: skip
    if layout == "sharded":
        return save_sharded(cast, folder, "diffusion_pytorch_model", shards=2)
    if layout == "prefixed":
        path = folder / "wan_tiny_dit.safetensors"
        save_file({DIT_PREFIX + k: v for k, v in cast.items()}, path)
        return path
    path = folder / "diffusion_pytorch_model.safetensors"
    save_file(cast, path)
    return path


def write_vae(folder: Path, config: WanVAEConfig, diffusers: bool,
              state: dict[str, torch.Tensor]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if diffusers:
        path = folder / "diffusion_pytorch_model.safetensors"
        save_file({vae_to_diffusers(k, config): v.contiguous() for k, v in state.items()}, path)
        return path
    path = folder / f"Wan{config.version}_VAE.pth"
    torch.save(state, path)
    return path


def write_umt5(folder: Path, hf_layout: bool, state: dict[str, torch.Tensor],
               config: UMT5Config = TINY_UMT5) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if hf_layout:
        config.to_json_file(str(folder / "config.json"))
        path = folder / "model.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()
                   if k != "encoder.embed_tokens.weight"}, path)  # fmt: skip
        return path
    path = folder / "models_t5_umt5-xxl-enc-bf16.pth"
    torch.save(umt5_to_wan(state), path)
    return path


def write_tokenizer(folder: Path) -> Path:
    """A word-level tokenizer (pad 0, EOS 1, unk 2) saved as ``tokenizer.json`` + config."""
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for word in WORDS:
        vocab.setdefault(word, len(vocab))
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", 1)]
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>",
                                   eos_token="</s>", unk_token="<unk>")  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(folder))
    return folder


@dataclass
class TinySet:
    """A written set: its folder, the part files, and the original-layout states written."""

    root: Path
    dit: Path
    vae: Path
    text_encoder: Path
    tokenizer: Path
    states: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)


def write_wan_set(root: Path, variant: str = "t2v", layout: str = "original",
                  dtype: torch.dtype = torch.float32, seed: int = 0) -> TinySet:
    """A complete tiny set: ``variant`` "t2v" (Wan 2.1, 16 channels) or "ti2v" (Wan 2.2, 48)."""
    dit_config, vae_config = (TINY_DIT_21, TINY_VAE_21) if variant == "t2v" else (
        TINY_DIT_22, TINY_VAE_22)
    states = {"dit": dit_state(dit_config, seed), "vae": vae_state(vae_config, seed + 1),
              "text_encoder": umt5_state(TINY_UMT5, seed + 2)}  # fmt: skip
    diffusers = layout == "diffusers"
    if diffusers:
        root.mkdir(parents=True, exist_ok=True)
        (root / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline"}))
    dit = write_dit(root / "transformer" if diffusers else root, dit_config, layout,
                    states["dit"], dtype)
    vae = write_vae(root / "vae" if diffusers else root, vae_config, diffusers, states["vae"])
    text = write_umt5(root / "text_encoder" if diffusers else root, diffusers,
                      states["text_encoder"])
    tokenizer = write_tokenizer(root / "tokenizer" if diffusers else root / "google" / "umt5-xxl")
    return TinySet(root, dit, vae, text, tokenizer, states)
