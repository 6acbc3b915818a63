"""The measurements ``studio bench`` makes: one denoiser step, one VAE decode, one generation.

Every function returns plain numbers (seconds, bytes); :mod:`studio.bench.report` lays them out.
Peak memory is measured as the device reports it on CUDA (``max_memory_allocated``) and, on the
CPU, as the bytes of tensors the code allocates (:class:`AllocationMeter`, a separate
untimed run) or, for a whole generation, the process's peak resident set.
"""

from __future__ import annotations

import contextlib
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from studio.bench.timing import Timing, measure, synchronize
from studio.engine.allocation_meter import AllocationMeter
from studio.engine.memory_forecast import MemoryForecast, forecast_memory
from studio.engine.model import LoadedModel
from studio.engine.noise import make_noise
from studio.engine.offload import OffloadPolicy
from studio.engine.request import GenerationRequest
from studio.models.bench_config import BenchConfig
from studio.models.family import ModelSet
from studio.service.catalog import ModelCache
from studio.service.generation import GenerationService, StageEvent
from studio.service.process_memory import peak_rss
from studio.service.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DenoiserInputs:
    """One guided step's denoiser call: x ``[2, C, T', H', W']``, t_tok ``[2, T', H', W']``
    (t = 0.5 everywhere) and context ``[2, L_ctx, text_dim]`` (cond and uncond batched)."""

    x: torch.Tensor
    t_tok: torch.Tensor
    context: torch.Tensor


def denoiser_inputs(latent_shape: tuple[int, ...], context_shape: tuple[int, int],
                    device: torch.device, dtype: torch.dtype, seed: int = 0) -> DenoiserInputs:
    """Seeded inputs of one batched denoiser call: x ``latent_shape`` (its batch B included),
    t = 0.5 everywhere, and a context ``[B, L, D]`` for ``context_shape`` (L, D)."""
    batch = latent_shape[0]
    x = make_noise(latent_shape, seed, device)
    t_tok = torch.full((batch, *latent_shape[2:]), 0.5, device=device)
    context = make_noise((batch, *context_shape), seed + 1, device, dtype)
    return DenoiserInputs(x, t_tok, context)


def device_peak(device: torch.device, fn: Callable[[], object]) -> int:
    """Bytes ``fn`` allocates at its peak (beyond what was allocated before): CUDA's allocator
    statistics, or a :class:`AllocationMeter` run on other devices."""
    if device.type == "cuda":
        synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    with AllocationMeter() as tracker:
        fn()
    return tracker.peak


def bench_denoiser(denoise: Callable[..., torch.Tensor], inputs: DenoiserInputs,
                   device: torch.device, repeat: int, warmup: int) -> Timing:
    """Seconds of one guided denoiser call (batch 2)."""

    def step() -> None:
        with torch.inference_mode():
            denoise(inputs.x, inputs.t_tok, inputs.context)

    return measure(step, device, repeat=repeat, warmup=warmup)


def vae_latent(shape: tuple[int, ...], device: torch.device, seed: int = 3) -> torch.Tensor:
    """A seeded normalised latent of ``shape`` for the VAE decode row."""
    return make_noise(shape, seed, device)


def bench_vae_decode(vae: object, latent: torch.Tensor, device: torch.device, repeat: int,
                     warmup: int) -> tuple[Timing, int]:
    """Seconds of one decode, and its peak allocation in bytes (separate, untimed run)."""

    def decode() -> None:
        with torch.inference_mode():
            vae.decode(latent)  # type: ignore[attr-defined]

    timing = measure(decode, device, repeat=repeat, warmup=warmup)
    return timing, device_peak(device, decode)


