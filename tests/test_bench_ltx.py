"""LTX-Video benchmarks: ``studio bench --config ltx-tiny`` on the CPU (random weights assembled
as the loader assembles a set), and ``tests/oracles/compare_ltx.py`` at its smallest size, run
as ``studio bench --compare-diffusers`` runs it (a child process printing one JSON line): both
rows come back, the outputs of the studio's LTX-Video transformer / VAE and diffusers' stay at
parity. Timings are not asserted (they go to docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from studio.bench.compare import comparison_command, script_for
from studio.bench.configs import all_configs
from studio.cli import run_cli
from studio.models.ltx.bench_configs import BENCH_CONFIGS, ltx_flops
from studio.models.ltx.bench_sizes import SIZES
from studio.models.ltx.transformer import LTXTransformer
from studio.models.ltx.transformer_config import LTX_2B

SCRIPT = Path(__file__).resolve().parent / "oracles" / "compare_ltx.py"
PARITY = 1e-4  # max |Δ| relative to the largest output value


def _run(*args: str, timeout: int = 300) -> tuple[int, dict]:
    done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          check=False, timeout=timeout)  # fmt: skip
    return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])


def test_tiny_comparison_reports_both_rows_at_parity() -> None:
    pytest.importorskip("diffusers")
    code, result = _run("--config", "ltx-tiny", "--repeat", "1", "--warmup", "0",
                        "--threads", "1")  # fmt: skip
    assert code == 0, result
    assert result["config"] == "ltx-tiny" and result["threads"] == 1
    for row in ("denoiser", "vae"):
        data = result[row]
        assert data["ours"]["median_s"] > 0 and data["diffusers"]["median_s"] > 0
        assert data["ratio"] > 0
        assert data["output_max_abs"] > 0.1  # not a comparison of near-zero outputs
        assert data["max_abs_difference"] <= PARITY * data["output_max_abs"], (row, data)
    assert result["denoiser"]["batch"] == 2 and result["denoiser"]["per_token_time"]
    assert result["vae"]["ours_peak_bytes"] > 0 and result["vae"]["diffusers_peak_bytes"] > 0


def test_cuda_only_size_is_refused_on_the_cpu() -> None:
    pytest.importorskip("diffusers")
    code, result = _run("--config", "ltx-2b-768x512", "--device", "cpu", timeout=120)
    assert code == 2 and "CUDA" in result["error"]


def test_bench_configs_mirror_the_sizes() -> None:
    assert [c.name for c in BENCH_CONFIGS] == list(SIZES)
    for config in BENCH_CONFIGS:
        sizes = SIZES[config.name]
        assert config.tokens == sizes.tokens
        assert config.vae_latent_shape() == sizes.vae_latent_shape()
        assert config.cuda_only == sizes.cuda_only
        flops = config.flops(sizes.tokens, sizes.text_len, sizes.batch, False)
        assert flops.total > 0 and 0 < flops.self_attention_share < 1
    native = SIZES["ltx-2b-768x512"]
    assert (native.width, native.height, native.frames, native.tokens) == (768, 512, 121, 6144)
    assert native.transformer == LTX_2B and native.vae.version == "0.9.1"


def test_flops_count_the_published_2b_weights() -> None:
    """Per token and forward, 2 FLOPs per weight a video token passes through (the published 2B
    built on the meta device; the text's k/v, caption projection and time MLP set aside), plus
    the text tokens' 2 per weight of those, plus the scores; per_token_time counts the time MLP
    per token."""
    with torch.device("meta"):
        model = LTXTransformer(LTX_2B)
    text_side = ("attn2.to_k.", "attn2.to_v.", "caption_projection.")
    weights = {
        name: p.numel()
        for name, p in model.named_parameters()
        if p.ndim == 2 and "scale_shift_table" not in name
    }  # matmul weights
    per_token = sum(
        n
        for k, n in weights.items()
        if not any(t in k for t in text_side) and not k.startswith("adaln_single")
    )
    per_text = sum(n for k, n in weights.items() if any(t in k for t in text_side))
    time_mlp = sum(n for k, n in weights.items() if k.startswith("adaln_single"))
    tokens, text = 1000, 128
    flops = ltx_flops(LTX_2B, tokens, text, 1, per_token_time=True)
    dense = flops.projections + flops.ffn + flops.embeddings
    assert dense == 2 * (tokens * (per_token + time_mlp) + text * per_text)
    d = LTX_2B.dim
    assert flops.self_attention == 4 * tokens**2 * d * LTX_2B.num_layers
    assert flops.cross_attention == 4 * tokens * text * d * LTX_2B.num_layers
    shared = ltx_flops(LTX_2B, tokens, text, 1).embeddings
    assert flops.embeddings - shared == 2 * (tokens - 1) * time_mlp


def test_configs_are_registered_and_routed_to_their_comparison() -> None:
    configs = all_configs()
    for config in BENCH_CONFIGS:
        assert configs[config.name] is config
        assert script_for(config.name) == SCRIPT
    assert script_for("opensora-small").name == "compare_opensora.py"
    assert script_for("small").name == "compare_diffusers.py"
    options = argparse.Namespace(spec=BENCH_CONFIGS[0], dtype=torch.float32, device="cpu",
                                 repeat=1, warmup=0, threads=0)  # fmt: skip
    assert comparison_command(options, ["vae"])[1] == str(SCRIPT)


def test_studio_bench_ltx_tiny_with_the_diffusers_comparison(tmp_path: Path, capsys) -> None:
    pytest.importorskip("diffusers")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path / "bench.json"
    try:
        code = run_cli(["bench", "--config", "ltx-tiny", "--device", "cpu", "--repeat", "1",
                        "--warmup", "0", "--threads", "1", "--compare-diffusers", "--json",
                        str(out), "--out", str(tmp_path)])  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    table = capsys.readouterr().out
    for expected in ("text encode", "sampling (2 steps)", "decode", "export", "denoiser step",
                     "VAE decode", "TFLOP/s", "ours / diffusers (paired runs)"):  # fmt: skip
        assert expected in table
    result = json.loads(out.read_text())
    assert set(result["generate"]["stages_s"]) == {"text encode", "sampling", "decode", "export"}
    sizes = SIZES["ltx-tiny"]
    flops = BENCH_CONFIGS[0].flops(sizes.tokens, sizes.text_len, 2, False)
    assert result["denoiser"]["flops"]["total"] == flops.total
    assert result["vae"]["peak_bytes"] > 0
    compared = result["diffusers"]
    assert compared["config"] == "ltx-tiny", compared  # compare_ltx.py answered, not Wan's
    assert (
        compared["denoiser"]["max_abs_difference"]
        <= PARITY * compared["denoiser"]["output_max_abs"]
    )
