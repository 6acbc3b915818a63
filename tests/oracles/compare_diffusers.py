"""Time the studio's Wan DiT and VAE against diffusers' on the same weights, in one process.

diffusers is a test/bench extra and must never be imported under ``studio/`` (the layering test
enforces it), so this comparison lives here; ``studio bench --compare-diffusers`` runs it as a
subprocess and reads the JSON it prints as its last line. It can also be run by hand::

    python tests/oracles/compare_diffusers.py --config small --device cpu --repeat 3

Both models are built from the same seeded random weights (ours first, then copied into
``WanTransformer3DModel`` / ``AutoencoderKLWan`` through the studio's key-layout table, each
tensor keeping its dtype), their outputs are compared, and their runs are interleaved so that
both see the same machine load. Each side is called the way its pipeline calls it: ours through
``WanDiT.velocity`` (the engine's denoiser call: per-token times), diffusers with the timestep
``WanPipeline`` passes (one per sample for Wan 2.1; per token for Wan 2.2 TI2V).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from studio.bench.measure import (  # noqa: E402
    denoiser_inputs,
    device_peak,
    vae_latent,
)
from studio.bench.timing import compare, paired_ratio  # noqa: E402
from studio.models.wan.bench_sizes import SIZES, WanBenchSizes  # noqa: E402
from studio.models.wan.keys import identify_layout, key_map  # noqa: E402
from studio.models.wan.random_model import random_dit, random_vae  # noqa: E402

MISSING_DIFFUSERS = 3  # exit status when diffusers cannot be imported


def mapped_state(ours: torch.nn.Module, theirs: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Our tensors under diffusers' names (through the studio's diffusers → original table)."""
    keys = list(theirs.state_dict())
    layout = identify_layout(keys)
    assert layout is not None, "diffusers' own keys must be recognised"
    names = key_map(layout, keys)
    state = ours.state_dict()
    return {key: state[names[key]] for key in keys}


def diffusers_dit(spec: WanBenchSizes, ours: torch.nn.Module, device: torch.device) -> Any:
    from diffusers import WanTransformer3DModel

    c = spec.dit
    with torch.device(device):  # non-persistent buffers (RoPE tables) must be real
        model = WanTransformer3DModel(
            patch_size=c.patch_size, num_attention_heads=c.num_heads, attention_head_dim=c.head_dim,
            in_channels=c.in_dim, out_channels=c.out_dim, text_dim=c.text_dim,
            freq_dim=c.freq_dim, ffn_dim=c.ffn_dim, num_layers=c.num_layers,
            cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=c.eps,
        )  # fmt: skip
    model.load_state_dict(mapped_state(ours, model), strict=True, assign=True)
    # As WanPipeline loads it: the whole model in the compute dtype, then the modules diffusers
    # keeps in float32 (our float32 time MLP and norms copied in unchanged would mix dtypes).
    model.to(ours.dtype)
    for name, module in model.named_modules():
        if any(part in name.split(".") for part in model._keep_in_fp32_modules or ()):
            module.float()
    return model.to(device).eval().requires_grad_(False)


def diffusers_vae(spec: WanBenchSizes, ours: torch.nn.Module, device: torch.device) -> Any:
    from diffusers import AutoencoderKLWan

    c = spec.vae
    common = dict(base_dim=c.dim, z_dim=c.z_dim, dim_mult=list(c.dim_mult),
                  num_res_blocks=c.num_res_blocks, temperal_downsample=list(c.temporal_downsample),
                  latents_mean=list(c.latent_mean), latents_std=list(c.latent_std))  # fmt: skip
    with torch.device(device):
        if c.version == "2.1":
            model = AutoencoderKLWan(**common)
        else:
            model = AutoencoderKLWan(decoder_base_dim=c.decoder_dim, is_residual=True,
                                     in_channels=12, out_channels=12, patch_size=2,
                                     scale_factor_spatial=16, **common)  # fmt: skip
    model.load_state_dict(mapped_state(ours, model), strict=True, assign=True)
    return model.to(device).eval().requires_grad_(False)


def compare_dit(spec: WanBenchSizes, device: torch.device, dtype: torch.dtype, repeat: int,
                warmup: int) -> dict[str, Any]:
    ours = random_dit(spec, device, dtype)
    theirs = diffusers_dit(spec, ours, device)
    shape = spec.geometry.latent_shape(spec.frames, spec.height, spec.width, batch=2)
    inputs = denoiser_inputs(shape, (spec.text_len, spec.dit.text_dim), device, dtype)
    batch = inputs.x.shape[0]
    per_token = spec.dit.in_dim == 48  # WanPipeline expands timesteps for TI2V only
    tokens = spec.tokens
    timestep = (torch.full((batch, tokens), 500.0, device=device) if per_token
                else torch.full((batch,), 500.0, device=device))

    def run_ours() -> torch.Tensor:
        with torch.inference_mode():
            return ours.velocity(inputs.x, inputs.t_tok, inputs.context)

    def run_theirs() -> torch.Tensor:
        with torch.inference_mode():
            x = inputs.x.to(dtype)
            return theirs(hidden_states=x, timestep=timestep, encoder_hidden_states=inputs.context,
                          return_dict=False)[0]

    difference = (run_ours().float() - run_theirs().float()).abs().max().item()
    times = compare({"ours": run_ours, "diffusers": run_theirs}, device, repeat=repeat,
                    warmup=warmup)
    return {"ours": times["ours"].to_dict(), "diffusers": times["diffusers"].to_dict(),
            "ratio": paired_ratio(times["ours"], times["diffusers"]),
            "ratio_of_medians": times["ours"].median / times["diffusers"].median,
            "max_abs_difference": difference, "diffusers_timestep": "per token" if per_token
            else "per sample"}  # fmt: skip


