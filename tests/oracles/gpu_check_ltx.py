"""LTX-Video's rows of ``gpu_check.py``: speed against diffusers (transformer step, VAE decode),
memory against the forecast, and the native 2B against diffusers' ``LTXPipeline``.

The step and decode rows run ``compare_ltx.py`` in process, at the largest LTX bench size that
fits the time left (``ltx-tiny`` in a dry run). The pipeline section builds the 2B at its
native 768×512, 121 frames with random weights (the 0.9.1 VAE) through the family's own
assembly, hands the same modules to diffusers' ``LTXPipeline`` (transformer and VAE renamed,
T5 and tokenizer shared) and times one 40-step generation of each, classifier-free guidance
only (``LTXPipeline`` has no spatio-temporal guidance, so ours runs with STG 0), after a short
warm-up of each. A dry run does the same on ``ltx-tiny`` with 2 steps; its timings are recorded.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from compare_ltx import compare_transformer, compare_vae
from gpu_check_common import SKIP, SPEED_RATIO_MAX, Context, Row, cuda_verdict, pick

from studio.bench.measure import bench_request
from studio.bench.report import seconds, size
from studio.bench.timing import synchronize
from studio.engine.fastpath import accelerate
from studio.engine.model import DIT, TEXT_ENCODER, VAE, LoadedModel
from studio.engine.pipeline import generate
from studio.engine.request import GenerationRequest
from studio.models.ltx.bench_configs import BENCH_CONFIGS
from studio.models.ltx.bench_sizes import DECODE_TIMESTEP, FPS, SIZES
from studio.models.ltx.random_model import DIFFUSERS_SCHEDULER
from studio.models.ltx.text import TEXT_LEN
from studio.models.ltx.transformer_keys import diffusers_names
from studio.models.ltx.vae_adapter import DECODE_NOISE_SCALE
from studio.models.ltx.vae_diffusers import config_to_diffusers
from studio.models.ltx.vae_keys import diffusers_names as vae_diffusers_names
from studio.models.registry import family

#: LTX bench sizes for the step and decode comparisons, largest first, estimated H100 seconds.
DIT_SIZES = (("ltx-2b-768x512", 45.0), ("ltx-small", 10.0))
VAE_SIZES = (("ltx-2b-768x512", 60.0), ("ltx-small", 10.0))
MEMORY_SIZES = (("ltx-2b-768x512", 60.0), ("ltx-small", 10.0))
#: The pipeline comparison: the published 2B's native size and the dev configs' 40 steps.
PIPELINE_SIZE, PIPELINE_STEPS, WARMUP_STEPS = "ltx-2b-768x512", 40, 2
#: Estimated H100 seconds of the pipeline section (two 40-step runs, two warm-ups, the build).
PIPELINE_S = 120.0


def ltx_size(ctx: Context, options: tuple[tuple[str, float], ...]) -> str | None:
    """``ltx-tiny`` in a dry run, else the largest of ``options`` that fits the time left."""
    return "ltx-tiny" if ctx.dry else pick(options, ctx.left_s())


def runs(ctx: Context) -> tuple[int, int]:
    return (1, 1) if ctx.dry else (3, 1)


def ratio_row(ctx: Context, what: str, result: dict[str, Any]) -> Row:
    """A compare_ltx result as "ours / diffusers" (median of the paired ratios)."""
    value = (f"{result['ratio']:.2f}× (ours {seconds(result['ours']['median_s'])}, diffusers "
             f"{seconds(result['diffusers']['median_s'])}; max |Δ| "
             f"{result['max_abs_difference']:.1e})")  # fmt: skip
    return Row(
        f"{what}: ours / diffusers",
        value,
        f"≤ {SPEED_RATIO_MAX:g}× paired",
        cuda_verdict(ctx, result["ratio"] <= SPEED_RATIO_MAX),
    )


def ltx_speed_dit(ctx: Context) -> list[Row]:
    """One guided LTX transformer forward (batch 2, per-token t, text mask) against diffusers',
    in the family's precision on the device."""
    name = ltx_size(ctx, DIT_SIZES)
    if name is None:
        return [Row("ltx transformer step", "no size fits the time left", "budget", SKIP)]
    dtype = family("ltx").dtype_for(ctx.device)
    result = compare_transformer(SIZES[name], ctx.device, dtype, *runs(ctx))
    precision = str(dtype).removeprefix("torch.")
    return [ratio_row(ctx, f"ltx transformer step {precision}, {name}", result)]


