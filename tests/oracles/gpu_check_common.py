"""What every section of ``gpu_check.py`` shares: the table's :class:`Row`, the run's
:class:`Context` (device, dry mode, time budget) and the tolerances every row states.

Every device result a correctness or caching check judges passes through
:meth:`Context.device_output` or :meth:`Context.device_frames`, where a test injects a
perturbation to prove that the checks can fail.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

PASS, FAIL, INFO, SKIP = "PASS", "FAIL", "INFO", "SKIP"
CPU = torch.device("cpu")
PROMPT = "a red fox runs over the snow in the sunny day"

#: float32 with TF32 off differs from the CPU only in summation order (~1e-6 relative).
FP32_MAX_REL = 1e-3  # max |Δ| / max |reference|
#: bf16 keeps 8 mantissa bits: each rounding is ≤ 2⁻⁹ ≈ 2e-3 relative; measured 3.1–3.3e-3 for
#: the tiny sets on the CPU, so 2e-2 leaves room for CUDA's other kernels and summation order.
BF16_RMS_REL = 2e-2  # ‖Δ‖₂ / ‖reference‖₂
#: Decoded uint8 frames of a whole generation, device against CPU (bf16 measured 58–65 dB on
#: the CPU; a trajectory may drift further than one forward, hence the margin).
FP32_PSNR_DB, BF16_PSNR_DB = 40.0, 30.0
#: The forecast's per-stage allocations against the live-tensor peak: an estimate, within 15 %
#: (docs/benchmarks.md: DiT activations within 3 %; the CPU run measured 0.91–0.97×).
STAGE_TOLERANCE = 0.15
#: The whole VRAM forecast (allowances included) must not be below what the device held at the
#: peak, nor more than this factor above it.
FORECAST_SLACK = 1.5
#: Ours / diffusers, paired runs, on CUDA (docs/benchmarks.md's target ≤ 1.0×, plus 5 % for
#: run-to-run noise); our VAE decode's peak at most diffusers'.
SPEED_RATIO_MAX = 1.05
#: Step caching on the demo model at the default threshold, 20 steps: docs/benchmarks.md
#: measured 12 forwards (1.67×) and a worst PSNR of 31.3 dB over 8 prompts.
CACHE_FORWARDS_MAX, CACHE_PSNR_DB, CACHE_SPEEDUP_MIN = 14, 30.0, 1.3


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table: what was checked, the value, what it is held to, the verdict
    (PASS, FAIL, INFO: recorded but not judged, SKIP: not run); the runner adds the section
    and where it ran."""

    check: str
    value: str
    expectation: str
    verdict: str
    section: str = ""
    on: str = ""


@dataclass
class Context:
    """What every section gets.

    Attributes:
        device: where the checks run (``cpu`` in dry mode).
        dry: the CPU rehearsal: smallest sizes, timings recorded but not judged.
        budget_s: seconds the whole check may take; ``reserve_s``: what the sections after the
            running one need (a section that picks a size leaves that much to them).
        perturb: relative error added to every judged device output (tests only; 0 otherwise).
    """

    device: torch.device
    dry: bool
    budget_s: float = 480.0
    perturb: float = 0.0
    reserve_s: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started

    def left_s(self) -> float:
        """Seconds the running section may still spend."""
        return self.budget_s - self.elapsed_s() - self.reserve_s

    def device_output(self, tensor: torch.Tensor) -> torch.Tensor:
        """A device result as float32 on the CPU, scaled by ``1 + perturb``."""
        return tensor.detach().float().cpu() * (1.0 + self.perturb)

    def device_frames(self, frames: np.ndarray) -> np.ndarray:
        """Decoded uint8 frames ``[T, H, W, 3]`` shifted by ``perturb × 255`` levels."""
        shifted = frames.astype(np.float64) + self.perturb * 255.0
        return np.clip(np.rint(shifted), 0, 255).astype(np.uint8)


def verdict(ok: bool) -> str:
    return PASS if ok else FAIL


def cuda_verdict(ctx: Context, ok: bool) -> str:
    """Timings and allocator figures are judged on CUDA; a dry run (a shared CPU, tiny sizes)
    records them."""
    return INFO if ctx.dry else verdict(ok)


def pick(options: Sequence[tuple[str, float]], seconds: float) -> str | None:
    """The first (largest) option whose estimated seconds fit in ``seconds``, or None."""
    return next((name for name, cost in options if cost <= seconds), None)


def free_device(device: torch.device) -> None:
    """Give cached device memory back, so a section starts from what it allocates itself."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
