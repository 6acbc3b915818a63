"""The demo family's ``studio bench`` configuration: the shipped model with its trained
weights, measured the way a user runs it (17 × 128 × 128, 20 guided steps), against the load
and generation times it is built to meet (docs/families/demo.md)."""

from __future__ import annotations

import functools

from studio.models.bench_config import BenchConfig, FlopCount
from studio.models.demo.config import DIT_CONFIG, DemoDefaults
from studio.models.demo.loader import FAMILY_NAME
from studio.models.wan.flops import flop_count
from studio.models.wan.presets import WAN21_GEOMETRY

PROMPT = "a yellow triangle moving up on a blue background"
_DEFAULTS = DemoDefaults()


def _flops(tokens: int, context_len: int, batch: int, per_token_time: bool) -> FlopCount:
    return flop_count(DIT_CONFIG, tokens, context_len, batch=batch, per_token_time=per_token_time)


BENCH_CONFIGS = (
    BenchConfig(
        name=FAMILY_NAME, description="the shipped demo model, trained weights",
        geometry=WAN21_GEOMETRY, width=128, height=128, frames=17, vae_width=128, vae_height=128,
        vae_frames=17, text_len=DIT_CONFIG.text_len, model_id=FAMILY_NAME,
        flops=functools.partial(_flops), steps=_DEFAULTS.steps, shift=_DEFAULTS.shift,
        fps=_DEFAULTS.fps, prompt=PROMPT, generate_runs=3,
        targets=(("load", 3.0), ("generate", 10.0)),
    ),
)  # fmt: skip
