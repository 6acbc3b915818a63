"""The memory forecast against independent measurements.

* weight sizes against module parameter counts (built on the meta device) and docs/families/wan.md;
* DiT activations and VAE working sets against :class:`AllocationMeter` runs of the real
  modules on the meta device at the published models' native sizes;
* the whole forecast against the peak resident set of a subprocess that runs a generation.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from studio.engine.allocation_meter import AllocationMeter
from studio.engine.memory_forecast import (
    HOST_TRANSIENT_FACTOR,
    RUNTIME_RAM_BYTES,
    forecast_memory,
)
from studio.engine.memory_model import (
    TextEncoderShape,
    dit_activation_bytes,
    measure_vae_bytes_per_pixel,
    text_activation_bytes,
)
from studio.engine.offload import OffloadPolicy
from studio.engine.request import GenerationRequest
from studio.engine.shapes import LatentGeometry
from studio.models.wan.dit import FP32_PARAMETERS, WanDiT
from studio.models.wan.dit_config import WAN21_T2V_1_3B, WAN22_TI2V_5B, WanDiTConfig
from studio.models.wan.memory import (
    dit_parameter_counts,
    dit_weight_bytes,
    published_memory,
    transformer_shape,
    umt5_weight_bytes,
    vae_bytes_per_pixel,
    vae_weight_bytes,
)
from studio.models.wan.vae import WAN21_VAE, WAN22_VAE
from studio.models.wan.vae_factory import build_vae
from studio.service.forecast import forecast_request

ROOT = Path(__file__).resolve().parents[2]


def _meta_dit(config: WanDiTConfig, dtype: torch.dtype = torch.float32) -> WanDiT:
    with torch.device("meta"):
        return WanDiT(config).to_dtype(dtype).eval()


@pytest.mark.parametrize(("config", "published"),
                         [(WAN21_T2V_1_3B, 1_418_996_800), (WAN22_TI2V_5B, 4_999_787_712)])
def test_dit_parameter_count_and_bytes(config: WanDiTConfig, published: int) -> None:
    fp32, other = dit_parameter_counts(config)
    assert fp32 + other == published  # docs/families/wan.md §2.1 (computed from the original)
    config = dataclasses.replace(config, num_layers=2)  # the module check, at 2 blocks
    fp32, _ = dit_parameter_counts(config)
    model = _meta_dit(config, torch.bfloat16)
    kept = sum(p.numel() for n, p in model.named_parameters()
               if any(f in n for f in FP32_PARAMETERS))  # fmt: skip
    assert kept == fp32
    assert dit_weight_bytes(config, torch.bfloat16) == sum(
        p.numel() * p.element_size() for p in model.parameters())


def test_umt5_xxl_and_vae_weight_bytes() -> None:
    from transformers import UMT5EncoderModel

    from studio.models.wan.text import umt5_config

    with torch.device("meta"):  # UMT5-XXL's sizes at 2 of its 24 layers
        encoder = UMT5EncoderModel(umt5_config(num_layers=2))
    unique = {id(p): p for p in encoder.parameters()}.values()
    sizes = dict(vocab_size=256384, d_model=4096, d_ff=10240, num_heads=64, d_kv=64, buckets=32,
                 dtype=torch.bfloat16)  # fmt: skip
    xxl = umt5_weight_bytes(num_layers=2, **sizes)
    assert xxl == 2 * sum(p.numel() for p in unique)
    full = umt5_weight_bytes(num_layers=24, **sizes)
    assert 5.6e9 < full / 2 < 5.8e9  # UMT5-XXL's encoder: 5.7 B parameters
    assert vae_weight_bytes(WAN22_VAE) == 4 * 704_688_668  # docs/families/wan.md §5 (computed)


def _tracked_dit_peak(config: WanDiTConfig, frames: int, h: int, w: int, batch: int,
                      dtype: torch.dtype) -> int:
    model = _meta_dit(dataclasses.replace(config, num_layers=2), dtype)  # every block alike
    with torch.device("meta"):
        x = torch.empty(batch, config.in_dim, frames, h, w)
        t = torch.empty(batch, frames, h, w)
        context = torch.empty(batch, config.text_len, config.text_dim, dtype=dtype)
    with torch.inference_mode():
        model.velocity(x, t, context)  # RoPE tables are cached, not counted
        with AllocationMeter() as tracker:
            model.velocity(x, t, context)
    return tracker.peak


@pytest.mark.parametrize(
    ("config", "grid", "batch", "dtype"),
    [(WAN21_T2V_1_3B, (21, 60, 104), 2, torch.bfloat16),  # 832×480, 81 frames
     (WAN21_T2V_1_3B, (21, 60, 104), 1, torch.float32),
     (WAN22_TI2V_5B, (31, 44, 80), 2, torch.bfloat16)],  # 1280×704, 121 frames
)  # fmt: skip
def test_dit_activations_match_a_tracked_run(config, grid, batch, dtype) -> None:
    measured = _tracked_dit_peak(config, *grid, batch, dtype)
    tokens = grid[0] * (grid[1] // 2) * (grid[2] // 2)
    forecast = dit_activation_bytes(transformer_shape(config), tokens, batch,
                                    torch.empty((), dtype=dtype).itemsize)  # fmt: skip
    assert measured > 1e9  # real sizes: gigabytes
    assert abs(forecast - measured) / measured < 0.03


@pytest.mark.parametrize("config", [WAN21_VAE, WAN22_VAE], ids=["2.1", "2.2"])
def test_vae_working_set_constants_are_measured_values(config) -> None:
    with torch.device("meta"):
        vae = build_vae(config)
    geometry = LatentGeometry(config.z_dim, config.temporal_factor, config.spatial_factor)
    assert measure_vae_bytes_per_pixel(vae, geometry) == vae_bytes_per_pixel(config)


def test_text_activations_match_a_tracked_run() -> None:
    from transformers import UMT5EncoderModel

    from studio.models.wan.text import umt5_config

    torch.set_num_threads(1)
    config = umt5_config(vocab_size=64, d_model=128, d_kv=16, d_ff=96, num_layers=2,
                         num_heads=8)  # fmt: skip
    model = UMT5EncoderModel(config).eval()
    ids = torch.zeros(2, 512, dtype=torch.long)
    mask = torch.zeros(2, 512, dtype=torch.long)
    mask[:, :12] = 1
    with torch.inference_mode(), AllocationMeter() as tracker:
        model(input_ids=ids, attention_mask=mask)
    forecast = text_activation_bytes(TextEncoderShape(128, 8, 512), 2, 4)
    assert 0.95 < forecast / tracker.peak < 1.3


def test_policies_order_the_vram_forecast() -> None:
    info = SimpleNamespace(device="cuda", offload="none",
                           memory=published_memory("t2v-1.3b", torch.bfloat16))  # fmt: skip
    request = GenerationRequest(prompt="x", width=832, height=480, frames=81)
    vram = {p: forecast_request(info, request, p).vram_bytes for p in OffloadPolicy}
    order = [vram[p] for p in OffloadPolicy]
    assert order == sorted(order, reverse=True) and order[0] > order[-1]
    none = forecast_request(info, request, "none")
    weights = sum(v for k, v in none.breakdown.items() if k.startswith("weights."))
    assert weights > 13 * 2**30  # UMT5-XXL 10.6 GiB + DiT 2.7 GiB + VAE 0.5 GiB in bf16/fp32
    assert none.vram_stage == "decode" and none.vram_bytes > weights
    assert published_memory("demo", torch.float32) is None  # no memory model: no forecast
    assert forecast_request(SimpleNamespace(device="cpu", offload="none", memory=None),
                            request) is None  # fmt: skip


def test_cpu_forecast_is_runtime_weights_and_largest_stage() -> None:
    memory = published_memory("t2v-1.3b", torch.float32)
    request = GenerationRequest(prompt="x", width=832, height=480, frames=81, guidance=1.0)
    forecast = forecast_memory(memory, request, "cpu")
    stages = {k: v for k, v in forecast.breakdown.items() if k.startswith("stage.")}
    largest = int(HOST_TRANSIENT_FACTOR * max(stages.values()))
    assert forecast.ram_bytes == RUNTIME_RAM_BYTES + memory.weight_bytes + largest
    assert forecast.vram_bytes == 0 and forecast.ram_stage == "decode"
    guided = forecast_memory(memory, dataclasses.replace(request, guidance=5.0), "cpu")
    assert guided.breakdown["stage.sample"] > 1.9 * forecast.breakdown["stage.sample"]


def test_model_memory_counts_the_loaded_modules() -> None:
    from studio.models.wan.bench_sizes import SIZES
    from studio.models.wan.random_model import random_model

    model = random_model(SIZES["tiny"], "cpu", torch.float32)
    memory = model.memory
    assert memory is not None
    dit = model.denoiser.__self__
    assert model.modules.parts["dit"] is dit
    assert memory.dit_bytes == sum(p.numel() * 4 for p in dit.parameters())
    assert memory.vae_bytes == sum(p.numel() * 4 for p in model.vae.parameters())
    assert memory.text_layers == 2 and memory.dit == transformer_shape(dit.config)
    info = SimpleNamespace(device="cpu", offload="none", memory=memory)
    request = GenerationRequest(prompt="x", width=64, height=64, frames=5)
    assert forecast_request(info, request).ram_bytes > memory.weight_bytes


_GENERATE = textwrap.dedent("""
    import json, sys, torch
    torch.set_num_threads(1)
    from studio.bench.measure import bench_generate, bench_request
    from studio.models.wan.random_model import random_model
    from studio.models.wan.bench_configs import bench_config
    from studio.models.wan.bench_sizes import TextSizes, WanBenchSizes
    from studio.models.wan.dit_config import WanDiTConfig
    from studio.models.wan.presets import WAN21_GEOMETRY
    from studio.models.wan.vae import WanVAEConfig
    dit = WanDiTConfig(dim=1024, ffn_dim=4096, num_heads=8, num_layers=6, text_dim=64,
                       text_len=64)
    spec = WanBenchSizes("memory", "t2v-custom", dit, WanVAEConfig(version="2.1", dim=8,
                         num_res_blocks=1), TextSizes(64, 64, 96, 2, 4, 16), WAN21_GEOMETRY,
                         128, 128, 9, text_len=64)
    result = bench_generate(random_model(spec, "cpu", torch.float32),
                            bench_request(bench_config(spec), 1),
                            out_dir=__import__("pathlib").Path(sys.argv[1]))
    print(json.dumps({"peak": result.peak_ram, "forecast": result.forecast.ram_bytes,
                      "weights": result.forecast.breakdown["weights.dit"]}))
