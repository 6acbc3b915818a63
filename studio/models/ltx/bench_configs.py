"""The LTX-Video family's ``studio bench`` configurations: random weights at the sizes of
:mod:`~studio.models.ltx.bench_sizes`, with the transformer's FLOP count.

The model is built by :func:`~studio.models.ltx.random_model.random_model` (the loader's
assembly around random modules). The diffusers comparison (``tests/oracles/compare_ltx.py``)
uses the same sizes.
"""

from __future__ import annotations

import functools
from dataclasses import replace

import torch

from studio.engine.memory_model import ModelMemory
from studio.engine.model import LoadedModel
from studio.models.bench_config import BenchConfig, FlopCount
from studio.models.ltx.bench_sizes import FPS, SIZES, LTXBenchSizes
from studio.models.ltx.memory import vae_per_pixel
from studio.models.ltx.random_model import random_model
from studio.models.ltx.transformer_config import LTXTransformerConfig

#: Width of the sinusoidal time features the AdaLN-single MLP reads.
TIME_FEATURES = 256


def measured_vae_memory(memory: ModelMemory, sizes: LTXBenchSizes) -> ModelMemory:
    """``memory`` with the VAE's working set per pixel measured for ``sizes.vae``."""
    decode, encode = vae_per_pixel(sizes.vae, sizes.geometry)
    return replace(memory, vae_decode_per_pixel=decode, vae_encode_per_pixel=encode)


def _build(sizes: LTXBenchSizes, device: torch.device, dtype: torch.dtype) -> LoadedModel:
    model = random_model(device, dtype, transformer=sizes.transformer, vae=sizes.vae)
    return replace(model, memory=measured_vae_memory(model.memory, sizes))


def ltx_flops(config: LTXTransformerConfig, tokens: int, context_len: int, batch: int,
              per_token_time: bool = False) -> FlopCount:  # fmt: skip
    """FLOPs of one transformer forward over ``tokens`` video and ``context_len`` text tokens.

    Per block and token: self-attention q/k/v/out ``8·D²``, cross-attention q/out ``4·D²``
    (k/v ``4·D²`` per text token), the 4×-wide GELU MLP ``16·D²``; scores and sums ``4·L²·D``
    (self) and ``4·L·L_ctx·D`` (cross). Embeddings: patchify, output head, the two-layer caption
    projection and the AdaLN-single MLP (once per sample, or per token when times differ).
    """
    d, n = config.dim, config.num_layers
    times = tokens if per_token_time else 1
    embed = (2 * tokens * d * (config.in_channels + config.out_channels)
             + 2 * context_len * (config.caption_channels * d + d * d)
             + 2 * times * (TIME_FEATURES * d + d * d + 6 * d * d))  # fmt: skip
    return FlopCount(
        self_attention=batch * n * 4 * tokens**2 * d,
        projections=batch * n * (12 * tokens + 4 * context_len) * d * d,
        cross_attention=batch * n * 4 * tokens * context_len * d,
        ffn=batch * n * 16 * tokens * d * d,
        embeddings=batch * embed,
    )


def _flops(sizes: LTXBenchSizes, tokens: int, context_len: int, batch: int,
           per_token_time: bool) -> FlopCount:  # fmt: skip
    # The bench's step shares one time over the clip, which the transformer embeds once.
    return ltx_flops(sizes.transformer, tokens, context_len, batch)


def bench_config(sizes: LTXBenchSizes) -> BenchConfig:
    """The configuration that times ``sizes`` with random weights."""
    return BenchConfig(
        name=sizes.name, description=sizes.describe(), geometry=sizes.geometry,
        width=sizes.width, height=sizes.height, frames=sizes.frames, vae_width=sizes.vae_width,
        vae_height=sizes.vae_height, vae_frames=sizes.vae_frames, text_len=sizes.text_len,
        build=functools.partial(_build, sizes), flops=functools.partial(_flops, sizes),
        cuda_only=sizes.cuda_only, fps=FPS,
    )  # fmt: skip


BENCH_CONFIGS = tuple(bench_config(sizes) for sizes in SIZES.values())
