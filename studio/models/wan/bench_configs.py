"""The Wan family's ``studio bench`` configurations: random weights at the sizes of
:mod:`~studio.models.wan.bench_sizes`, with the Wan DiT's FLOP count."""

from __future__ import annotations

import functools

import torch

from studio.engine.model import LoadedModel
from studio.models.bench_config import BenchConfig, FlopCount
from studio.models.wan.bench_sizes import SIZES, WanBenchSizes
from studio.models.wan.flops import flop_count
from studio.models.wan.random_model import random_model


def _build(sizes: WanBenchSizes, device: torch.device, dtype: torch.dtype) -> LoadedModel:
    return random_model(sizes, device, dtype)


def _flops(sizes: WanBenchSizes, tokens: int, context_len: int, batch: int,
           per_token_time: bool) -> FlopCount:
    return flop_count(sizes.dit, tokens, context_len, batch=batch, per_token_time=per_token_time)


def bench_config(sizes: WanBenchSizes) -> BenchConfig:
    """The configuration that times ``sizes`` with random weights."""
    return BenchConfig(
        name=sizes.name, description=sizes.describe(), geometry=sizes.geometry,
        width=sizes.width, height=sizes.height, frames=sizes.frames, vae_width=sizes.width,
        vae_height=sizes.height, vae_frames=sizes.frames, text_len=sizes.text_len,
        build=functools.partial(_build, sizes), flops=functools.partial(_flops, sizes),
        cuda_only=sizes.cuda_only,
    )  # fmt: skip


BENCH_CONFIGS = tuple(bench_config(sizes) for sizes in SIZES.values())
