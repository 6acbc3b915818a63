"""Sections 2–4 of ``gpu_check.py``: speed against diffusers, memory against the forecast,
and step caching.

Sizes on CUDA are picked largest first among those whose estimated time fits what the budget
leaves (:func:`~gpu_check_common.pick`). The estimates are for an H100 and are **guesses** (no GPU
was available when this was written); the table's footer prints each section's real time, which
is what to correct them with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from compare_diffusers import compare_dit, compare_vae
from gpu_check_common import (
    CACHE_FORWARDS_MAX,
    CACHE_PSNR_DB,
    CACHE_SPEEDUP_MIN,
    FORECAST_SLACK,
    INFO,
    SKIP,
    SPEED_RATIO_MAX,
    STAGE_TOLERANCE,
    Context,
    Row,
    cuda_verdict,
    free_device,
    pick,
    verdict,
)
from gpu_check_ltx import ltx_memory_subject, ltx_speed_dit, ltx_speed_vae

from studio.bench.measure import bench_request, device_peak
from studio.bench.report import seconds, size
from studio.bench.timing import compare, paired_ratio, synchronize
from studio.engine.fastpath import accelerate
from studio.engine.memory_forecast import forecast_memory, stage_bytes
from studio.engine.model import LoadedModel
from studio.engine.offload import OffloadPolicy
from studio.engine.pipeline import (
    GenerationPlan,
    decode_latent,
    generate,
    plan_generation,
    sample_plan,
)
from studio.engine.request import GenerationRequest
from studio.engine.step_cache import DEFAULT_THRESHOLD, StepCacheHook
from studio.models.demo.analysis import psnr
from studio.models.demo.bench import BENCH_CONFIGS as DEMO_CONFIGS
from studio.models.demo.loader import load_demo_model
from studio.models.registry import family
from studio.models.wan.bench_configs import bench_config
from studio.models.wan.bench_sizes import SIZES
from studio.models.wan.random_model import random_model

#: Bench sizes for the DiT comparison and the VAE comparison (ours and diffusers: build, check,
#: warm-up, repeats), largest first, with estimated seconds on an H100. A dry run times "tiny".
DIT_SIZES = (("wan22-5b", 90.0), ("wan21-1.3b", 60.0), ("small", 15.0))
VAE_SIZES = (("wan22-5b", 240.0), ("wan21-1.3b", 100.0), ("small", 15.0))
#: Sizes for the memory section (random UMT5-XXL included at native size), estimated seconds.
MEMORY_SIZES = (("wan21-1.3b", 120.0), ("small", 20.0))
#: The videos a dry run generates (the demo model's smallest sizes that keep the decode stage,
#: not fixed costs, the peak).
DRY_MEMORY = {"width": 64, "height": 64, "frames": 9}
DRY_CACHING = {"width": 32, "height": 32, "frames": 5}


def runs(ctx: Context) -> tuple[int, int]:
    """(repeat, warm-up) of each timed comparison: one pair after one warm-up in a dry run
    (its timings are not judged)."""
    return (1, 1) if ctx.dry else (3, 1)


def bench_size(ctx: Context, options: tuple[tuple[str, float], ...]) -> str | None:
    """The bench size to time: ``tiny`` in a dry run, else the largest of ``options`` that
    fits the time left (None: none does)."""
    return "tiny" if ctx.dry else pick(options, ctx.left_s())


# --- 2. speed ---------------------------------------------------------------------------------


def speed_dit(ctx: Context) -> list[Row]:
    """Section 2a: one guided forward of our Wan DiT (batch 2) against diffusers' on the same
    weights, in the Wan family's precision on the device (bf16 on CUDA, fp32 on a CPU)."""
    name = bench_size(ctx, DIT_SIZES)
    if name is None:
        return [Row("DiT forward", "no size fits the time left", "budget", SKIP)]
    dtype = family("wan").dtype_for(ctx.device)
    result = compare_dit(SIZES[name], ctx.device, dtype, *runs(ctx))
    precision = str(dtype).removeprefix("torch.")
    return [ratio_row(ctx, f"DiT forward {precision}, {name}", result)] + ltx_speed_dit(ctx)


def speed_vae(ctx: Context) -> list[Row]:
    """Section 2b: one VAE decode (float32, as the studio runs it) against diffusers'."""
    name = bench_size(ctx, VAE_SIZES)
    if name is None:
        return [Row("VAE decode", "no size fits the time left", "budget", SKIP)]
    result = compare_vae(SIZES[name], ctx.device, *runs(ctx))
    ours, theirs = result["ours_peak_bytes"], result["diffusers_peak_bytes"]
    return [ratio_row(ctx, f"VAE decode float32, {name}", result),
            Row(f"VAE decode peak, {name}: ours / diffusers", f"{size(ours)} / {size(theirs)}",
                "ours ≤ diffusers", cuda_verdict(ctx, ours <= theirs))] + ltx_speed_vae(ctx)


def ratio_row(ctx: Context, what: str, result: dict[str, Any]) -> Row:
    """A compare_diffusers result as "ours / diffusers" (median of the paired ratios)."""
    value = (f"{result['ratio']:.2f}× (ours {seconds(result['ours']['median_s'])}, diffusers "
             f"{seconds(result['diffusers']['median_s'])}; max |Δ| "
             f"{result['max_abs_difference']:.1e})")  # fmt: skip
    return Row(f"{what}: ours / diffusers", value, f"≤ {SPEED_RATIO_MAX:g}× paired",
               cuda_verdict(ctx, result["ratio"] <= SPEED_RATIO_MAX))


# --- 3. memory --------------------------------------------------------------------------------


