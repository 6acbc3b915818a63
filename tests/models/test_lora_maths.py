"""LoRA maths against PEFT (a test-only oracle) on a tiny Wan DiT, for every key format.

PEFT adds random adapters to our DiT and merges them (``merge_and_unload``): that model's output
is the reference. The same adapter tensors are written in each format a LoRA file comes in,
read back through :mod:`studio.models.lora_file` / :mod:`studio.models.lora_match`, and
applied merged and on the fly. The diffusers-named file is checked against diffusers' own
``WanTransformer3DModel`` carrying the PEFT adapter, so the name translation is tested
independently too.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from studio.engine.lora import WeightPatch, merge_patch, patched_on_the_fly
from studio.errors import CheckpointError
from studio.models.lora_file import read_lora
from studio.models.lora_match import match_lora
from studio.models.wan.keys import diffusers_module_name
from tests.models.test_wan_dit import diffusers_twin, random_dit, rel_err, small_config

peft = pytest.importorskip("peft")

TARGETS = ["q", "k", "v", "o", "ffn.0", "ffn.2"]
RANK, ALPHA = 4, 8.0


def adapter_state(dit: torch.nn.Module, targets: list[str] = TARGETS, seed: int = 5
                  ) -> tuple[dict[str, torch.Tensor], torch.nn.Module]:
    """PEFT's adapter tensors (our module names) and the PEFT-merged reference model."""
    torch.manual_seed(seed)
    config = peft.LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=targets,
                             init_lora_weights=False)
    model = peft.get_peft_model(copy.deepcopy(dit), config)
    state = {k.removeprefix("base_model.model."): v.detach().clone()
             for k, v in peft.get_peft_model_state_dict(model).items()}
    return state, model.merge_and_unload().eval()


def write_format(state: dict[str, torch.Tensor], fmt: str, folder: Path) -> Path:
    """The PEFT tensors under one format's key names (with its way of giving alpha)."""
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        module, _, piece = key.removesuffix(".weight").rpartition(".")  # piece: lora_A / lora_B
        if fmt == "peft":
            out[f"base_model.model.{key}"] = tensor
        elif fmt == "original":
            out[f"diffusion_model.{module}.{'lora_down' if piece == 'lora_A' else 'lora_up'}"
                ".weight"] = tensor
            out[f"diffusion_model.{module}.alpha"] = torch.tensor(ALPHA)
        elif fmt == "kohya":
            name = "lora_unet_" + module.replace(".", "_")
            out[f"{name}.{'lora_down' if piece == 'lora_A' else 'lora_up'}.weight"] = tensor
            out[f"{name}.alpha"] = torch.tensor(ALPHA)
    if fmt == "peft":  # PEFT keeps alpha in its config, beside the weights
        (folder / "adapter_config.json").write_text(json.dumps({"r": RANK, "lora_alpha": ALPHA}))
    path = folder / f"{fmt}.safetensors"
    save_file({k: v.contiguous() for k, v in out.items()}, str(path))
    return path


def patch_for(path: Path, dit: torch.nn.Module, strength: float = 1.0) -> WeightPatch:
    targets = {k: tuple(v.shape) for k, v in dit.state_dict().items()}
    matched = match_lora(read_lora(path), targets, "tiny Wan", diffusers_module_name)
    assert matched.report.problem == "" and not matched.report.unmatched
    patch = WeightPatch(fingerprint="test")
    for delta in matched.deltas:
        patch.add(delta, strength)
    return patch


