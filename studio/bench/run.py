"""What ``studio bench`` does, section by section, with the options it was given."""

from __future__ import annotations

import logging
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from typing import Any

import torch

from studio.bench.compare import run_diffusers_comparison
from studio.bench.flops import throughput
from studio.bench.measure import (
    GenerateResult,
    bench_denoiser,
    bench_generate,
    bench_request,
    bench_vae_decode,
    denoiser_inputs,
    median_generation,
    vae_latent,
)
from studio.bench.options import BenchOptions
from studio.bench.report import Row, ratio, seconds, size
from studio.bench.timing import synchronize
from studio.engine.fastpath import accelerate, usable_backends
from studio.engine.memory_forecast import forecasts_by_policy
from studio.engine.model import FrameLayout, LoadedModel
from studio.engine.offload import (
    AUTO,
    OffloadPolicy,
    apply_offload,
    choose_policy,
    free_device_memory,
)
from studio.engine.pipeline import with_layout
from studio.models.bench_config import BenchConfig, FlopCount
from studio.models.registry import family
from studio.service.catalog import find_model
from studio.service.settings import Settings

log = logging.getLogger(__name__)

#: Dense bf16 tensor-core peaks (TFLOP/s) by GPU name fragment, for the "× floor" column.
PEAK_TFLOPS = (("H100 PCIe", 756.0), ("H100", 989.4), ("H200", 989.4), ("A100", 312.0),
               ("L40S", 362.1), ("4090", 165.2), ("3090", 71.0))  # fmt: skip


def device_peak_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for fragment, peak in PEAK_TFLOPS if fragment in name), None)


def environment(options: BenchOptions) -> dict[str, Any]:
    env = {"torch": torch.__version__, "python": platform.python_version(),
           "machine": platform.machine(), "device": str(options.device),
           "dtype": str(options.dtype).removeprefix("torch."),
           "threads": torch.get_num_threads()}  # fmt: skip
    if options.device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(options.device)
    else:
        env["cpu"] = platform.processor() or platform.machine()
    return env


def load_model(options: BenchOptions, on: torch.device) -> LoadedModel:
    """Random weights for the spec, or a catalogue set loaded by its family: the one at
    ``options.model_path`` (any family) or the spec's built-in set."""
    if options.spec.build is not None and options.model_path is None:
        return options.spec.build(on, options.dtype)
    model_set = find_model(Settings(), model_id(options))
    return family(model_set.family).load(model_set, on, options.dtype)


def model_id(options: BenchOptions) -> str:
    return str(options.model_path) if options.model_path else options.spec.model_id


def prepare_model(options: BenchOptions) -> tuple[LoadedModel, dict[str, Any]]:
    """Load (timed: ``info["load_s"]``, the offload placement included), apply the offload
    policy (CUDA) and the fast path; report what was chosen."""
    info: dict[str, Any] = {}
    policy = OffloadPolicy.NONE
    synchronize(options.device)
    started = time.perf_counter()
    if options.device.type == "cuda" and options.offload != OffloadPolicy.NONE.value:
        model = load_model(options, torch.device("cpu"))
        memory = model.memory
        needs = forecasts_by_policy(memory, bench_request(options.spec, 1)) if memory else {}
        choice = choose_policy(needs, free_device_memory(options.device), options.offload)
        policy = choice.policy
        info["offload"] = {"policy": policy.value, "reason": choice.reason,
                           "forecast_vram_bytes": choice.need_bytes,
                           "free_vram_bytes": choice.free_bytes}  # fmt: skip
        model = apply_offload(model, policy, options.device)
    else:
        model = load_model(options, options.device)
    synchronize(options.device)
    info["load_s"] = time.perf_counter() - started
    backends = None if options.sdpa == AUTO else [options.sdpa]
    model = accelerate(model, backends=backends, compile=options.compile)
    info["policy"] = policy.value
    info.update(name=model.name, family=model.family, variant=model.variant)
    return model, info


def within(spec: BenchConfig, row: str, value: float) -> str:
    """The note on a row that has a target: "target ≤ 3 s: met" (or "MISSED")."""
    limit = spec.target(row)
    if limit is None:
        return ""
    return f"target ≤ {limit:g} s: {'met' if value <= limit else 'MISSED'}"


