"""A complete Open-Sora 2.0 model with random weights, built in memory for ``studio bench``.

Same classes and the same assembly as a loaded set (:func:`~studio.models.opensora.loader.
assemble_opensora_model`): the MMDiT in the compute dtype with its float32 groups, the
HunyuanVideo VAE in float32, a T5 encoder and a CLIP text model from ``transformers`` configs of
the MMDiT's context and vector widths (two layers each: timing the text encoders is not the
point) behind :class:`~studio.models.opensora.text.OpenSoraTextEncoder`, seeded weights. The
tokenizer is a small word-level one made on the spot (timing does not depend on the ids).
"""

from __future__ import annotations

import dataclasses
import logging

import torch
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    T5Config,
    T5EncoderModel,
)

from studio.engine.model import LoadedModel
from studio.models.opensora.bench_sizes import OpenSoraBenchSizes
from studio.models.opensora.hunyuan_vae import HunyuanVAE
from studio.models.opensora.loader import OpenSoraParts, assemble_opensora_model
from studio.models.opensora.mmdit import OpenSoraMMDiT
from studio.models.opensora.presets import DEFAULTS
from studio.models.opensora.text import CLIP_LEN, OpenSoraTextEncoder
from studio.models.random_weights import EOS, PAD, VOCAB_SIZE, default_dtype, word_tokenizer

log = logging.getLogger(__name__)

def t5_config(width: int) -> T5Config:
    """A two-layer T5 encoder ``width`` wide (heads of at most 64, a feed-forward ≤ 1024)."""
    heads = max(2, width // 512)
    return T5Config(vocab_size=VOCAB_SIZE, d_model=width, d_kv=min(64, width // heads),
                    d_ff=min(4 * width, 1024), num_layers=2, num_heads=heads,
                    feed_forward_proj="gated-gelu", dropout_rate=0.0, pad_token_id=PAD,
                    eos_token_id=EOS, decoder_start_token_id=PAD)  # fmt: skip


def clip_config(width: int) -> CLIPTextConfig:
    """A two-layer CLIP text model ``width`` wide with a position for each of its 77 tokens."""
    heads = max(2, width // 64)
    return CLIPTextConfig(vocab_size=VOCAB_SIZE, hidden_size=width, intermediate_size=4 * width,
                          num_hidden_layers=2, num_attention_heads=heads,
                          max_position_embeddings=CLIP_LEN, pad_token_id=PAD, bos_token_id=PAD,
                          eos_token_id=EOS)  # fmt: skip


def random_mmdit(sizes: OpenSoraBenchSizes, device: torch.device, dtype: torch.dtype,
                 seed: int = 0) -> OpenSoraMMDiT:
    """The sizes' MMDiT with seeded random weights, cast like a loaded checkpoint."""
    torch.manual_seed(seed)
    with torch.device(device), default_dtype(dtype):  # no float32 copy of an 11B model first
        mmdit = OpenSoraMMDiT(sizes.mmdit)
    return mmdit.to_dtype(dtype).eval().requires_grad_(False)


def random_vae(sizes: OpenSoraBenchSizes, device: torch.device, seed: int = 1) -> HunyuanVAE:
    """The sizes' HunyuanVideo VAE with seeded random weights, float32."""
    torch.manual_seed(seed)
    with torch.device(device):
        vae = HunyuanVAE(sizes.vae)
    return vae.float().eval().requires_grad_(False)


def random_text_encoder(sizes: OpenSoraBenchSizes, device: torch.device, dtype: torch.dtype,
                        seed: int = 2) -> OpenSoraTextEncoder:
    """T5 and CLIP of the MMDiT's context / vector widths, random, with word tokenizers; the
    context has ``sizes.text_len`` T5 rows."""
    torch.manual_seed(seed)
    config = sizes.mmdit
    with torch.device(device), default_dtype(dtype):
        t5 = T5EncoderModel(t5_config(config.context_in_dim))
        clip = CLIPTextModel(clip_config(config.vec_in_dim))
    t5 = t5.to(dtype).eval().requires_grad_(False)
    clip = clip.to(dtype).eval().requires_grad_(False)
    return OpenSoraTextEncoder(t5, word_tokenizer(), clip, word_tokenizer(),
                               t5_len=sizes.text_len)  # fmt: skip


def random_model(sizes: OpenSoraBenchSizes, device: torch.device | str, dtype: torch.dtype,
                 seed: int = 0) -> LoadedModel:
    """A :class:`LoadedModel` of random weights for ``sizes`` on ``device``."""
    device = torch.device(device)
    parts = OpenSoraParts(mmdit=random_mmdit(sizes, device, dtype, seed),
                          vae=random_vae(sizes, device, seed + 1),
                          text=random_text_encoder(sizes, device, dtype, seed + 2))  # fmt: skip
    defaults = dataclasses.replace(DEFAULTS, frames=sizes.frames,
                                   sizes=((sizes.width, sizes.height),))  # fmt: skip
    log.info("random %s model on %s (%s)", sizes.name, device, dtype)
    return assemble_opensora_model(parts, model_id=f"random:{sizes.name}",
                                   name=f"random {sizes.name}", device=device, dtype=dtype,
                                   defaults=defaults)  # fmt: skip
