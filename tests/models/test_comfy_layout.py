"""ComfyUI's Wan files (``models/`` with ``diffusion_models/``, ``vae/``, ``text_encoders/``): one
set per DiT or A14B pair, parts paired by shapes across the sub-folders, the one tokenizer problem
until a tokenizer folder is chosen (``studio models tokenizer``), then a clip end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from studio.cli import run_cli
from studio.models.family import Component
from studio.models.registry import ModelSet, scan
from studio.models.wan.comfy import TOKENIZER_PROBLEM, comfy_root
from studio.models.wan.experts import expert_pairs
from studio.models.wan.identify import describe_weights
from studio.models.wan.text import load_umt5_encoder
from studio.models.weight_files import probe_weights
from studio.service.settings import Settings, load_settings, save_settings
from tests.models.tiny_comfy import ComfyTree, write_comfy_tree


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> ComfyTree:
    return write_comfy_tree(tmp_path_factory.mktemp("comfy"))


def by_dit(sets: list[ModelSet]) -> dict[str, ModelSet]:
    return {Path(s.id).name: s for s in sets}


def test_one_set_per_dit_or_pair_with_parts_chosen_by_shapes(tree: ComfyTree) -> None:
    sets = by_dit(scan([tree.models], shared=[tree.tokenizer]))
    assert sorted(sets) == sorted([tree.t2v.name, tree.ti2v.name, tree.high.name])
    expected = {  # DiT file → (variant, precision, VAE, text encoder)
        tree.t2v.name: ("t2v-custom", "F16", tree.vae21, tree.umt5),
        tree.ti2v.name: ("ti2v-custom", "F16", tree.vae22, tree.umt5_wide),
        tree.high.name: ("t2v-a14b", "fp8_scaled", tree.vae21, tree.umt5),
    }
    for name, (variant, precision, vae, text) in expected.items():
        found = sets[name]
        assert found.usable, (name, found.problems)
        assert (found.variant, found.dtype) == (variant, precision)
        assert found.component("vae").path == vae and found.component("text_encoder").path == text
        assert found.component("tokenizer").path == tree.tokenizer
        assert not any("spare" in note for note in found.notes)
    assert sets[tree.high.name].component("dit_low").path == tree.low
    assert sets[tree.t2v.name].component("dit").layout == "original (model.diffusion_model)"
    assert sets[tree.t2v.name].name.endswith("— wan2.1_t2v_1.3B_tiny_fp16")


def test_without_a_tokenizer_each_set_has_exactly_the_tokenizer_problem(tree: ComfyTree) -> None:
    sets = scan([tree.models])
    assert len(sets) == 3
    for found in sets:
        assert found.problems == (TOKENIZER_PROBLEM,) and not found.complete
        assert found.component("tokenizer") is None
    assert scan([tree.models], shared=["", tree.models / "nowhere"]) == sets


def test_the_split_files_folder_or_one_file_finds_the_same_sets(tree: ComfyTree) -> None:
    assert comfy_root(tree.models / "diffusion_models" / "wan" / "2.2") == tree.models
    assert comfy_root(tree.models.parent) is None
    whole = {s.id for s in scan([tree.models])}
    assert {s.id for s in scan([tree.t2v])} == whole  # a file scans its whole models folder


def test_comfyui_text_encoders_are_identified(tree: ComfyTree) -> None:
    """ComfyUI's T5 names (shared.weight, encoder.block.N.layer.…) with the spiece_model bytes,
    fp16 and scaled fp8; the byte tensor is neither a dtype problem nor an unexpected weight."""
    for path, precision in ((tree.umt5, "F16"), (tree.umt5_fp8, "fp8_scaled")):
        part = describe_weights(probe_weights(path))
        assert part is not None and part.role == "text_encoder" and part.layout == "hf"
        assert (part.dtype, part.channels, part.problem) == (precision, 32, "")
        encoder = load_umt5_encoder(probe_weights(path), tree.tokenizer, device="cpu",
                                    dtype=torch.float32)
        assert encoder.encode(["a cat runs"]).shape == (1, 512, 32)
    vae = describe_weights(probe_weights(tree.vae22))
    assert vae is not None and (vae.role, vae.layout, vae.channels) == ("vae", "original", 48)


def test_named_expert_partners_pair_first() -> None:
    """With an fp16 and an fp8 A14B pair side by side, each high-noise file takes its own
    low-noise file, whatever order they were found in."""
    def dit(name: str) -> Component:
        return Component("wan", "dit", Path("/m/diffusion_models") / name, (), "original",
                         "t2v-14b", "BF16", 0, channels=16, context_dim=4096)

    highs = [dit("wan2.2_t2v_high_noise_14B_fp16.safetensors"),
             dit("wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors")]
    lows = [dit("wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors"),
            dit("wan2.2_t2v_low_noise_14B_fp16.safetensors")]
    pairs, alone = expert_pairs(highs + lows)
    assert not alone
    assert {(h.path.name, lo.path.name) for h, lo in pairs} == {
        (highs[0].path.name, lows[1].path.name), (highs[1].path.name, lows[0].path.name)}


def test_tokenizer_command_refuses_what_is_not_a_tokenizer_folder(
        tree: ComfyTree, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["models", "tokenizer", str(tree.models / "vae")]) == 2
    err = capsys.readouterr().err
    assert "is not a tokenizer folder: it holds neither tokenizer.json nor spiece.model" in err
    assert "google/umt5-xxl" in err
    assert run_cli(["models", "tokenizer", str(tree.umt5)]) == 2
    assert "is not a folder" in capsys.readouterr().err
    shady = tmp_path / "shady"
    shady.mkdir()
    (shady / "tokenizer.json").write_text("{}")
    (shady / "tokenizer_config.json").write_text(json.dumps({"auto_map": {"AutoTokenizer": [
        "tok.MyTokenizer", None]}}))
    assert run_cli(["models", "tokenizer", str(shady)]) == 2
    assert "asks to run Python code" in capsys.readouterr().err
    assert load_settings().umt5_tokenizer == ""


def test_tokenizer_command_saves_and_a_comfy_set_generates(
        tree: ComfyTree, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_settings(Settings(model_folders=(str(tree.models),)))
    assert run_cli(["models", "tokenizer", str(tree.tokenizer)]) == 0
    assert load_settings().umt5_tokenizer == str(tree.tokenizer.resolve())
    assert load_settings().model_folders == (str(tree.models),)
    capsys.readouterr()
    assert run_cli(["models", "scan", str(tree.models)]) == 0
    table = capsys.readouterr().out
    for line in (f"t2v-custom   {tree.t2v}", f"ti2v-custom  {tree.ti2v}",
                 f"t2v-a14b     {tree.high}"):
        assert line in table, table
    rows = [row.split() for row in table.splitlines() if row.startswith("wan ")]
    assert [(row[1], row[3]) for row in rows] == [("t2v-custom", "F16"), ("t2v-a14b", "fp8_scaled"),
                                                  ("ti2v-custom", "F16")]  # variant, precision
    assert "problem:" not in table
    out = tmp_path / "clip.mp4"
    assert run_cli(["generate", "--model", str(tree.t2v), "--prompt", "a cat runs on the snow",
                    "--width", "32", "--height", "32", "--frames", "5", "--steps", "2",
                    "--seed", "1", "--out", str(out)]) == 0  # fmt: skip
    assert out.is_file() and out.stat().st_size > 0