_FRESH_LOAD = """
import sys, time
import torch
started = time.perf_counter()
from studio.service.catalog import find_model, load_model
from studio.service.settings import Settings
load_model(find_model(Settings(), sys.argv[1]), torch.device(sys.argv[2]))
print(time.perf_counter() - started)
"""


def fresh_load(options: BenchOptions) -> float:
    """Seconds a new process takes to import the studio and load the model the way the app
    does (torch is imported first, untimed: an application has it loaded before)."""
    done = subprocess.run([sys.executable, "-c", _FRESH_LOAD, model_id(options),
                           str(options.device)],
                          capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"the fresh-process load failed: {done.stderr.strip()[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def run_load(options: BenchOptions, info: dict[str, Any]) -> tuple[list[Row], dict]:
    """The model load in this process (weights from disk, or made at random) and, for a
    built-in set, in a fresh process (its imports included) — the one its target is about."""
    spec = options.spec
    builtin = spec.build is None and options.model_path is None
    what = ("checkpoint" if options.model_path else f"{spec.model_id} model" if builtin
            else "random weights")  # fmt: skip
    rows = [Row("load", what, seconds(info["load_s"]))]
    data = {"load_s": info["load_s"]}
    if builtin:
        fresh = fresh_load(options)
        rows.append(Row("load", f"{spec.model_id} model, fresh process", seconds(fresh),
                        note=within(spec, "load", fresh)))
        data["fresh_process_load_s"] = fresh
    return rows, data


def _stage_row(stage: str, time_s: float, steps: int) -> Row:
    """A row for one stage of a generation; the sampling row names its steps and their cost."""
    if stage != "sampling":
        return Row("generate", stage, seconds(time_s))
    return Row("generate", f"sampling ({steps} steps)", seconds(time_s),
               note=f"{seconds(time_s / steps)} per step")


def run_generate(model: LoadedModel, options: BenchOptions, policy: str) -> tuple[list[Row], dict]:
    """One generation, or (``spec.generate_runs`` > 1) a first one, then the median of more."""
    spec = options.spec
    request = bench_request(spec, options.steps)

    def once() -> GenerateResult:
        return bench_generate(model, request, options.out_dir, OffloadPolicy(policy))

    first = once()
    runs = [once() for _ in range(spec.generate_runs - 1)] if spec.generate_runs > 1 else []
    result = median_generation(runs) if runs else first
    total = statistics.median(r.total for r in runs) if runs else first.total
    rows = [_stage_row(name, t, result.steps) for name, t in result.stages.items()]
    forecast = result.forecast
    note = ""
    if forecast is not None:
        note = f"forecast RAM {size(forecast.ram_bytes)}"
        if forecast.vram_bytes:
            note += f", VRAM {size(forecast.vram_bytes)} ({forecast.policy})"
    memory = f"RAM {size(result.peak_ram)}"
    if result.peak_vram:
        memory += f", VRAM {size(result.peak_vram)}"
    target = within(spec, "generate", total)
    label = f"total (median of {len(runs)})" if runs else "total"
    rows.append(Row("generate", label, seconds(total), memory,
                    "; ".join(n for n in (target, note) if n)))
    if runs:
        rows.insert(0, Row("generate", "first generation", seconds(first.total)))
    data = {"stages_s": result.stages, "steps": result.steps, "total_s": total,
            "first_total_s": first.total, "runs": len(runs) or 1,
            "peak_ram_bytes": result.peak_ram, "peak_vram_bytes": result.peak_vram,
            "forecast": forecast.to_dict() if forecast else None}  # fmt: skip
    return rows, data


def run_denoiser(model: LoadedModel, options: BenchOptions) -> tuple[list[Row], dict]:
    """One guided denoiser call (batch 2) at the configuration's size, with the model's own
    context shape; FLOPs and throughput when the configuration runs its own model."""
    spec = options.spec
    context = model.text_encoder.encode([spec.prompt])
    latent_shape = model.geometry.latent_shape(spec.frames, spec.height, spec.width, batch=2)
    inputs = denoiser_inputs(latent_shape, tuple(context.shape[1:]), options.device,
                             options.dtype)  # fmt: skip
    denoise = model.denoiser
    if model.capabilities.frame_layout:  # LTX-Video places tokens in seconds: it needs the fps
        denoise = with_layout(denoise, FrameLayout(spec.fps, latent_shape[2]))
    timing = bench_denoiser(denoise, inputs, options.device, options.repeat, options.warmup)
    rows = [Row("denoiser step", "ours (batch 2, guided)", seconds(timing.median))]
    data: dict[str, Any] = {"timing": timing.to_dict(), "tokens": spec.tokens}
    if spec.flops is not None and options.model_path is None:
        flops = spec.flops(spec.tokens, context.shape[1], 2, model.supports_image)
        rows[0], extra = _throughput_row(rows[0], flops, timing.median, options)
        data.update(flops=flops.to_dict(), **extra)
    if options.compile and timing.warmup:
        rows.append(Row("denoiser step", "first call (compile)", seconds(timing.warmup[0])))
    return rows, data


def _throughput_row(row: Row, flops: FlopCount, median_s: float, options: BenchOptions
                    ) -> tuple[Row, dict[str, Any]]:
    peak = options.peak_tflops or device_peak_tflops(options.device)
    speed = throughput(flops.total, median_s, peak)
    note = f"{flops.total / 1e12:.3g} TFLOP, {speed.tflops:.3g} TFLOP/s"
    if speed.utilisation is not None:
        note += f", {speed.utilisation:.0%} of {peak:g} peak, {speed.times_floor:.2f}× floor"
    return replace(row, note=note), {"tflops": speed.tflops, "utilisation": speed.utilisation,
                                     "floor_s": speed.floor_s, "times_floor": speed.times_floor}


def run_vae(model: LoadedModel, options: BenchOptions) -> tuple[list[Row], dict]:
    s = options.spec
    latent = vae_latent(model.geometry.latent_shape(s.vae_frames, s.vae_height, s.vae_width),
                        options.device)
    timing, peak = bench_vae_decode(model.vae, latent, options.device, options.repeat,
                                    options.warmup)
    rows = [Row("VAE decode", f"ours ({s.vae_width}×{s.vae_height}×{s.vae_frames})",
                seconds(timing.median), f"peak {size(peak)}")]
    return rows, {"timing": timing.to_dict(), "peak_bytes": peak}


def run_sdpa(model: LoadedModel, options: BenchOptions) -> tuple[list[Row], dict]:
    attention = model.modules.attention
    if attention is None:
        return [Row("attention", "SDPA backend: chosen per call",
                    note="the model names no attention shape")], {"usable": [], "chosen": AUTO}
    usable = usable_backends(options.device, options.dtype, attention.num_heads,
                             attention.head_dim)
    chosen = usable[0] if options.sdpa == AUTO and usable else options.sdpa
    note = f"usable: {', '.join(usable) or 'none'}"
    return [Row("attention", f"SDPA backend: {chosen}", note=note)], {
        "usable": usable, "chosen": chosen}


def run_comparison(options: BenchOptions, ours: dict[str, Any]) -> tuple[list[Row], dict]:
    what = [w for w in ("denoiser", "vae") if w in options.what]
    data = run_diffusers_comparison(options, what)
    if "error" in data:
        return [Row("diffusers", "not compared", note=data["error"])], data
    rows = []
    for key, section in (("denoiser", "denoiser step"), ("vae", "VAE decode")):
        if key not in data:
            continue
        part = data[key]
        memory = size(part.get("diffusers_peak_bytes")) if "diffusers_peak_bytes" in part else ""
        rows.append(Row(section, f"diffusers {data['diffusers_version']}",
                        seconds(part["diffusers"]["median_s"]), memory and f"peak {memory}"))
        rows.append(Row(section, "ours / diffusers (paired runs)", ratio(part["ratio"]),
                        note=f"ours {seconds(part['ours']['median_s'])} in that run; "
                        f"max |Δ| {part['max_abs_difference']:.1e}"))
    return rows, data
