"""LoRAs through the service and the command line, on the shipped demo model.

A LoRA changes the clip as PEFT's merged model does; merged and on-the-fly runs agree; the
recipe names the LoRA by hash and reproduces bit for bit; a changed file, a LoRA for another
variant and a damaged file are refused before sampling; a step-distillation LoRA brings its
few-step settings; the model cache keeps merged weights for the next job with the same LoRAs.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from studio.cli import run_cli
from studio.engine.request import GenerationRequest, LoraItem
from studio.errors import CheckpointError
from studio.media.latent_file import load_latent
from studio.media.video import read_video
from studio.models.demo.loader import load_demo_model
from studio.models.wan.dit import WanDiT
from studio.service.catalog import ModelCache, load_model
from studio.service.generation import GenerationService
from studio.service.job_folder import JobFolder
from studio.service.settings import Settings
from tests.models.tiny_wan import TINY_DIT_21, write_wan_set

peft = pytest.importorskip("peft")

PROMPT = "a red circle moving right"


@pytest.fixture(scope="module")
def peft_lora(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    """A PEFT adapter on the demo DiT, saved in the original key format, and PEFT's merge."""
    dit = load_demo_model().modules.parts["dit"]
    torch.manual_seed(11)
    config = peft.LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                             target_modules=["q", "k", "v", "o", "ffn.0", "ffn.2"])
    model = peft.get_peft_model(copy.deepcopy(dit), config)
    state = {f"diffusion_model.{k.removeprefix('base_model.model.')}": v.contiguous()
             for k, v in peft.get_peft_model_state_dict(model).items()}
    path = tmp_path_factory.mktemp("loras") / "style.safetensors"
    save_file(state, str(path))
    return path, model.merge_and_unload()


def request(lora: Path | None, **changes: object) -> GenerationRequest:
    loras = (LoraItem(str(lora), 1.0),) if lora else ()
    base = GenerationRequest(prompt=PROMPT, steps=2, guidance=3.0, frames=5, width=64,
                             height=64, model="demo", loras=loras)
    return base.with_changes(**changes).validate()


def latent_of(service: GenerationService, job_id: str, req: GenerationRequest) -> torch.Tensor:
    service.run(job_id, req)
    return load_latent(JobFolder.of(job_id).latent)[0]


def test_a_lora_changes_the_clip_as_peft_merged_weights_do(peft_lora) -> None:
    path, merged_dit = peft_lora
    service = GenerationService(Settings())
    plain = latent_of(service, "plain", request(None))
    merged = latent_of(service, "merged", request(path, lora_mode="merge"))
    assert service.cache.merged != ""
    fly = latent_of(service, "fly", request(path, lora_mode="on-the-fly"))

    def peft_loader(model_set, device, cancel, offload):  # noqa: ANN001, ANN202
        model = load_model(model_set, device, cancel, offload=offload)
        model.modules.parts["dit"].load_state_dict(merged_dit.state_dict())
        return model

    reference = GenerationService(Settings(), ModelCache(Settings(), loader=peft_loader))
    expected = latent_of(reference, "peft", request(None))
    assert (plain - expected).abs().max() > 1e-2  # the LoRA changes the clip
    assert (merged - expected).abs().max() < 1e-4
    assert (fly - merged).abs().max() <= 1e-6


def test_the_recipe_names_the_lora_by_hash_and_reproduces_it(peft_lora, tmp_path: Path) -> None:
    path, _ = peft_lora
    first = tmp_path / "first.mp4"
    assert run_cli(["generate", "--prompt", PROMPT, "--steps", "2", "--frames", "5", "--width",
                    "64", "--height", "64", "--lora", f"{path}:0.8", "--out", str(first)]) == 0
    recipe = json.loads(first.with_suffix(".json").read_text())
    (item,) = recipe["request"]["loras"]
    assert item["strength"] == 0.8 and len(item["sha256"]) == 64
    assert recipe["loras"][0]["applied"] == "merge" and recipe["loras"][0]["modules"] == 40
    again = tmp_path / "again.mp4"
    assert run_cli(["generate", "--recipe", str(first.with_suffix(".json")), "--out",
                    str(again)]) == 0
    assert np.array_equal(read_video(first)[0], read_video(again)[0])
    changed = tmp_path / "changed.safetensors"
    changed.write_bytes(path.read_bytes()[:-4] + b"\0\0\0\0")
    recipe["request"]["loras"][0]["path"] = str(changed)
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(recipe))
    assert run_cli(["generate", "--recipe", str(edited), "--out", str(tmp_path / "x.mp4")]) == 2
    assert not (tmp_path / "x.mp4").exists()


