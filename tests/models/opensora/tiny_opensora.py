"""Tiny random Open-Sora 2.0 parts and sets written to disk as Open-Sora publishes them.

Real module classes, random weights, widths of a few dozen: ``Open_Sora_v2.safetensors`` (MMDiT,
2×2 packed 16-channel latents), ``hunyuan_vae.safetensors`` (16 latent channels, 8× / 4×),
``google/t5-v1_1-xxl/`` (full T5) and ``openai/clip-vit-large-patch14/`` (full CLIPModel).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import (
    CLIPConfig,
    CLIPModel,
    CLIPTextConfig,
    CLIPTextModel,
    T5Config,
    T5EncoderModel,
    T5ForConditionalGeneration,
)

from studio.models.opensora.hunyuan_vae import HunyuanVAE
from studio.models.opensora.hunyuan_vae_config import NO_TILING, HunyuanVAEConfig
from studio.models.opensora.mmdit import OpenSoraMMDiT
from studio.models.opensora.mmdit_config import MMDiTConfig
from studio.models.opensora.text import CLIP_LEN
from tests.models.tiny_wan import write_tokenizer

TINY_T5 = dict(vocab_size=40, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4,
               feed_forward_proj="gated-gelu", dropout_rate=0.0,
               decoder_start_token_id=0)  # fmt: skip
_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789.,"
_MERGES = ["r a", "ra i", "s e", "se a</w>", "c a", "ca t</w>"]
TINY_CLIP = dict(vocab_size=96, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                 num_attention_heads=2, max_position_embeddings=CLIP_LEN, bos_token_id=0,
                 eos_token_id=1, pad_token_id=1)  # fmt: skip
#: The MMDiT for the tiny encoders (T5 32 wide, CLIP 16); 32-wide heads split as the loader
#: splits them for heads other than 128 wide.
TINY_MMDIT = MMDiTConfig(hidden_size=64, num_heads=2, depth=1, depth_single_blocks=1,
                         axes_dim=(4, 14, 14), vec_in_dim=16, context_in_dim=32)  # fmt: skip
#: 16 latent channels, 8× space / 4× time; 32 groups as the loader assumes for the file.
TINY_VAE = HunyuanVAEConfig(block_out_channels=(32, 32, 32, 32), layers_per_block=1)
T5_DIR, CLIP_DIR = Path("google/t5-v1_1-xxl"), Path("openai/clip-vit-large-patch14")


def write_clip_tokenizer(folder: Path) -> None:
    """A byte-level BPE vocabulary of letters, digits and a few merges, as CLIP ships it."""
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for token in [*_CHARS, *(c + "</w>" for c in _CHARS), *(m.replace(" ", "") for m in _MERGES)]:
        vocab.setdefault(token, len(vocab))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(_MERGES) + "\n", "utf-8")
    config = {"tokenizer_class": "CLIPTokenizer", "model_max_length": CLIP_LEN}
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")


def write_t5(folder: Path, full: bool = False) -> torch.nn.Module:
    """A tiny T5 folder (encoder only, or the whole encoder–decoder as Google publishes it)."""
    torch.manual_seed(0)
    config = T5Config(**TINY_T5)
    model = T5ForConditionalGeneration(config) if full else T5EncoderModel(config)
    model.save_pretrained(str(folder))
    write_tokenizer(folder)
    return model.eval()


def write_clip(folder: Path, full: bool = False) -> torch.nn.Module:
    """A tiny CLIP folder (text model only, or a whole CLIPModel as OpenAI publishes it)."""
    torch.manual_seed(1)
    if full:
        vision = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, image_size=8, patch_size=4)  # fmt: skip
        model = CLIPModel(CLIPConfig(text_config=TINY_CLIP, vision_config=vision))
    else:
        model = CLIPTextModel(CLIPTextConfig(**TINY_CLIP))
    model.save_pretrained(str(folder))
    write_clip_tokenizer(folder)
    return model.eval()


def random_state(module: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Small random weights of the module's shapes (norm scales around 1), contiguous."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, tensor in module.state_dict().items():
        noise = torch.randn(tensor.shape, generator=gen)
        fan_in = tensor[0].numel() if tensor.ndim > 1 else 1
        if ("norm" in name or "scale" in name) and tensor.ndim == 1:
            state[name] = 1 + 0.1 * noise
        else:
            state[name] = noise / fan_in**0.5 if tensor.ndim > 1 else 0.05 * noise
    return state


def write_mmdit(path: Path, config: MMDiTConfig = TINY_MMDIT, prefix: str = "") -> None:
    """A random MMDiT file (keys optionally wrapped in ``prefix``)."""
    state = random_state(OpenSoraMMDiT(config), seed=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({prefix + key: value for key, value in state.items()}, str(path))


def write_vae(path: Path, config: HunyuanVAEConfig = TINY_VAE) -> None:
    state = random_state(HunyuanVAE(config, NO_TILING), seed=3)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))


@dataclass
class TinyOpenSora:
    """A written set: its folder and parts."""

    root: Path
    mmdit: Path
    vae: Path
    t5: Path
    clip: Path


def write_set(root: Path) -> TinyOpenSora:
    """The published layout with tiny random parts."""
    written = TinyOpenSora(root, root / "Open_Sora_v2.safetensors",
                           root / "hunyuan_vae.safetensors", root / T5_DIR, root / CLIP_DIR)
    write_mmdit(written.mmdit)
    write_vae(written.vae)
    write_t5(written.t5, full=True)
    write_clip(written.clip, full=True)
    return written