def inputs(config, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    x = torch.randn(1, config.in_dim, 2, 4, 6)
    return x, torch.full((1, 2, 4, 6), 0.7), torch.randn(1, 5, config.text_dim)


@pytest.mark.parametrize("fmt", ["peft", "original", "kohya"])
def test_each_format_changes_the_output_as_peft_does(tmp_path: Path, fmt: str) -> None:
    config = small_config(16)
    dit = random_dit(config)
    state, reference = adapter_state(dit)
    patch = patch_for(write_format(state, fmt, tmp_path / fmt), dit)
    x, t, ctx = inputs(config)
    with torch.no_grad():
        expected = reference.velocity(x, t, ctx)
        plain = dit.velocity(x, t, ctx)
        merged = copy.deepcopy(dit)
        merge_patch(merged, patch)
        got_merged = merged.velocity(x, t, ctx)
        with patched_on_the_fly(dit, list(dit.blocks), patch):
            got_fly = dit.velocity(x, t, ctx)
        after = dit.velocity(x, t, ctx)
    assert rel_err(plain, expected) > 1e-2  # the adapter really changes the output
    assert rel_err(got_merged, expected) < 1e-5
    assert (got_fly - got_merged).abs().max() <= 1e-6  # merged equals on the fly
    assert torch.equal(after, plain)  # on the fly leaves the model as it was


def test_a_diffusers_named_lora_matches_diffusers_with_the_peft_adapter(tmp_path: Path) -> None:
    config = small_config(16)
    dit = random_dit(config)
    weights = tmp_path / "dit.safetensors"
    save_file({k: v.contiguous() for k, v in dit.state_dict().items()}, str(weights))
    twin = diffusers_twin(config, weights)
    torch.manual_seed(7)
    adapter = peft.LoraConfig(r=RANK, lora_alpha=RANK, init_lora_weights=False,
                              target_modules=["to_q", "to_k", "to_v", "to_out.0", "proj_out"])
    twin_lora = peft.get_peft_model(twin, adapter)
    state = {f"transformer.{k.removeprefix('base_model.model.')}": v.contiguous()
             for k, v in peft.get_peft_model_state_dict(twin_lora).items()}
    path = tmp_path / "diffusers_lora.safetensors"
    save_file(state, str(path))
    patch = patch_for(path, dit)
    assert "head.head.weight" in patch.changes and "blocks.1.cross_attn.o.weight" in patch.changes
    x, _, ctx = inputs(config)
    t = torch.tensor([700.0])
    with torch.no_grad():
        expected = twin_lora(x, t, ctx, return_dict=False)[0]
        with patched_on_the_fly(dit, list(dit.blocks), patch):
            got = dit(x, t, ctx)
    assert rel_err(got, expected) < 1e-5


def test_full_deltas_add_to_weights_biases_norms_and_modulation(tmp_path: Path) -> None:
    config = small_config(16)
    dit = random_dit(config)
    torch.manual_seed(3)
    deltas = {"blocks.0.self_attn.q.weight": "diff", "blocks.0.self_attn.q.bias": "diff_b",
              "blocks.1.norm3.weight": "diff", "blocks.0.self_attn.norm_k.weight": "diff",
              "blocks.1.modulation": "diff_m", "head.head.bias": "diff_b"}
    state = dit.state_dict()
    file_tensors, expected_state = {}, {k: v.clone() for k, v in state.items()}
    for parameter, piece in deltas.items():
        delta = 0.1 * torch.randn_like(state[parameter])
        module = parameter.rsplit(".", 1)[0]
        file_tensors[f"diffusion_model.{module}.{piece}"] = delta
        expected_state[parameter] += 0.5 * delta
    path = tmp_path / "lightx2v_like.safetensors"
    save_file(file_tensors, str(path))
    reference = copy.deepcopy(dit)
    reference.load_state_dict(expected_state)
    patch = patch_for(path, dit, strength=0.5)
    assert set(patch.changes) == set(deltas)
    x, t, ctx = inputs(config)
    with torch.no_grad(), patched_on_the_fly(dit, list(dit.blocks), patch):
        got = dit.velocity(x, t, ctx)
    assert rel_err(got, reference.velocity(x, t, ctx)) < 1e-6


def test_several_loras_add_up_with_their_strengths(tmp_path: Path) -> None:
    config = small_config(16)
    dit = random_dit(config)
    first, _ = adapter_state(dit, seed=5)
    second, _ = adapter_state(dit, seed=6)
    a = patch_for(write_format(first, "original", tmp_path / "a"), dit, 0.8)
    b = patch_for(write_format(second, "kohya", tmp_path / "b"), dit, -0.3)
    both = WeightPatch(fingerprint="ab")
    for patch in (a, b):
        for changes in patch.changes.values():
            for change in changes:
                both.add(change.delta, change.strength)
    name = "blocks.0.self_attn.q.weight"
    weight = dit.state_dict()[name]
    delta_a = a.patched(name, weight) - weight
    delta_b = b.patched(name, weight) - weight
    assert torch.allclose(both.patched(name, weight) - weight, delta_a + delta_b, atol=1e-6)


def test_reports_refuse_other_families_and_other_variants(tmp_path: Path) -> None:
    dit = random_dit(small_config(16))
    targets = {k: tuple(v.shape) for k, v in dit.state_dict().items()}
    ltx = tmp_path / "ltx_lora.safetensors"
    save_file({"transformer.transformer_blocks.0.attn1.to_q.lora_A.weight": torch.zeros(4, 64),
               "transformer.transformer_blocks.0.attn1.to_q.lora_B.weight": torch.zeros(64, 4)},
              str(ltx))
    report = match_lora(read_lora(ltx), targets, "tiny Wan", diffusers_module_name).report
    assert report.problem.startswith("made for another model")
    assert "transformer_blocks.0.attn1.to_q" in report.problem
    wide = tmp_path / "wan14b_lora.safetensors"
    save_file({"diffusion_model.blocks.0.self_attn.q.lora_down.weight": torch.zeros(4, 5120),
               "diffusion_model.blocks.0.self_attn.q.lora_up.weight": torch.zeros(5120, 4),
               "diffusion_model.blocks.99.ffn.0.lora_down.weight": torch.zeros(4, 5120),
               "diffusion_model.blocks.99.ffn.0.lora_up.weight": torch.zeros(13824, 4)},
              str(wide))
    report = match_lora(read_lora(wide), targets, "tiny Wan", diffusers_module_name).report
    assert report.problem == ("made for another variant: blocks.0.self_attn.q.weight: the LoRA "
                              "has 5120×5120, the model 64×64")
    assert report.unmatched == ["blocks.99.ffn.0"]


def test_on_the_fly_works_while_blocks_are_streamed(tmp_path: Path) -> None:
    """Block streaming swaps each block's tensors in and out around its forward; the patch must
    be applied after the block arrives and the original restored before it is released."""
    from studio.engine.streaming import BlockStreamer

    config = small_config(16)
    dit = random_dit(config)
    state, reference = adapter_state(dit)
    patch = patch_for(write_format(state, "original", tmp_path / "o"), dit)
    x, t, ctx = inputs(config)
    streamed = copy.deepcopy(dit)
    streamer = BlockStreamer(list(streamed.blocks), torch.device("cpu"))
    with torch.no_grad():
        expected = reference.velocity(x, t, ctx)
        with patched_on_the_fly(streamed, list(streamed.blocks), patch):
            got = streamed.velocity(x, t, ctx)
            again = streamed.velocity(x, t, ctx)
            released = sum(p.numel() for p in streamed.blocks[-1].parameters())
        plain = streamed.velocity(x, t, ctx)
    assert rel_err(got, expected) < 1e-5 and torch.equal(got, again)
    assert streamer.loads > 2 * len(streamed.blocks)  # the blocks really were streamed
    assert released == 0  # the last block was released after its forward, patch undone first
    assert torch.equal(plain, dit.velocity(x, t, ctx))  # and its host copy never changed


@pytest.mark.parametrize(("tensors", "words"), [
    ({"m.lora_down.weight": torch.zeros(4, 8), "m.lora_up.weight": torch.zeros(8, 2)},
     "factors that do not multiply"),
    ({"m.lora_down.weight": torch.zeros(4, 8), "m.lora_up.weight": torch.zeros(8, 4),
      "m.alpha": torch.tensor(-1.0)}, "alpha -1.0"),
    ({"m.diff": torch.tensor([1.0, float("nan")])}, "not finite"),
    ({"something.else": torch.zeros(2)}, "is not a LoRA"),
])  # fmt: skip
def test_damaged_lora_files_are_refused_naming_the_module(tmp_path: Path, tensors: dict,
                                                          words: str) -> None:
    path = tmp_path / "bad.safetensors"
    save_file(tensors, str(path))
    with pytest.raises(CheckpointError, match=words) as refused:
        read_lora(path)
    assert str(path) in refused.value.message
