"""The options ``studio bench`` runs with, once parsed and checked."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from studio.engine.offload import AUTO, OffloadPolicy
from studio.models.bench_config import BenchConfig


@dataclass(frozen=True, slots=True)
class BenchOptions:
    """Parsed ``studio bench`` options (see :func:`studio.bench.add_bench_parser`)."""

    spec: BenchConfig
    device: torch.device
    dtype: torch.dtype
    what: frozenset[str]
    repeat: int = 3
    warmup: int = 1
    steps: int = 2
    compile: bool = False
    sdpa: str = AUTO
    offload: str = OffloadPolicy.NONE.value
    peak_tflops: float | None = None
    model_path: Path | None = None
    out_dir: Path | None = None
    compare_diffusers: bool = False
    threads: int = 0
