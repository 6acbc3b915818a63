"""The Open-Sora 2.0 family's ``studio bench`` configurations: random weights at the sizes of
:mod:`~studio.models.opensora.bench_sizes`, with the MMDiT's FLOP count.

The model is built by :func:`~studio.models.opensora.random_model.random_model` (the loader's
assembly around random modules). The diffusers comparison (``tests/oracles/compare_opensora.py``)
uses the same sizes.
"""

from __future__ import annotations

import functools

import torch

from studio.engine.model import LoadedModel
from studio.models.bench_config import BenchConfig, FlopCount
from studio.models.opensora.bench_sizes import OPENSORA_GEOMETRY, SIZES, OpenSoraBenchSizes
from studio.models.opensora.mmdit_config import MMDiTConfig
from studio.models.opensora.random_model import random_model


def _build(sizes: OpenSoraBenchSizes, device: torch.device, dtype: torch.dtype) -> LoadedModel:
    return random_model(sizes, device, dtype)


def mmdit_flops(config: MMDiTConfig, tokens: int, context_len: int, batch: int) -> FlopCount:
    """FLOPs of one MMDiT forward over ``tokens`` image and ``context_len`` text tokens.

    Every block attends over the joint sequence L = tokens + context_len (so there is no
    separate cross-attention); per block and token, q/k/v/out projections cost ``8·D²`` and the
    MLP ``4·D·mlp_hidden`` (a single block's fused ``v_mlp`` / ``linear2`` count the same).
    """
    d, m, blocks = config.hidden_size, config.mlp_hidden, config.depth + config.depth_single_blocks
    joint = tokens + context_len
    embed = (2 * tokens * (config.in_channels + config.cond_channels) * d
             + 2 * context_len * config.context_in_dim * d + 2 * tokens * d * config.in_channels
             + 2 * d * d * (12 * config.depth + 3 * config.depth_single_blocks + 2))  # fmt: skip
    return FlopCount(
        self_attention=batch * blocks * 4 * joint**2 * d,
        projections=batch * blocks * 8 * joint * d * d,
        cross_attention=0.0,
        ffn=batch * blocks * 4 * joint * d * m,
        embeddings=batch * embed,
    )


def _flops(
    sizes: OpenSoraBenchSizes, tokens: int, context_len: int, batch: int, per_token_time: bool
) -> FlopCount:
    return mmdit_flops(sizes.mmdit, tokens, context_len, batch)


def bench_config(sizes: OpenSoraBenchSizes) -> BenchConfig:
    """The configuration that times ``sizes`` with random weights."""
    return BenchConfig(
        name=sizes.name, description=sizes.describe(), geometry=OPENSORA_GEOMETRY,
        width=sizes.width, height=sizes.height, frames=sizes.frames, vae_width=sizes.vae_width,
        vae_height=sizes.vae_height, vae_frames=sizes.vae_frames, text_len=sizes.text_len,
        build=functools.partial(_build, sizes), flops=functools.partial(_flops, sizes),
        cuda_only=sizes.cuda_only, fps=24.0,
    )  # fmt: skip


BENCH_CONFIGS = tuple(bench_config(sizes) for sizes in SIZES.values())
