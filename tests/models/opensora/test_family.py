"""Open-Sora 2.0 as a family: scan, refusal of DC-AE, `studio generate` end to end on tiny sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from studio.cli import run_cli
from studio.models.opensora.identify import DC_AE_PROBLEM
from studio.models.registry import scan
from tests.models.opensora.tiny_opensora import TINY_MMDIT, write_mmdit, write_set


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_set(tmp_path_factory.mktemp("os") / "Open-Sora-v2").root


def test_scan_identifies_the_published_layout(tiny_set: Path) -> None:
    sets = scan([tiny_set])
    assert len(sets) == 1, [(s.family, s.problems) for s in sets]
    found = sets[0]
    assert found.family == "opensora" and found.variant == "open-sora-2.0"
    assert found.usable, found.problems
    roles = {c.role: c for c in found.components}
    assert set(roles) == {"dit", "vae", "text_encoder", "clip_text"}
    assert roles["dit"].channels == 64 and roles["vae"].channels == 16
    assert roles["text_encoder"].channels == 32 and roles["clip_text"].channels == 16


def test_prefixed_single_file_is_identified(tmp_path: Path, tiny_set: Path) -> None:
    write_mmdit(tmp_path / "one.safetensors", prefix="model.diffusion_model.")
    from studio.models.opensora.identify import describe_weights
    from studio.models.weight_files import probe_weights

    part = describe_weights(probe_weights(tmp_path / "one.safetensors"))
    assert part is not None and part.role == "dit" and part.layout == "single-file"


def test_dc_ae_files_are_refused_by_name(tmp_path: Path) -> None:
    root = tmp_path / "dcae"
    config = TINY_MMDIT.__class__(**{**{f: getattr(TINY_MMDIT, f) for f in (
        "hidden_size", "num_heads", "depth", "depth_single_blocks", "axes_dim", "vec_in_dim",
        "context_in_dim")}, "in_channels": 128, "patch_size": 1})
    write_mmdit(root / "Open_Sora_v2_Video_DC_AE.safetensors", config)
    save_file({"encoder.project_in.conv.weight": torch.zeros(4, 3, 3, 3)},
              str(root / "F32T4C128_AE.safetensors"))
    found = scan([root])[0]
    assert not found.usable
    assert any(DC_AE_PROBLEM in problem for problem in found.problems), found.problems


def _pictures(folder: Path) -> tuple[Path, Path]:
    first, last = folder / "a.png", folder / "b.png"
    Image.new("RGB", (40, 32), (200, 40, 90)).save(first)
    Image.new("RGB", (32, 48), (20, 140, 220)).save(last)
    return first, last


@pytest.mark.parametrize("mode", ["t2v", "head", "tail", "loop"])
def test_generate_runs_end_to_end(tiny_set: Path, tmp_path: Path, mode: str) -> None:
    first, last = _pictures(tmp_path)
    images = {"t2v": [], "head": [f"{first}@0"], "tail": [f"{last}@-1"],
              "loop": [f"{first}@0", f"{last}@-1"]}[mode]  # fmt: skip
    out = tmp_path / "clip.mp4"
    args = ["generate", "--model", str(tiny_set), "--prompt", "a cat runs.", "--steps", "3",
            "--width", "32", "--height", "32", "--frames", "5", "--out", str(out)]
    for image in images:
        args += ["--image", image]
    assert run_cli(args) == 0
    recipe = json.loads(out.with_suffix(".json").read_text())
    assert recipe["model"]["family"] == "opensora"
    assert recipe["model"]["variant"] == "open-sora-2.0"
    assert recipe["latent_shape"] == [1, 16, 2, 4, 4]
    assert len(recipe["request"]["conditioning"]) == len(images)
    assert out.stat().st_size > 0


def _fused(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The fused layout: attention q/k/v as ``qkv``, single blocks' q/k/v_mlp as ``linear1``."""
    out = dict(state)
    for key in list(state):
        if ".img_attn.q_proj." in key or ".txt_attn.q_proj." in key:
            names = ("q_proj", "k_proj", "v_proj")
            parts = [out.pop(key.replace("q_proj", name)) for name in names]
            out[key.replace("q_proj", "qkv")] = torch.cat(parts)
        elif key.startswith("single_blocks.") and ".q_proj." in key:
            names = ("q_proj", "k_proj", "v_mlp")
            parts = [out.pop(key.replace("q_proj", name)) for name in names]
            out[key.replace("q_proj", "linear1")] = torch.cat(parts)
    return out


def test_prefixed_fused_file_loads_the_same_weights(tiny_set: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from studio.models.opensora.loader import load_mmdit

    root = tmp_path / "fused"
    root.mkdir()
    state = load_file(str(tiny_set / "Open_Sora_v2.safetensors"))
    save_file({f"model.diffusion_model.{k}": v.contiguous() for k, v in _fused(state).items()},
              str(root / "Open_Sora_v2.safetensors"))
    for name in ("hunyuan_vae.safetensors", "google", "openai"):
        (root / name).symlink_to(tiny_set / name)
    found = scan([root])[0]
    assert found.usable, found.problems
    ours = load_mmdit(found, torch.device("cpu"), torch.float32).state_dict()
    assert set(ours) == set(state)
    assert all(torch.equal(ours[k], state[k]) for k in state)


def test_default_suffix_gives_the_original_text_for_a_sentence() -> None:
    from studio.models.opensora.presets import DEFAULTS
    from studio.models.opensora.text import prompt_with_suffix

    prompt = "A red fox runs through the snow."
    assert prompt + DEFAULTS.prompt_suffix == prompt_with_suffix(prompt)


def test_models_scan_lists_the_set(tiny_set: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["models", "scan", str(tiny_set)]) == 0
    out = capsys.readouterr().out
    assert "opensora" in out and "open-sora-2.0" in out and "clip_text" in out


def test_dc_ae_files_beside_the_published_ones_are_spare(tiny_set: Path, tmp_path: Path) -> None:
    root = tmp_path / "both"
    root.mkdir()
    for name in ("Open_Sora_v2.safetensors", "hunyuan_vae.safetensors", "google", "openai"):
        (root / name).symlink_to(tiny_set / name)
    save_file({"encoder.project_in.conv.weight": torch.zeros(4, 3, 3, 3)},
              str(root / "F32T4C128_AE.safetensors"))
    found = scan([root])[0]
    assert found.usable, found.problems
    assert found.component("vae").path.name == "hunyuan_vae.safetensors"
    assert any("F32T4C128_AE" in note and DC_AE_PROBLEM in note for note in found.notes)


def test_presets_are_valid_sizes_and_auto_shift_is_open_soras() -> None:
    from studio.engine.model import ResolutionShift
    from studio.models.opensora.presets import DEFAULTS, GEOMETRY

    for width, height in DEFAULTS.sizes:
        GEOMETRY.check_video_size(DEFAULTS.frames, height, width)
    assert DEFAULTS.sizes[0] == (336, 192) and (1024, 576) in DEFAULTS.sizes
    alpha = ResolutionShift()(GEOMETRY.tokens_per_frame(192, 336), GEOMETRY.latent_frames(129))
    assert alpha == pytest.approx(5.733, abs=1e-3)  # docs/families/opensora.md §3
    alpha = ResolutionShift()(GEOMETRY.tokens_per_frame(576, 1024), GEOMETRY.latent_frames(129))
    assert alpha == pytest.approx(11.872, abs=1e-3)
