"""Wan 2.2 A14B on tiny random sets: the two experts found in every published layout, routed
by t with a guidance each as diffusers' WanPipeline does, I2V's input channels as diffusers'
WanImageToVideoPipeline builds them, one expert resident under the ``model`` offload policy,
and the forecast for a 24 GB GPU."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from studio.cli import run_cli
from studio.engine.lora import merge_parts, parts_on_the_fly
from studio.engine.memory_forecast import GIB, forecasts_by_policy
from studio.engine.model import DIT, DIT_LOW
from studio.engine.noise import make_noise
from studio.engine.offload import OffloadPolicy, apply_offload, choose_policy
from studio.engine.pipeline import encode_prompts, plan_generation, sample_plan
from studio.engine.request import ConditioningItem, GenerationRequest, LoraItem
from studio.errors import InvalidRequest
from studio.media.image import image_to_tensor
from studio.models.registry import family, scan
from studio.models.wan.expert_model import expert_memory
from studio.models.wan.presets import T2V_A14B
from studio.service.loras import lora_report, prepare_loras
from tests.models.test_wan_dit import diffusers_twin
from tests.models.test_wan_vae import diffusers_twin as vae_twin
from tests.models.tiny_a14b import write_a14b_set

LAYOUTS = ("original", "diffusers", "files")


def load(root: Path):  # noqa: ANN201 - a LoadedModel
    (model_set,) = scan([root])
    return model_set, family("wan").load(model_set, torch.device("cpu"), torch.float32)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kind", ["t2v", "i2v"])
def test_every_layout_is_one_two_expert_set(tmp_path: Path, kind: str, layout: str) -> None:
    root = tmp_path / f"{kind}-{layout}"
    write_a14b_set(root, kind, layout, boundary=0.8 if layout == "diffusers" else None)
    model_set, model = load(root)
    assert (model_set.variant, model_set.complete, model_set.problems) == (
        f"{kind}-a14b", True, ())
    high, low = model_set.component(DIT), model_set.component(DIT_LOW)
    assert "high" in str(high.path) or high.path.parent.name == "transformer"
    assert "low" in str(low.path) or low.path.parent.name == "transformer_2"
    expected = 0.8 if layout == "diffusers" else (0.875 if kind == "t2v" else 0.9)
    assert model.experts.boundary == expected
    assert model.memory.dit_experts == 2 and set(model.modules.parts) >= {DIT, DIT_LOW}
    assert (model.image_channels is not None) == (kind == "i2v")


def test_a_lone_expert_is_refused_naming_the_missing_one(tmp_path: Path) -> None:
    root = tmp_path / "half"
    write_a14b_set(root, "t2v", "original")
    for path in (root / "low_noise_model").iterdir():
        path.unlink()
    (root / "low_noise_model").rmdir()
    (model_set,) = scan([root])
    assert not model_set.usable
    assert any("one of the two experts of Wan 2.2 A14B" in p for p in model_set.problems)


def reference_loop(model, twins: dict[str, torch.nn.Module], request: GenerationRequest,
                   boundary: float, guidance_low: float) -> torch.Tensor:
    """WanPipeline's expert rule written out over diffusers' DiTs: ``transformer`` (high) for
    timesteps ≥ boundary·1000 with ``guidance_scale``, ``transformer_2`` (low) below with
    ``guidance_scale_2``; Euler steps on the studio's schedule and noise."""
    plan = plan_generation(model, request)
    context, uncond = encode_prompts(model, plan)
    x = make_noise(plan.latent_shape, request.seed, torch.device("cpu"), torch.float32)
    ts = plan.schedule
    with torch.no_grad():
        for t, t_next in zip(ts, ts[1:], strict=False):
            high = t * 1000 >= boundary * 1000
            twin, g = (twins[DIT], request.guidance) if high else (twins[DIT_LOW], guidance_low)
            timestep = torch.tensor([t * 1000])
            v_c = twin(x, timestep, context, return_dict=False)[0]
            v_u = twin(x, timestep, uncond, return_dict=False)[0]
            x = x + (t_next - t) * (v_u + g * (v_c - v_u))
    return x


