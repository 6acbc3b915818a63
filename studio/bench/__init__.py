"""``studio bench``: how long a load, a step, a decode and a whole clip take, and how much memory.

Every run first times the model load. Sections (``--what``): ``generate`` (text encode /
sampling / decode / export of one clip, peak RAM and VRAM against the memory forecast; the demo
configuration times a first clip, then the median of two more, against its targets),
``denoiser`` (one guided step, batch 2, with achieved TFLOP/s from the analytic FLOP count),
``vae`` (one decode and its peak allocation), ``sdpa`` (which attention kernels run, CUDA).
``--compare-diffusers`` times diffusers' implementations on the same weights in the same run (a
child process; diffusers is never imported here).

The lead adds ``add_bench_parser(sub)`` to ``studio/cli.py``; nothing here imports Qt or heavy
modules until the command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from studio.errors import InvalidRequest

SECTIONS = ("generate", "denoiser", "vae", "sdpa")


def add_bench_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``studio bench`` on the CLI's subparsers; returns its parser."""
    p = subparsers.add_parser("bench", help="measure step, decode and generation time and memory")
    p.add_argument("--config", default="small",
                   help="tiny, small (CPU-sized), demo (the shipped demo model, trained weights) "
                   "or wan21-1.3b, wan22-5b (CUDA; native sizes)")
    p.add_argument("--model", type=Path,
                   help="a model folder of any family, timed through the catalogue as the app "
                   "loads it (default: the configuration's random or built-in weights)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16"),
                   help="DiT and text encoder precision (auto: float32 on CPU, bfloat16 on CUDA)")
    p.add_argument("--what", default="generate,denoiser,vae,sdpa",
                   help=f"comma-separated sections: {', '.join(SECTIONS)}")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per measurement")
    p.add_argument("--warmup", type=int, default=1, help="untimed-in-median runs first")
    p.add_argument("--steps", type=int,
                   help="sampling steps of the generate section (default: 20 for demo, else 2)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    p.add_argument("--compile", action="store_true", help="torch.compile the DiT blocks")
    p.add_argument("--sdpa", default="auto",
                   choices=("auto", "flash", "cudnn", "efficient", "math"),
                   help="attention kernel (CUDA)")
    p.add_argument("--offload", default="none",
                   help="offload policy on CUDA: auto, none, text-encoder, model, blocks")
    p.add_argument("--peak-tflops", type=float, help="device peak for the × floor column")
    p.add_argument("--compare-diffusers", action="store_true",
                   help="also time diffusers' denoiser and VAE of the configuration's family "
                   "(Wan, Open-Sora 2.0, LTX-Video) on the same weights")
    p.add_argument("--json", type=Path, help="also write the results to this JSON file")
    p.add_argument("--out", type=Path, help="folder for the generated clip (default: temporary)")
    p.set_defaults(func=cmd_bench)
    return p


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the benchmark, print the table, write JSON when asked; returns the exit status."""
    from studio.bench.main import bench_main

    what = frozenset(w.strip() for w in args.what.split(",") if w.strip())
    unknown = sorted(what - set(SECTIONS))
    if unknown:
        raise InvalidRequest("what", f"unknown section(s) {', '.join(unknown)}",
                             f"use {', '.join(SECTIONS)}")
    return bench_main(args, what)