""")


@pytest.mark.slow
def test_forecast_is_within_15_percent_of_a_measured_peak_rss(tmp_path: Path) -> None:
    """A ~0.9 GB generation (0.4 GB of weights) in a fresh process: its peak resident set."""
    done = subprocess.run([sys.executable, "-c", _GENERATE, str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    numbers = json.loads(done.stdout.strip().splitlines()[-1])
    assert numbers["weights"] > 400e6
    error = abs(numbers["forecast"] - numbers["peak"]) / numbers["peak"]
    print(f"peak RSS {numbers['peak'] / 2**20:.0f} MiB, forecast "
          f"{numbers['forecast'] / 2**20:.0f} MiB ({error:.1%})")
    assert error < 0.15, numbers


def test_uniform_time_gives_the_same_velocity_with_less_memory() -> None:
    """``WanDiT.velocity_uniform`` (text-to-video) against the per-token ``velocity``."""
    torch.manual_seed(0)
    config = WanDiTConfig(dim=128, ffn_dim=256, num_heads=1, num_layers=2, text_dim=32)
    model = WanDiT(config).eval()
    x = torch.randn(2, 16, 3, 8, 8)
    t_tok = torch.tensor([0.7, 0.3]).view(2, 1, 1, 1).expand(2, 3, 8, 8).contiguous()
    context = torch.randn(2, 20, 32)
    peaks = {}
    with torch.inference_mode():
        for name in ("velocity", "velocity_uniform"):
            getattr(model, name)(x, t_tok, context)
            with AllocationMeter() as tracker:
                peaks[name] = getattr(model, name)(x, t_tok, context)
            peaks[name] = (peaks[name], tracker.peak)
    torch.testing.assert_close(peaks["velocity_uniform"][0], peaks["velocity"][0],
                               rtol=1e-5, atol=1e-5)  # fmt: skip
    saved = peaks["velocity"][1] - peaks["velocity_uniform"][1]
    residual = 2 * 48 * 128 * 4  # B·L·dim float32
    assert saved >= 6 * residual
    shape = transformer_shape(config)
    forecast_saving = (dit_activation_bytes(shape, 48, 2, 4, context_len=20)
                       - dit_activation_bytes(shape, 48, 2, 4, context_len=20,
                                              per_token_time=False))  # fmt: skip
    assert forecast_saving == 7 * residual


def test_model_memory_is_the_same_when_blocks_are_streamed() -> None:
    from studio.engine.offload import apply_offload
    from studio.models.wan.bench_sizes import SIZES
    from studio.models.wan.random_model import random_model

    plain = random_model(SIZES["tiny"], "cpu", torch.float32).memory
    streamed = apply_offload(random_model(SIZES["tiny"], "cpu", torch.float32),
                             OffloadPolicy.BLOCKS, "cpu")  # fmt: skip
    assert streamed.offload == "blocks"
    assert plain is not None and streamed.memory == plain
    assert plain.dit_block_bytes * 2 < plain.dit_bytes and plain.text_block_bytes > 0


def test_auto_offload_follows_free_vram(monkeypatch) -> None:
    """Wan 2.1 1.3B at its default request: the policy shrinks with the free VRAM."""
    import studio.engine.memory_forecast as forecast
    from studio.models.family import ModelSet
    from studio.models.wan.family import WAN_FAMILY
    from studio.service.forecast import plan_offload

    cuda, gib = torch.device("cuda"), 2**30
    wan = ModelSet(id="t2v-1.3b", family="wan", variant="t2v-1.3b", complete=True)
    chosen = {}
    for free in (80, 20, 14, 11, 4):
        monkeypatch.setattr(forecast, "free_device_memory", lambda device, f=free: f * gib)
        chosen[free] = plan_offload(WAN_FAMILY, wan, torch.bfloat16, cuda).policy.value
    assert chosen == {80: "none", 20: "text-encoder", 14: "model", 11: "blocks", 4: "blocks"}
    assert plan_offload(WAN_FAMILY, wan, torch.bfloat16, cuda, "model").policy.value == "model"
    assert plan_offload(WAN_FAMILY, wan, torch.float32,
                        torch.device("cpu")).policy.value == "none"  # fmt: skip


def test_model_info_carries_what_the_app_forecast_needs() -> None:
    from studio.models.wan.bench_sizes import SIZES
    from studio.models.wan.random_model import random_model
    from studio.service.model_info import model_info

    model = random_model(SIZES["tiny"], "cpu", torch.float32)
    info = model_info(model)
    assert info.memory is not None and info.memory == model.memory and info.offload == "none"
    request = GenerationRequest(prompt="x", width=64, height=64, frames=5)
    assert forecast_request(info, request) == forecast_memory(info.memory, request, "cpu")


def test_three_row_guidance_counts_three_denoiser_rows_and_two_prompts() -> None:
    """Open-Sora 2.0's three passes and LTX-Video's CFG + STG run three rows per denoiser call,
    but the text encoder still encodes two prompts (prompt and negative)."""
    from studio.engine.memory_forecast import stage_bytes

    two = published_memory("t2v-1.3b", torch.float32)
    three = dataclasses.replace(two, guidance_rows=3)
    request = GenerationRequest(prompt="x", width=832, height=480, frames=81, guidance=5.0)
    tokens = 21 * 30 * 52
    latent = 4 * 16 * 21 * 60 * 104
    a, b = stage_bytes(two, request), stage_bytes(three, request)
    assert a.encode == b.encode
    assert b.sample - a.sample == (
        dit_activation_bytes(three.dit, tokens, 3, three.act_bytes, per_token_time=False)
        - dit_activation_bytes(two.dit, tokens, 2, two.act_bytes, per_token_time=False)
        + 8 * latent)
    unguided = request.with_changes(guidance=1.0)  # no CFG: STG's pass may still run
    a, b = stage_bytes(two, unguided), stage_bytes(three, unguided)
    assert a.encode == b.encode and b.sample - a.sample == (
        dit_activation_bytes(three.dit, tokens, 2, three.act_bytes, per_token_time=False)
        - dit_activation_bytes(two.dit, tokens, 1, two.act_bytes, per_token_time=False)
        + 8 * latent)
