"""``studio bench`` from parsed arguments to the printed table and the JSON file."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from typing import Any

import torch

from studio.bench.configs import get_config
from studio.bench.options import BenchOptions
from studio.bench.report import Row, format_table, write_json
from studio.bench.run import (
    environment,
    prepare_model,
    run_comparison,
    run_denoiser,
    run_generate,
    run_load,
    run_sdpa,
    run_vae,
)
from studio.engine.offload import parse_policy
from studio.errors import InvalidRequest

log = logging.getLogger(__name__)


def resolve_options(args: argparse.Namespace, what: frozenset[str]) -> BenchOptions:
    """Check the arguments against the machine: a CUDA-only size or ``--device cuda`` without a
    GPU is refused with a hint, ``auto`` picks CUDA when there is one."""
    spec = get_config(args.config)
    cuda = torch.cuda.is_available()
    if args.device == "cuda" and not cuda:
        raise InvalidRequest("device", "CUDA was asked for but no CUDA GPU is available",
                             "use --device cpu (with --config tiny or small)")
    device = torch.device("cuda" if args.device == "auto" and cuda else
                          "cpu" if args.device == "auto" else args.device)
    if spec.cuda_only and device.type != "cuda":
        raise InvalidRequest("config", f"{spec.name} runs at its native size on CUDA only",
                             "use --config small on the CPU, or run on a CUDA GPU")
    if args.dtype == "auto":
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    else:
        dtype = getattr(torch, args.dtype)
    steps = spec.steps if args.steps is None else args.steps
    if args.repeat < 1 or args.warmup < 0 or steps < 1:
        raise InvalidRequest("repeat", "--repeat and --steps must be ≥ 1, --warmup ≥ 0",
                             f"use the defaults (3, 1, {spec.steps})")
    parse_policy(args.offload)
    if device.type != "cuda":
        what = what - {"sdpa"}
    return BenchOptions(
        spec=spec, device=device, dtype=dtype, what=what, repeat=args.repeat, warmup=args.warmup,
        steps=steps, compile=args.compile, sdpa=args.sdpa, offload=args.offload,
        peak_tflops=args.peak_tflops, model_path=args.model, out_dir=args.out,
        compare_diffusers=args.compare_diffusers, threads=args.threads,
    )  # fmt: skip


def run_sections(options: BenchOptions) -> tuple[list[Row], dict[str, Any]]:
    """Run the chosen sections in a fixed order (generate first, so the process's peak RAM is
    the generation's)."""
    model, info = prepare_model(options)
    rows, load = run_load(options, info)
    result: dict[str, Any] = {"model": info, "load": load}
    if "generate" in options.what:
        new, result["generate"] = run_generate(model, options, info["policy"])
        rows += new
    if "sdpa" in options.what:
        new, result["sdpa"] = run_sdpa(model, options)
        rows += new
    if "denoiser" in options.what:
        new, result["denoiser"] = run_denoiser(model, options)
        rows += new
    if "vae" in options.what:
        new, result["vae"] = run_vae(model, options)
        rows += new
    if options.compare_diffusers:
        new, result["diffusers"] = run_comparison(options, result)
        rows += new
    return rows, result


def describe(options: BenchOptions, model: dict[str, Any]) -> str:
    """The configuration in one line: the spec's, or, for ``--model``, the set that was loaded
    at the spec's sizes."""
    spec = options.spec
    if options.model_path is None:
        return spec.describe()
    return (f"{model['name']} ({model['family']} {model['variant']}, {options.model_path}); "
            f"{spec.width}×{spec.height}×{spec.frames}; VAE decode at "
            f"{spec.vae_width}×{spec.vae_height}×{spec.vae_frames}")


def bench_main(args: argparse.Namespace, what: frozenset[str]) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    options = resolve_options(args, what)
    command = "studio " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else ""
    rows, result = run_sections(options)
    env = environment(options)
    spec = describe(options, result["model"])
    title = (f"{spec}\n{env['device']} · {env['dtype']} · torch {env['torch']}"
             f" · {env['threads']} threads" + (f" · {env['gpu']}" if "gpu" in env else ""))
    print(format_table(title, rows))
    result.update({"config": options.spec.name, "spec": spec,
                   "environment": env, "command": command})  # fmt: skip
    if args.json is not None:
        write_json(args.json, result)
        print(f"wrote {args.json}")
    return 0