def test_experts_and_their_guidance_follow_diffusers_rule(tmp_path: Path) -> None:
    root = tmp_path / "a14b"
    tiny = write_a14b_set(root, "t2v", "original")
    _, model = load(root)
    twins = {part: diffusers_twin(model.modules.parts[part].config, path) for part, path in
             ((DIT, root / "high_noise_model" / "diffusion_pytorch_model.safetensors"),
              (DIT_LOW, root / "low_noise_model" / "diffusion_pytorch_model.safetensors"))}
    assert tiny.states["dit"] is not tiny.states["dit_low"]
    request = GenerationRequest(prompt="a fox", steps=8, guidance=4.0, guidance_low=2.0,
                                shift=3.0, width=32, height=32, frames=5, seed=3)
    plan = plan_generation(model, request)
    switches = sum(t >= T2V_A14B.boundary for t in plan.schedule[:-1])
    assert 0 < switches < request.steps  # both experts run
    ours = sample_plan(model, plan)
    expected = reference_loop(model, twins, request, T2V_A14B.boundary, 2.0)
    assert (ours - expected).abs().max() / expected.abs().max() < 1e-5
    only_high = sample_plan(model, plan_generation(model, request.with_changes(guidance_low=4.0)))
    assert (only_high - ours).abs().max() > 1e-3  # the low expert's guidance matters


def test_i2v_channels_are_built_as_diffusers_builds_them(tmp_path: Path) -> None:
    from diffusers import WanImageToVideoPipeline

    root = tmp_path / "i2v"
    write_a14b_set(root, "i2v", "original")
    _, model = load(root)
    pixels = np.random.default_rng(1).integers(0, 255, (32, 48, 3), dtype=np.uint8)
    image = image_to_tensor(pixels)[:, :, 0]  # [1, 3, H, W]
    ours = model.image_channels({0: image}, 9, 32, 48)
    twin = vae_twin(model.vae)
    fake = SimpleNamespace(vae=twin, config=SimpleNamespace(expand_timesteps=False),
                           vae_scale_factor_temporal=4, vae_scale_factor_spatial=8)
    _, expected = WanImageToVideoPipeline.prepare_latents(
        fake, image, 1, 16, 32, 48, 9, torch.float32, torch.device("cpu"), None)
    assert ours.shape == expected.shape == (1, 20, 3, 4, 6)
    assert torch.equal(ours[:, :4], expected[:, :4])  # the frame mask
    assert (ours[:, 4:] - expected[:, 4:]).abs().max() < 1e-4  # the image latent


def test_an_i2v_job_runs_and_refuses_soft_references(tmp_path: Path) -> None:
    root = tmp_path / "i2v"
    write_a14b_set(root, "i2v", "original")
    _, model = load(root)
    image = tmp_path / "ref.png"
    Image.new("RGB", (32, 32), (200, 40, 40)).save(image)
    request = GenerationRequest(prompt="a cat", steps=3, width=32, height=32, frames=5,
                                conditioning=(ConditioningItem(str(image)),))
    latent = sample_plan(model, plan_generation(model, request))
    assert latent.shape == (1, 16, 2, 4, 4) and torch.isfinite(latent).all()
    soft = request.with_changes(conditioning=(ConditioningItem(str(image), 0, 0.5),))
    with pytest.raises(InvalidRequest, match="full strength") as refused:
        plan_generation(model, soft)
    assert refused.value.field == "conditioning.strength"
    with pytest.raises(InvalidRequest, match="makes video from an image") as refused:
        plan_generation(model, request.with_changes(conditioning=()))
    assert refused.value.field == "conditioning"


def test_the_model_policy_keeps_one_expert_on_the_device(tmp_path: Path) -> None:
    root = tmp_path / "a14b"
    write_a14b_set(root, "t2v", "original")
    _, model = load(root)
    request = GenerationRequest(prompt="a fox", steps=6, guidance=4.0, guidance_low=2.0,
                                shift=3.0, width=32, height=32, frames=5)
    plain = sample_plan(model, plan_generation(model, request))
    offloaded = apply_offload(model, OffloadPolicy.MODEL, "cpu")
    moved = sample_plan(offloaded, plan_generation(offloaded, request))
    assert torch.equal(plain, moved)
    log = offloaded.denoiser.residency.log
    used = [part for part, _ in log if part in (DIT, DIT_LOW)]
    assert DIT in used and DIT_LOW in used
    assert all(not {DIT, DIT_LOW} <= set(resident) for _, resident in log)