@dataclass(frozen=True, slots=True)
class GenerateResult:
    """Seconds per stage of one generation, its peak memory and the forecast for it.

    Attributes:
        stages: "text encode", "sampling", "decode", "export" → seconds.
        steps: sampling steps run.
        peak_ram: the process's peak resident set after the run (bytes).
        peak_vram: peak CUDA allocation during the run (0 on the CPU).
        forecast: what :mod:`studio.engine.memory_forecast` predicted (None if it cannot).
    """

    stages: dict[str, float]
    steps: int
    peak_ram: int
    peak_vram: int
    forecast: MemoryForecast | None = None
    video_path: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(self.stages.values())


def bench_request(spec: BenchConfig, steps: int, seed: int = 0) -> GenerationRequest:
    """The generate section's request: the spec's prompt, size, shift and fps, guidance 5."""
    return GenerationRequest(prompt=spec.prompt, seed=seed, steps=steps, guidance=5.0,
                             shift=spec.shift, width=spec.width, height=spec.height,
                             frames=spec.frames, fps=spec.fps).validate()  # fmt: skip


def median_generation(runs: list[GenerateResult]) -> GenerateResult:
    """Per-stage medians of several generations (peaks: the largest; the last run's video)."""
    if not runs:
        raise ValueError("no generation to summarise")
    stages = {name: statistics.median(r.stages[name] for r in runs) for name in runs[0].stages}
    last = runs[-1]
    return GenerateResult(stages, last.steps, max(r.peak_ram for r in runs),
                          max(r.peak_vram for r in runs), last.forecast,
                          last.video_path)  # fmt: skip


#: The service's stage events → the bench's row names ("loading" is not part of a generation).
_STAGE_ROWS = {"encoding": "text encode", "sampling": "sampling", "decoding": "decode",
               "exporting": "export"}  # fmt: skip


def bench_generate(model: LoadedModel, request: GenerationRequest, out_dir: Path | None = None,
                   policy: OffloadPolicy = OffloadPolicy.NONE) -> GenerateResult:
    """Run one job through :class:`~studio.service.generation.GenerationService` — the path
    users run, recipe, saved latent and MP4 included — timing each stage from its events.

    The job's files go to a temporary ``STUDIO_HOME``, so benchmarks never reach the history.
    """
    device = model.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    folder = out_dir or Path(tempfile.mkdtemp(prefix="studio-bench-"))
    stages: dict[str, float] = {}
    clock = _StageClock(device, stages)
    with tempfile.TemporaryDirectory(prefix="studio-bench-home-") as home, _studio_home(home):
        service = GenerationService(Settings(checkpoint_every=0), _fixed_cache(model))
        result = service.run("bench", request, clock.on_event, output_path=folder / "bench.mp4")
        clock.lap()
    vram = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
    memory = model.memory
    forecast = (forecast_memory(memory, request, device.type, policy) if memory is not None
                else None)
    return GenerateResult(stages, request.steps, peak_rss(), vram, forecast,
                          str(result.video_path))


def _fixed_cache(model: LoadedModel) -> ModelCache:
    """A cache that always hands out ``model`` (the bench loaded it, timed, beforehand)."""
    entry = ModelSet(id=model.id, family=model.family, variant=model.variant, complete=True)
    return ModelCache(Settings(), finder=lambda settings, model_id: entry,
                      loader=lambda *args, **options: model)


@contextlib.contextmanager
def _studio_home(path: str) -> Iterator[None]:
    previous = os.environ.get("STUDIO_HOME")
    os.environ["STUDIO_HOME"] = path
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("STUDIO_HOME", None)
        else:
            os.environ["STUDIO_HOME"] = previous


class _StageClock:
    """Seconds between the service's stage events, keyed by the bench's row names."""

    def __init__(self, device: torch.device, stages: dict[str, float]) -> None:
        self.device, self.stages = device, stages
        self._stage: str | None = None
        self._last = time.perf_counter()

    def on_event(self, event: object) -> None:
        if isinstance(event, StageEvent):
            self.lap()
            self._stage = _STAGE_ROWS.get(event.stage)

    def lap(self) -> None:
        synchronize(self.device)
        now = time.perf_counter()
        if self._stage is not None:
            self.stages[self._stage] = now - self._last
        self._last = now