def compare_vae(spec: WanBenchSizes, device: torch.device, repeat: int, warmup: int
                ) -> dict[str, Any]:
    ours = random_vae(spec, device)
    theirs = diffusers_vae(spec, ours, device)
    latent = vae_latent(spec.geometry.latent_shape(spec.frames, spec.height, spec.width), device)
    mean = torch.tensor(spec.vae.latent_mean, device=device).view(1, -1, 1, 1, 1)
    std = torch.tensor(spec.vae.latent_std, device=device).view(1, -1, 1, 1, 1)

    def run_ours() -> torch.Tensor:
        with torch.inference_mode():
            return ours.decode(latent)

    def run_theirs() -> torch.Tensor:
        with torch.inference_mode():  # the pipeline de-normalises before decoding
            return theirs.decode(latent * std + mean, return_dict=False)[0]

    difference = (run_ours() - run_theirs()).abs().max().item()
    times = compare({"ours": run_ours, "diffusers": run_theirs}, device, repeat=repeat,
                    warmup=warmup)
    return {"ours": times["ours"].to_dict(), "diffusers": times["diffusers"].to_dict(),
            "ratio": paired_ratio(times["ours"], times["diffusers"]),
            "ratio_of_medians": times["ours"].median / times["diffusers"].median,
            "ours_peak_bytes": device_peak(device, run_ours),
            "diffusers_peak_bytes": device_peak(device, run_theirs),
            "max_abs_difference": difference}  # fmt: skip


def comparison_args(argv: list[str] | None, configs: Any, default: str) -> argparse.Namespace:
    """The options every comparison script takes (``configs``: its size names); sets the CPU
    thread count when one is given."""
    parser = argparse.ArgumentParser(description="time the studio against diffusers")
    parser.add_argument("--config", default=default, choices=sorted(configs))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--what", default="denoiser,vae")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    return args


def diffusers_version() -> str | None:
    """diffusers' version, or None after printing the JSON error line the callers read."""
    try:
        import diffusers
    except ImportError as exc:
        print(json.dumps({"error": f"diffusers is not installed ({exc})"}))
        return None
    return diffusers.__version__


def run_comparison(argv: list[str] | None, sizes: Any, default: str,
                   compare_denoiser: Any, compare_decode: Any) -> int:
    """The ``main`` of a family's comparison script: parse the options, refuse a CUDA-only
    configuration elsewhere, run ``compare_denoiser(spec, device, dtype, repeat, warmup)`` and
    ``compare_decode(spec, device, repeat, warmup)`` as asked and print one JSON line."""
    args = comparison_args(argv, sizes, default)
    version = diffusers_version()
    if version is None:
        return MISSING_DIFFUSERS
    spec, device = sizes[args.config], torch.device(args.device)
    if spec.cuda_only and device.type != "cuda":
        print(json.dumps({"error": f"configuration {spec.name} runs on CUDA only"}))
        return 2
    what = set(args.what.split(","))
    result: dict[str, Any] = {"diffusers_version": version, "config": spec.name,
                              "description": spec.describe(), "device": str(device),
                              "dtype": args.dtype, "threads": torch.get_num_threads(),
                              "torch": torch.__version__}  # fmt: skip
    if "denoiser" in what:
        result["denoiser"] = compare_denoiser(spec, device, getattr(torch, args.dtype),
                                              args.repeat, args.warmup)
    if "vae" in what:
        result["vae"] = compare_decode(spec, device, args.repeat, args.warmup)
    print(json.dumps(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = comparison_args(argv, SIZES, "small")
    version = diffusers_version()
    if version is None:
        return MISSING_DIFFUSERS
    spec, device = SIZES[args.config], torch.device(args.device)
    what = set(args.what.split(","))
    result: dict[str, Any] = {"diffusers_version": version, "config": spec.name}
    if "denoiser" in what:
        result["denoiser"] = compare_dit(spec, device, getattr(torch, args.dtype), args.repeat,
                                         args.warmup)
    if "vae" in what:
        result["vae"] = compare_vae(spec, device, args.repeat, args.warmup)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
