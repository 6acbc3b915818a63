"""Registry scans over a folder tree of tiny sets: complete, incomplete, mismatched, damaged and
junk; identification of the published variants from header shapes alone; the scan table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from studio.models.checkpoint import CheckpointHeader, TensorInfo
from studio.models.demo import family as demo_family
from studio.models.demo.family import demo_model_set
from studio.models.loading import parameters_on_meta
from studio.models.registry import ModelSet, scan
from studio.models.scan_table import format_scan_table, set_row
from studio.models.wan.dit import WanDiT
from studio.models.wan.dit_config import WAN21_T2V_1_3B, WAN21_T2V_14B, WAN22_TI2V_5B
from studio.models.wan.identify import describe_weights
from studio.models.wan.text import umt5_config
from studio.models.wan.vae import WAN21_VAE, WAN22_VAE
from studio.models.wan.vae_factory import build_vae
from studio.models.weight_files import WeightFiles
from tests.models.tiny_wan import (
    TINY_DIT_21,
    TINY_UMT5,
    TINY_VAE_22,
    dit_state,
    umt5_state,
    vae_state,
    write_dit,
    write_umt5,
    write_vae,
    write_wan_set,
)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    write_wan_set(root / "complete", "t2v", "original", dtype=torch.bfloat16)
    write_wan_set(root / "diffusers-ti2v", "ti2v", "diffusers")
    write_wan_set(root / "nested" / "sharded", "t2v", "sharded")
    write_wan_set(root / "prefixed", "ti2v", "prefixed")
    # incomplete: a DiT and its VAE only
    tiny = write_wan_set(root / "incomplete", "t2v", "original")
    tiny.text_encoder.unlink()
    shutil.rmtree(root / "incomplete" / "google")
    # mismatched: the Wan 2.1 DiT with the 48-channel Wan 2.2 VAE
    mixed = write_wan_set(root / "mismatched", "t2v", "original")
    mixed.vae.unlink()
    write_vae(root / "mismatched", TINY_VAE_22, False, vae_state(TINY_VAE_22))
    # junk: damaged and foreign files, and nothing usable
    junk = root / "junk"
    junk.mkdir()
    (junk / "random.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    save_file({"lora_up.weight": torch.zeros(2, 2)}, junk / "some_lora.safetensors")
    torch.save([1, 2, 3], junk / "list.pth")
    (junk / "notes.txt").write_text("hello")
    data = tiny.dit.read_bytes()
    (junk / "cut.safetensors").write_bytes(data[: len(data) // 2])
    return root


@pytest.fixture(scope="module")
def sets(tree: Path) -> dict[str, ModelSet]:
    return {Path(s.id).relative_to(tree).as_posix(): s for s in scan([tree])}


def test_finds_every_set_once(tree: Path, sets: dict[str, ModelSet]) -> None:
    assert sorted(sets) == ["complete", "diffusers-ti2v", "incomplete", "junk", "mismatched",
                            "nested/sharded", "prefixed"]
    again = scan([tree, tree / "nested", tree / "complete" / "Wan2.1_VAE.pth"])
    assert sorted(s.id for s in again) == sorted(s.id for s in sets.values())


def test_complete_sets_and_their_layouts(tree: Path, sets: dict[str, ModelSet]) -> None:
    expected = {
        "complete": ("t2v-custom", "original", "BF16", 1),
        "diffusers-ti2v": ("ti2v-custom", "diffusers", "F32", 1),
        "nested/sharded": ("t2v-custom", "original", "F32", 2),
        "prefixed": ("ti2v-custom", "original (model.diffusion_model)", "F32", 1),
    }
    for name, (variant, layout, dtype, dit_files) in expected.items():
        found = sets[name]
        assert found.usable, (name, found.problems)
        assert (found.family, found.variant, found.dtype) == ("wan", variant, dtype)
        dit = found.component("dit")
        assert dit is not None and dit.layout == layout and len(dit.files) == dit_files
        assert set(found.files) == {"dit", "vae", "text_encoder", "tokenizer"}
        on_disk = sum(p.stat().st_size for paths in found.files.values() for p in paths)
        assert found.size == on_disk
        everything = {p for p in (tree / name).rglob("*") if p.is_file()} - {
            tree / name / "model_index.json"}
        assert found.all_files() == sorted(everything)
    assert sets["diffusers-ti2v"].component("vae").variant == "wan2.2-vae"
    assert sets["complete"].component("vae").variant == "wan2.1-vae"
    assert sets["complete"].component("text_encoder").layout == "wan"
    assert sets["diffusers-ti2v"].component("text_encoder").layout == "hf"
    assert sets["complete"].component("tokenizer").path == tree / "complete" / "google" / "umt5-xxl"
    assert sets["nested/sharded"].component("dit").path.name.endswith(".safetensors.index.json")


def test_incomplete_set(tree: Path, sets: dict[str, ModelSet]) -> None:
    found = sets["incomplete"]
    assert not found.complete and found.variant == "t2v-custom"
    assert set(found.files) == {"dit", "vae"}
    problems = " | ".join(found.problems)
    assert f"no UMT5 text encoder in {tree / 'incomplete'}" in problems
    assert f"no tokenizer folder in {tree / 'incomplete'}" in problems


def test_mismatched_vae(tree: Path, sets: dict[str, ModelSet]) -> None:
    found = sets["mismatched"]
    assert found.complete and not found.usable
    vae, dit = tree / "mismatched" / "Wan2.2_VAE.pth", tree / "mismatched" / \
        "diffusion_pytorch_model.safetensors"
    assert found.problems == (
        f"the VAE in {vae} has 48 latent channels but the DiT in {dit} makes 16: "
        "Wan 2.1 T2V (non-standard size) needs the Wan 2.1 VAE (Wan2.1_VAE.pth)",
    )


def test_junk_never_crashes_the_scan(tree: Path, sets: dict[str, ModelSet]) -> None:
    found = sets["junk"]
    assert found.family == "unknown" and not found.complete and found.components == ()
    junk = tree / "junk"
    problems = "\n".join(found.problems)
    assert f"{junk / 'random.safetensors'}: header is not valid JSON" in problems
    assert f"{junk / 'cut.safetensors'}: claims a" in problems or \
        f"{junk / 'cut.safetensors'}: is truncated" in problems
    assert f"{junk / 'list.pth'}: does not hold a state dict" in problems
    assert found.notes == (f"{junk / 'some_lora.safetensors'}: not a part of any known model "
                           "family (1 tensors); ignored",)


def test_stray_files_beside_a_complete_set_are_notes(tmp_path: Path) -> None:
    write_wan_set(tmp_path / "set", "t2v", "original")
    (tmp_path / "set" / "broken.pth").write_bytes(b"garbage")
    save_file({"x": torch.zeros(1)}, tmp_path / "set" / "other.safetensors")
    (found,) = scan([tmp_path])
    assert found.usable
    assert len(found.notes) == 2 and "broken.pth" in found.notes[1]


def test_damaged_part_makes_the_set_unusable(tmp_path: Path) -> None:
    tiny = write_wan_set(tmp_path / "set", "t2v", "original")
    data = tiny.vae.read_bytes()
    tiny.vae.write_bytes(data[:-100])
    (found,) = scan([tmp_path])
    assert not found.complete
    assert any(str(tiny.vae) in p and "not a readable torch checkpoint" in p
               for p in found.problems)
    assert any(p.startswith("no VAE in") and "Wan2.1_VAE.pth" in p for p in found.problems)


def test_text_encoder_width_mismatch(tmp_path: Path) -> None:
    tiny = write_wan_set(tmp_path / "set", "t2v", "original")
    wide = umt5_config(vocab_size=40, d_model=48, d_kv=12, d_ff=48, num_layers=1, num_heads=4)
    write_umt5(tmp_path / "set", False, umt5_state(wide), wide)
    (found,) = scan([tmp_path])
    assert found.problems == (
        f"the text encoder in {tiny.text_encoder} gives 48-wide features but the DiT in "
        f"{tiny.dit} takes 32: Wan needs the UMT5-XXL encoder (models_t5_umt5-xxl-enc-bf16.pth)",
    )


def test_two_dits_in_one_folder_make_two_sets(tmp_path: Path) -> None:
    tiny = write_wan_set(tmp_path / "set", "t2v", "original")
    write_dit(tmp_path / "set", TINY_DIT_21, "prefixed", dit_state(TINY_DIT_21, seed=9))
    found = scan([tmp_path])
    assert sorted(Path(s.id).name for s in found) == ["diffusion_pytorch_model.safetensors",
                                                      "wan_tiny_dit.safetensors"]
    assert all(s.usable and s.component("vae").path == tiny.vae for s in found)


def test_shards_without_index(tmp_path: Path) -> None:
    tiny = write_wan_set(tmp_path / "set", "t2v", "sharded")
    tiny.dit.unlink()
    (found,) = scan([tmp_path])
    assert not found.complete
    assert any("2 shard file(s) such as diffusion_pytorch_model-00001-of-00002.safetensors but "
               "no index" in p for p in found.problems)


def test_an_image_to_video_dit_needs_its_clip_encoder(tmp_path: Path) -> None:
    tiny = write_wan_set(tmp_path / "set", "t2v", "original")
    state = dict(dit_state(TINY_DIT_21))
    state["img_emb.proj.0.weight"] = torch.ones(4)
    save_file(state, tiny.dit)
    (found,) = scan([tmp_path])
    assert found.variant == "i2v-14b-720p"
    assert (f"no CLIP image encoder in {tmp_path / 'set'}: Wan 2.1 I2V 14B 720P needs "
            "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth") in found.problems


def test_missing_folder_gives_nothing(tmp_path: Path) -> None:
    assert scan([tmp_path / "nowhere"]) == []


def _header(module: torch.nn.Module, path: str) -> WeightFiles:
    tensors = {k: TensorInfo("BF16", tuple(v.shape)) for k, v in module.state_dict().items()}
    return WeightFiles(headers=(CheckpointHeader(Path(path), "safetensors", tensors),))


@pytest.mark.parametrize(("config", "variant"), [
    (WAN21_T2V_1_3B, "t2v-1.3b"), (WAN21_T2V_14B, "t2v-14b"), (WAN22_TI2V_5B, "ti2v-5b")])
def test_published_dits_identified_from_shapes(config, variant: str) -> None:  # noqa: ANN001
    with parameters_on_meta():
        module = WanDiT(config)
    component = describe_weights(_header(module, "/m/diffusion_pytorch_model.safetensors"))
    assert component is not None
    assert (component.role, component.variant, component.layout) == ("dit", variant, "original")
    assert (component.channels, component.context_dim) == (config.in_dim, 4096)


def test_published_vaes_and_encoder_identified_from_shapes() -> None:
    from transformers import UMT5EncoderModel

    with parameters_on_meta():
        vaes = [build_vae(WAN21_VAE), build_vae(WAN22_VAE)]
        encoder = UMT5EncoderModel(umt5_config())
    found = [describe_weights(_header(m, "/m/f")) for m in (*vaes, encoder)]
    assert [(c.role, c.variant, c.channels) for c in found] == [
        ("vae", "wan2.1-vae", 16), ("vae", "wan2.2-vae", 48), ("text_encoder", "umt5-xxl", 4096)]
    tiny = describe_weights(_header(torch.nn.Linear(2, 2), "/m/f"))
    assert tiny is None


def test_scan_table(tree: Path, sets: dict[str, ModelSet]) -> None:
    table = format_scan_table(sorted(sets.values(), key=lambda s: s.id))
    lines = table.splitlines()
    assert lines[0].split() == ["FAMILY", "VARIANT", "ROLE", "/", "FILES", "LAYOUT", "DTYPE",
                                "SIZE", "COMPLETE", "PROBLEMS"]
    complete = next(i for i, line in enumerate(lines) if line.endswith(str(tree / "complete"))
                    or str(tree / "complete") + " " in line)
    assert lines[complete].split()[:2] == ["wan", "t2v-custom"]
    assert "yes" in lines[complete].split() and lines[complete].split()[-1] == "-"
    assert lines[complete + 1].split()[:3] == ["dit:", "diffusion_pytorch_model.safetensors",
                                              "original"]
    assert "tokenizer: google/umt5-xxl" in lines[complete + 4]
    assert any("(+1 shards)" in line for line in lines)
    assert any(line.strip().startswith("problem: the VAE in") for line in lines)
    assert format_scan_table([]) == "no model sets found"
    row = set_row(sets["mismatched"])
    assert row["complete"] == "yes" and row["problems"].startswith("the VAE in")
    assert row["files"].startswith("dit: diffusion_pytorch_model.safetensors; vae: Wan2.2_VAE.pth")


def test_demo_model_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "demo"
    folder.mkdir()
    monkeypatch.setattr(demo_family, "demo_model_dir", lambda: folder)
    assert demo_model_set() is None  # no weights yet
    save_file({"w": torch.zeros(4, dtype=torch.float16)}, folder / "dit.safetensors")
    save_file({"w": torch.zeros(2)}, folder / "vae.safetensors")
    (folder / "config.json").write_text(json.dumps({"variant": "shapes-v1"}))
    demo = demo_model_set()
    assert demo is not None and demo.usable
    assert (demo.id, demo.family, demo.variant, demo.dtype) == ("demo", "demo", "shapes-v1", "F16")
    assert demo.files == {"dit": (folder / "dit.safetensors",),
                          "vae": (folder / "vae.safetensors",)}
    (folder / "broken.safetensors").write_bytes(b"\x00")
    assert "broken.safetensors" in demo_model_set().problems[0]

    def absent() -> Path:
        raise FileNotFoundError("no resources")

    monkeypatch.setattr(demo_family, "demo_model_dir", absent)
    assert demo_model_set() is None


def test_tiny_sizes_are_not_mistaken_for_published_ones(sets: dict[str, ModelSet]) -> None:
    assert TINY_UMT5.d_model == 32
    assert sets["complete"].component("text_encoder").variant == "umt5-custom"