def ltx_speed_vae(ctx: Context) -> list[Row]:
    """One LTX VAE decode (float32, as the studio runs it) against diffusers'."""
    name = ltx_size(ctx, VAE_SIZES)
    if name is None:
        return [Row("ltx VAE decode", "no size fits the time left", "budget", SKIP)]
    result = compare_vae(SIZES[name], ctx.device, *runs(ctx))
    ours, theirs = result["ours_peak_bytes"], result["diffusers_peak_bytes"]
    return [ratio_row(ctx, f"ltx VAE decode float32, {name}", result),
            Row(f"ltx VAE decode peak, {name}: ours / diffusers",
                f"{size(ours)} / {size(theirs)}", "ours ≤ diffusers",
                cuda_verdict(ctx, ours <= theirs))]  # fmt: skip


def ltx_memory_subject(ctx: Context) -> tuple[LoadedModel, GenerationRequest, bool] | None:
    """The random LTX model and 2-step request the memory section measures, and whether it is
    native; None when no size fits the budget."""
    name = ltx_size(ctx, MEMORY_SIZES)
    if name is None:
        return None
    config = next(c for c in BENCH_CONFIGS if c.name == name)
    model = accelerate(config.build(ctx.device, family("ltx").dtype_for(ctx.device)))
    request = bench_request(config, 2)
    if ctx.dry:  # the smallest clip, so that the decode (not fixed costs) sets the peak
        request = request.with_changes(width=64, height=64, frames=9)
    return model, request, config.cuda_only


def pipeline_pair(model: LoadedModel) -> Any:
    """diffusers' ``LTXPipeline`` over ``model``'s weights: the transformer and VAE renamed
    into diffusers' classes (strict), the T5 encoder and tokenizer shared."""
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXPipeline,
        LTXVideoTransformer3DModel,
    )

    ours, vae = model.modules.parts[DIT], model.modules.parts[VAE]
    config = {k: v for k, v in ours.config.to_diffusers().items() if not k.startswith("_")}
    with torch.device(model.device):
        transformer = LTXVideoTransformer3DModel(**config)
        twin_vae = AutoencoderKLLTXVideo(**config_to_diffusers(vae.config))
    transformer.load_state_dict(diffusers_names(ours.state_dict()), strict=True)
    twin_vae.load_state_dict(vae_diffusers_names(vae.state_dict(), vae.config), strict=True)
    scheduler = FlowMatchEulerDiscreteScheduler.from_config(
        {k: v for k, v in DIFFUSERS_SCHEDULER.items() if not k.startswith("_")}
    )
    return LTXPipeline(
        scheduler=scheduler,
        vae=twin_vae.eval().requires_grad_(False),
        text_encoder=model.modules.parts[TEXT_ENCODER],
        tokenizer=model.text_encoder.tokenizer,
        transformer=transformer.to(model.dtype).eval().requires_grad_(False),
    )


def timed(device: torch.device, fn: Any) -> float:
    synchronize(device)
    started = time.perf_counter()
    with torch.inference_mode():
        fn()
    synchronize(device)
    return time.perf_counter() - started


def ltx_pipeline(ctx: Context) -> list[Row]:
    """The 2B at 768×512×121, 40 steps, CFG 3: our whole generation against ``LTXPipeline``'s
    (text encoding, sampling, decode at timestep 0.05 with noise 0.025) on the same weights."""
    name, steps = ("ltx-tiny", 2) if ctx.dry else (PIPELINE_SIZE, PIPELINE_STEPS)
    config = next(c for c in BENCH_CONFIGS if c.name == name)
    model = accelerate(config.build(ctx.device, family("ltx").dtype_for(ctx.device)))
    pipe = pipeline_pair(model)
    request = bench_request(config, steps).with_changes(guidance=3.0, stg=0.0)

    def ours(n: int) -> float:
        return timed(ctx.device, lambda: generate(model, request.with_changes(steps=n)))

    def theirs(n: int) -> float:
        generator = torch.Generator(ctx.device).manual_seed(0)
        return timed(
            ctx.device,
            lambda: pipe(
                prompt=request.prompt,
                negative_prompt=request.negative_prompt or "",
                width=request.width,
                height=request.height,
                num_frames=request.frames,
                frame_rate=int(FPS),
                num_inference_steps=n,
                guidance_scale=request.guidance,
                decode_timestep=DECODE_TIMESTEP,
                decode_noise_scale=DECODE_NOISE_SCALE,
                max_sequence_length=TEXT_LEN,
                output_type="pt",
                generator=generator,
            ),
        )

    ours(WARMUP_STEPS), theirs(WARMUP_STEPS)  # kernels chosen, caches filled, on both sides
    mine, diffusers = ours(steps), theirs(steps)
    what = f"ltx {name}, {request.width}×{request.height}×{request.frames}, {steps} steps, CFG"
    value = f"{mine / diffusers:.2f}× (ours {seconds(mine)}, LTXPipeline {seconds(diffusers)})"
    verdict = cuda_verdict(ctx, mine <= SPEED_RATIO_MAX * diffusers)
    return [
        Row(
            f"{what}: generation ours / LTXPipeline",
            value,
            f"≤ {SPEED_RATIO_MAX:g}× (one run each)",
            verdict,
        )
    ]
