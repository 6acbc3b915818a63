"""Open-Sora 2.0 benchmarks: ``studio bench --config opensora-tiny`` on the CPU (random weights
assembled as the loader assembles a set), and ``tests/oracles/compare_opensora.py`` at its
smallest size, run as ``studio bench`` runs the Wan comparison (a child process printing one JSON
line): both rows come back, the outputs of the studio's Open-Sora 2.0 MMDiT / HunyuanVideo VAE
and diffusers' stay at parity. Timings are not asserted (they go to docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from studio.bench.configs import all_configs
from studio.cli import run_cli
from studio.models.opensora.bench_configs import BENCH_CONFIGS
from studio.models.opensora.bench_sizes import SIZES

SCRIPT = Path(__file__).resolve().parent / "oracles" / "compare_opensora.py"
PARITY = 1e-4  # max |Δ| relative to the largest output value


def test_tiny_comparison_reports_both_rows_at_parity() -> None:
    pytest.importorskip("diffusers")
    command = [sys.executable, str(SCRIPT), "--config", "opensora-tiny", "--repeat", "1",
               "--warmup", "0", "--threads", "1"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["config"] == "opensora-tiny" and result["threads"] == 1
    for row in ("denoiser", "vae"):
        data = result[row]
        assert data["ours"]["median_s"] > 0 and data["diffusers"]["median_s"] > 0
        assert data["ratio"] > 0
        assert data["output_max_abs"] > 0.1  # not a comparison of near-zero outputs
        assert data["max_abs_difference"] <= PARITY * data["output_max_abs"], (row, data)
    assert result["denoiser"]["batch"] == 3


def test_cuda_only_size_is_refused_on_the_cpu() -> None:
    pytest.importorskip("diffusers")
    command = [sys.executable, str(SCRIPT), "--config", "opensora-256px", "--device", "cpu"]
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


def test_configs_are_registered_beside_wans() -> None:
    """Every Open-Sora configuration is listed under its own name (none shadows another
    family's)."""
    configs = all_configs()
    for config in BENCH_CONFIGS:
        assert configs[config.name] is config
    assert configs["tiny"] is not configs["opensora-tiny"]


def test_studio_bench_opensora_tiny_on_the_cpu(tmp_path: Path, capsys) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path / "bench.json"
    try:
        code = run_cli(["bench", "--config", "opensora-tiny", "--device", "cpu", "--repeat", "1",
                        "--warmup", "0", "--json", str(out), "--out", str(tmp_path)])  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    table = capsys.readouterr().out
    for expected in ("text encode", "sampling (2 steps)", "decode", "export", "denoiser step",
                     "VAE decode", "TFLOP/s"):  # fmt: skip
        assert expected in table
    result = json.loads(out.read_text())
    assert set(result["generate"]["stages_s"]) == {"text encode", "sampling", "decode", "export"}
    sizes = SIZES["opensora-tiny"]
    flops = BENCH_CONFIGS[0].flops(sizes.tokens, sizes.text_len + 1, 2, True)
    assert result["denoiser"]["flops"]["total"] == flops.total
    assert result["vae"]["peak_bytes"] > 0
