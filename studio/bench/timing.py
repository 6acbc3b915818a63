"""Wall-clock timing that means something on shared CPUs and asynchronous GPUs.

Each measurement synchronises the device before starting and before stopping the clock (CUDA
work is queued, so an unsynchronised clock measures launch time). Several runs are taken and
the median reported; comparisons between two implementations interleave their runs (A B A B …)
so that both see the same machine load.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch


@dataclass(frozen=True, slots=True)
class Timing:
    """Seconds per run: median, fastest and every sample (after the warm-up runs)."""

    median: float
    best: float
    samples: tuple[float, ...]
    warmup: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {"median_s": self.median, "best_s": self.best, "samples_s": list(self.samples),
                "warmup_s": list(self.warmup)}  # fmt: skip


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds one call of ``fn`` takes, device work included."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def measure(fn: Callable[[], object], device: torch.device, *, repeat: int = 3,
            warmup: int = 1) -> Timing:
    """Run ``fn`` ``warmup`` times (timed, reported apart), then ``repeat`` times."""
    first = tuple(timed(fn, device) for _ in range(warmup))
    samples = tuple(timed(fn, device) for _ in range(max(1, repeat)))
    return Timing(statistics.median(samples), min(samples), samples, first)


def compare(fns: Mapping[str, Callable[[], object]], device: torch.device, *, repeat: int = 3,
            warmup: int = 1) -> dict[str, Timing]:
    """Time several implementations of the same work, interleaving their runs."""
    first: dict[str, list[float]] = {name: [] for name in fns}
    runs: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(warmup):
        for name, fn in fns.items():
            first[name].append(timed(fn, device))
    for _ in range(max(1, repeat)):
        for name, fn in fns.items():
            runs[name].append(timed(fn, device))
    return {name: Timing(statistics.median(runs[name]), min(runs[name]), tuple(runs[name]),
                         tuple(first[name])) for name in fns}  # fmt: skip


def paired_ratio(ours: Timing, theirs: Timing) -> float:
    """Median over interleaved run pairs of ours / theirs: robust to load that drifts during the
    comparison (each pair ran back to back)."""
    ratios = sorted(a / b for a, b in zip(ours.samples, theirs.samples, strict=True))
    middle = len(ratios) // 2
    return ratios[middle] if len(ratios) % 2 else (ratios[middle - 1] + ratios[middle]) / 2