def test_the_forecast_plans_a14b_at_720p_on_a_24_gb_gpu(tmp_path: Path, capsys) -> None:
    memory = expert_memory(T2V_A14B, torch.bfloat16)
    request = GenerationRequest(prompt="", width=1280, height=720, frames=81, guidance=4.0)
    needs = forecasts_by_policy(memory, request)
    assert needs[OffloadPolicy.NONE] > needs[OffloadPolicy.MODEL] > needs[OffloadPolicy.BLOCKS]
    assert needs[OffloadPolicy.NONE] - needs[OffloadPolicy.MODEL] > memory.dit_bytes  # 2 vs 1
    choice = choose_policy(needs, 24 * GIB)
    assert choice.policy is OffloadPolicy.BLOCKS and needs[OffloadPolicy.BLOCKS] < 0.9 * 24 * GIB
    root = tmp_path / "a14b"
    write_a14b_set(root, "t2v", "original")
    assert run_cli(["generate", "--model", str(root), "--dry-run", "--vram", "24", "--width",
                    "1280", "--height", "720", "--frames", "81"]) == 0
    out = capsys.readouterr().out
    assert "blocks" in out and "← chosen" in out and "offload blocks for 24.0 GiB free" in out


def test_the_cli_runs_a14b_end_to_end_and_records_both_guidances(tmp_path: Path) -> None:
    root = tmp_path / "a14b"
    write_a14b_set(root, "t2v", "diffusers", boundary=0.7)
    out = tmp_path / "clip.mp4"
    assert run_cli(["generate", "--model", str(root), "--prompt", "a fox", "--steps", "3",
                    "--width", "32", "--height", "32", "--frames", "5", "--guidance-low", "2.5",
                    "--out", str(out)]) == 0
    recipe = json.loads(out.with_suffix(".json").read_text())
    assert recipe["model"]["variant"] == "t2v-a14b"
    assert recipe["request"]["guidance"] == 4.0 and recipe["request"]["guidance_low"] == 2.5
    assert recipe["experts"] == {"boundary": 0.7, "guidance_low": 2.5}


def test_an_fp8_a14b_set_is_planned_at_one_byte_per_projection() -> None:
    from studio.models.family import ModelSet

    wan = family("wan")
    plans = {dtype: wan.planned_memory(ModelSet("x", "wan", "t2v-a14b", dtype=dtype),
                                       torch.bfloat16) for dtype in ("BF16", "fp8_scaled")}
    bf16, fp8 = plans["BF16"], plans["fp8_scaled"]
    assert bf16.dit_experts == fp8.dit_experts == 2
    assert 0.45 < fp8.dit_bytes / bf16.dit_bytes < 0.55  # projections 1 byte instead of 2
    cpu = wan.planned_memory(ModelSet("x", "wan", "t2v-a14b", dtype="fp8_scaled"), torch.float32)
    assert cpu.dit_bytes > bf16.dit_bytes  # dequantized to float32 on the CPU


def test_a14b_loras_go_to_the_expert_their_file_names(tmp_path: Path) -> None:
    root = tmp_path / "a14b"
    write_a14b_set(root, "t2v", "original")
    (model_set,) = scan([root])
    torch.manual_seed(4)
    lora = {"diffusion_model.blocks.0.self_attn.q.lora_down.weight": torch.randn(2, 128),
            "diffusion_model.blocks.0.self_attn.q.lora_up.weight": torch.randn(128, 2)}
    expected = {"wan22_high_noise_lora.safetensors": ({DIT}, "the high-noise expert"),
                "wan22_low_noise_lora.safetensors": ({DIT_LOW}, "the low-noise expert"),
                "style.safetensors": ({DIT, DIT_LOW}, "both experts")}
    for name, (parts, words) in expected.items():
        save_file(lora, tmp_path / name)
        request = GenerationRequest(prompt="x", loras=(LoraItem(str(tmp_path / name)),))
        prepared = prepare_loras(request, model_set)
        assert set(prepared.patch.parts) == parts
        report = lora_report(model_set, tmp_path / name)
        assert report.applies_to.startswith(words) and f"applies to: {words}" in "\n".join(
            report.lines())
    _, model = load(root)
    request = GenerationRequest(prompt="a fox", steps=4, shift=3.0, width=32, height=32,
                                frames=5, guidance=4.0, guidance_low=2.0)
    prepared = prepare_loras(request.with_changes(
        loras=(LoraItem(str(tmp_path / "wan22_low_noise_lora.safetensors")),)), model_set)
    plan = plan_generation(model, request)
    plain = sample_plan(model, plan)
    parts = {p: model.modules.parts[p] for p in prepared.patch.parts}
    blocks = {p: model.modules.block_list(p) for p in prepared.patch.parts}
    with parts_on_the_fly(parts, blocks, prepared.patch):
        fly = sample_plan(model, plan)
    merge_parts(parts, prepared.patch)
    merged = sample_plan(model, plan)
    assert (fly - plain).abs().max() > 1e-4 and torch.equal(fly, merged)