def memory_subject(ctx: Context) -> tuple[LoadedModel, GenerationRequest, bool] | None:
    """The model and request the memory section measures, and whether they are native (where
    the fixed CUDA context is small beside the rest); None when no size fits the budget."""
    if ctx.dry:
        model = load_demo_model(None, ctx.device)
        return model, bench_request(DEMO_CONFIGS[0], 2).with_changes(**DRY_MEMORY), False
    name = pick(MEMORY_SIZES, ctx.left_s())
    if name is None:
        return None
    spec = SIZES[name]
    model = accelerate(random_model(spec, ctx.device, family("wan").dtype_for(ctx.device)))
    return model, bench_request(bench_config(spec), 2), spec.cuda_only


def memory(ctx: Context) -> list[Row]:
    """Section 3: a generation's (2 steps, guided) peak device memory against the forecast,
    for the demo (dry) or Wan model, then for LTX-Video."""
    rows = []
    for subject_of in (memory_subject, ltx_memory_subject):
        subject = subject_of(ctx)
        if subject is None:
            rows.append(Row("generation peak", "no size fits the time left", "budget", SKIP))
        else:
            rows += memory_rows(ctx, *subject)
        del subject  # the device total of the next model must not count this one
        free_device(ctx.device)
    return rows


def memory_rows(ctx: Context, model: LoadedModel, request: GenerationRequest,
                native: bool) -> list[Row]:  # fmt: skip
    """The device total and the live-tensor peak of one generation against the forecast."""
    what = f"{model.name}, {request.width}×{request.height}×{request.frames}"
    rows = [total_row(ctx, model, request, native, what)]
    live = device_peak(ctx.device, lambda: generate(model, request))
    st = stage_bytes(model.memory, request)  # what each stage allocates beyond the weights
    forecast = max(st.encode, st.condition, st.sample, st.decode)
    ok = abs(forecast / max(live, 1) - 1.0) <= STAGE_TOLERANCE
    rows.append(Row(f"{what}: live-tensor peak vs forecast stages",
                    f"{size(live)} / {size(forecast)} ({forecast / max(live, 1):.2f}×)",
                    f"forecast within ±{STAGE_TOLERANCE:.0%} of peak", verdict(ok)))
    return rows


def total_row(ctx: Context, model: LoadedModel, request: GenerationRequest, native: bool,
              what: str) -> Row:
    """What the device held at the generation's peak (the allocator's reserved peak plus what
    lives outside it: CUDA context, library workspaces) against the VRAM forecast, which counts
    both. Judged at native sizes: at small ones the forecast's fixed 0.5 GiB context dominates."""
    check = f"{what}: device total vs VRAM forecast"
    if ctx.device.type != "cuda":
        return Row(check, "—", "CUDA only", SKIP)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(ctx.device)
    generate(model, request)
    synchronize(ctx.device)
    free, total = torch.cuda.mem_get_info(ctx.device)
    peak = torch.cuda.max_memory_reserved(ctx.device) + (
        total - free - torch.cuda.memory_reserved(ctx.device))
    forecast = forecast_memory(model.memory, request, "cuda", OffloadPolicy.NONE).vram_bytes
    ok = peak <= forecast <= FORECAST_SLACK * peak
    return Row(check, f"{size(peak)} / {size(forecast)} ({forecast / peak:.2f}×)",
               f"peak ≤ forecast ≤ {FORECAST_SLACK:g} × peak", verdict(ok) if native else INFO)


# --- 4. caching -------------------------------------------------------------------------------


@dataclass
class SampleRun:
    """One sampling run of ``plan`` (text encoding included) with step caching at
    ``threshold`` (0: every forward runs); keeps its final latent and forward count."""

    model: LoadedModel
    plan: GenerationPlan
    threshold: float
    latent: torch.Tensor | None = None
    forwards: int = 0

    def __call__(self) -> None:
        hook = (StepCacheHook(self.model.cache_calibration, self.plan.schedule, self.threshold)
                if self.threshold > 0 else None)  # fmt: skip
        self.latent = sample_plan(self.model, self.plan, wrap=hook)
        self.forwards = hook.stats.forwards if hook else self.plan.request.steps


def caching(ctx: Context) -> list[Row]:
    """Section 4: the demo model (the family that ships a calibration) at its own settings,
    with and without step caching at the default threshold, interleaved."""
    model = accelerate(load_demo_model(None, ctx.device))
    request = bench_request(DEMO_CONFIGS[0], DEMO_CONFIGS[0].steps)
    if ctx.dry:
        request = request.with_changes(**DRY_CACHING)
    plan = plan_generation(model, request)
    plain, cached = SampleRun(model, plan, 0.0), SampleRun(model, plan, DEFAULT_THRESHOLD)
    repeat, warmup = runs(ctx)
    times = compare({"plain": plain, "cached": cached}, ctx.device, repeat=repeat, warmup=warmup)
    speedup = paired_ratio(times["plain"], times["cached"])
    reference = decode_latent(model, plain.latent)
    db = psnr(reference, ctx.device_frames(decode_latent(model, cached.latent)))
    what = f"demo, {request.steps} steps, threshold {DEFAULT_THRESHOLD:g}"
    return [Row(f"{what}: forwards run", f"{cached.forwards} of {request.steps}",
                f"≤ {CACHE_FORWARDS_MAX}", verdict(cached.forwards <= CACHE_FORWARDS_MAX)),
            Row(f"{what}: sampling speed-up (paired)", f"{speedup:.2f}×",
                f"≥ {CACHE_SPEEDUP_MIN:g}×", cuda_verdict(ctx, speedup >= CACHE_SPEEDUP_MIN)),
            Row(f"{what}: frame PSNR against no caching", f"{db:.1f} dB",
                f"≥ {CACHE_PSNR_DB:g} dB", verdict(db >= CACHE_PSNR_DB))]  # fmt: skip