def test_unusable_loras_are_refused_before_sampling(tmp_path: Path) -> None:
    service = GenerationService(Settings())
    wide = tmp_path / "wan14b.safetensors"
    save_file({"diffusion_model.blocks.0.self_attn.q.lora_down.weight": torch.zeros(4, 5120),
               "diffusion_model.blocks.0.self_attn.q.lora_up.weight": torch.zeros(5120, 4)},
              str(wide))
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(b"\x08\0\0\0\0\0\0\0{}")
    missing = tmp_path / "missing.safetensors"
    for lora, words in ((wide, "made for another variant"), (damaged, "damaged.safetensors"),
                        (missing, "cannot be read")):
        with pytest.raises(CheckpointError) as refused:
            service.run(f"bad-{lora.stem}", request(lora))
        assert words in refused.value.message
        assert service.cache.loaded is None  # refused before loading anything


def test_a_distillation_lora_brings_its_few_step_settings(peft_lora, tmp_path: Path,
                                                          capsys) -> None:
    path, _ = peft_lora
    distill = tmp_path / "wan_lightx2v_4step_lora.safetensors"
    distill.write_bytes(path.read_bytes())
    assert run_cli(["lora", "report", str(distill)]) == 0
    assert "step-distillation LoRA ('lightx2v'" in capsys.readouterr().out
    out = tmp_path / "few.mp4"
    assert run_cli(["generate", "--prompt", PROMPT, "--frames", "9", "--few-step", "--lora",
                    str(path), "--steps", "2", "--out", str(out)]) == 2  # the demo has none
    assert "has no few-step settings" in capsys.readouterr().err


def test_the_cache_keeps_merged_weights_for_the_same_loras_only(peft_lora) -> None:
    path, _ = peft_lora
    loads: list[str] = []

    def counting(model_set, device, cancel, offload):  # noqa: ANN001, ANN202
        loads.append(model_set.id)
        return load_model(model_set, device, cancel, offload=offload)

    service = GenerationService(Settings(), ModelCache(Settings(), loader=counting))
    service.run("a", request(path))
    service.run("b", request(path, seed=1))
    assert len(loads) == 1  # the merged weights are reused
    service.run("c", request(None))
    assert len(loads) == 2 and service.cache.merged == ""  # pristine weights again
    service.run("d", request(path, lora_mode="on-the-fly"))
    assert len(loads) == 2  # on the fly needs no reload


def test_a_wan_distillation_lora_brings_wan_few_step_settings(tmp_path: Path, capsys) -> None:
    tiny = write_wan_set(tmp_path / "wan", "t2v", "original")
    dit = WanDiT(TINY_DIT_21)
    targets = {k: tuple(v.shape) for k, v in dit.state_dict().items()}
    torch.manual_seed(2)
    lora = {f"diffusion_model.{name.removesuffix('.weight')}.{piece}.weight": tensor
            for name, shape in targets.items() if name.endswith("self_attn.q.weight")
            for piece, tensor in (("lora_down", 0.1 * torch.randn(2, shape[1])),
                                  ("lora_up", 0.1 * torch.randn(shape[0], 2)))}
    path = tmp_path / "Wan21_T2V_lightx2v_cfg_step_distill_lora_rank2.safetensors"
    save_file(lora, str(path))
    out = tmp_path / "few.mp4"
    args = ["generate", "--model", str(tiny.root), "--prompt", "a cat", "--width", "32",
            "--height", "32", "--frames", "5", "--lora", str(path)]
    assert run_cli([*args, "--out", str(out)]) == 0
    assert "few-step settings (4 steps, guidance 1, shift 5, euler)" in capsys.readouterr().out
    recorded = json.loads(out.with_suffix(".json").read_text())["request"]
    assert (recorded["steps"], recorded["guidance"], recorded["shift"], recorded["sampler"]) == (
        4, 1.0, 5.0, "euler")
    explicit = tmp_path / "explicit.mp4"
    assert run_cli([*args, "--steps", "3", "--out", str(explicit)]) == 0
    assert json.loads(explicit.with_suffix(".json").read_text())["request"]["steps"] == 3
