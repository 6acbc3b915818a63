"""``tests/oracles/compare_opensora.py`` at its smallest size, run as ``studio bench`` runs the
Wan comparison (a child process printing one JSON line): both rows come back, the outputs of the
studio's Open-Sora 2.0 MMDiT / HunyuanVideo VAE and diffusers' stay at parity. Timings are not
asserted (they go to docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from studio.models.opensora.bench_configs import BENCH_CONFIGS
from studio.models.opensora.bench_sizes import SIZES

pytest.importorskip("diffusers")

SCRIPT = Path(__file__).resolve().parent / "oracles" / "compare_opensora.py"
PARITY = 1e-4  # max |Δ| relative to the largest output value


def test_tiny_comparison_reports_both_rows_at_parity() -> None:
    command = [sys.executable, str(SCRIPT), "--config", "tiny", "--repeat", "1", "--warmup", "0",
               "--threads", "1"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["config"] == "tiny" and result["threads"] == 1
    for row in ("denoiser", "vae"):
        data = result[row]
        assert data["ours"]["median_s"] > 0 and data["diffusers"]["median_s"] > 0
        assert data["ratio"] > 0
        assert data["output_max_abs"] > 0.1  # not a comparison of near-zero outputs
        assert data["max_abs_difference"] <= PARITY * data["output_max_abs"], (row, data)
    assert result["denoiser"]["batch"] == 3


def test_cuda_only_size_is_refused_on_the_cpu() -> None:
    command = [sys.executable, str(SCRIPT), "--config", "256px", "--device", "cpu"]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 2
    assert "CUDA" in json.loads(done.stdout.strip().splitlines()[-1])["error"]


def test_bench_configs_mirror_the_sizes() -> None:
    assert [c.name for c in BENCH_CONFIGS] == list(SIZES)
    for config in BENCH_CONFIGS:
        sizes = SIZES[config.name]
        assert config.tokens == sizes.tokens
        assert config.vae_latent_shape() == sizes.vae_latent_shape()
        assert config.cuda_only == sizes.cuda_only
        assert config.flops is not None
        flops = config.flops(sizes.tokens, sizes.text_len, sizes.batch, False)
        assert flops.total > 0 and 0 < flops.self_attention_share < 1
