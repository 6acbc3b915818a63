"""LTX-Video as a family: scan of both layouts, refusals, `studio generate` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from studio.cli import run_cli
from studio.models.registry import scan
from tests.models.ltx.tiny_ltx import write_both, write_single_file_set


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_both(tmp_path_factory.mktemp("ltx"))


def test_scan_names_both_layouts(tiny: tuple[Path, Path]) -> None:
    single, diffusers = tiny
    found = {s.id: s for s in scan([single.parent, diffusers])}
    one, other = found[str(single.parent)], found[str(diffusers)]
    for s, layout in ((one, "single-file"), (other, "diffusers")):
        assert s.family == "ltx" and s.usable, s.problems
        roles = {c.role: c for c in s.components}
        assert set(roles) == {"dit", "vae", "text_encoder", "tokenizer"}
        assert roles["dit"].layout == layout and roles["vae"].variant == "0.9.1"
        assert roles["dit"].channels == 16 and roles["text_encoder"].channels == 24
    assert one.variant == "16d-0.9.1" and one.name == "LTX-Video 16D 0.9.1 (F32)"
    assert one.component("vae").path == single


def test_distilled_checkpoint_brings_its_presets(tmp_path: Path) -> None:
    from studio.models.registry import family

    path = write_single_file_set(tmp_path / "d", "0.9.8", distilled=True)
    found = scan([path.parent])[0]
    assert found.variant == "16d-0.9.8-distilled" and "distilled" in found.name
    defaults = family("ltx").defaults_for(found)
    assert defaults.guidance == 1.0 and defaults.stg == 0.0
    assert defaults.timesteps == (1.0, 0.9937, 0.9875, 0.9812, 0.975, 0.9094, 0.725)


def test_incomplete_set_names_the_missing_part(tmp_path: Path, tiny: tuple[Path, Path]) -> None:
    root = tmp_path / "alone"
    root.mkdir()
    (root / tiny[0].name).symlink_to(tiny[0])
    found = scan([root])[0]
    assert found.family == "ltx" and not found.usable
    assert any("T5-v1.1-XXL text encoder" in p for p in found.problems), found.problems
    assert any("T5 tokenizer" in p for p in found.problems)


def test_damaged_header_config_is_refused(tmp_path: Path, tiny: tuple[Path, Path]) -> None:
    root = tmp_path / "bad"
    root.mkdir()
    state = load_file(str(tiny[0]))
    save_file(state, str(root / "ltxv-2b-0.9.1.safetensors"),
              metadata={"config": '{"transformer": {"num_layers": ' + "[" * 40 + "]" * 40})
    for name in ("text_encoder", "tokenizer"):
        (root / name).symlink_to(tiny[0].parent / name)
    found = scan([root])[0]
    assert not found.usable
    assert any("ltxv-2b-0.9.1.safetensors: header config is not valid JSON" in p
               for p in found.problems), found.problems


@pytest.mark.parametrize(("scheduler", "expected"), [
    ('"SD3"', "header config holds no transformer / vae / scheduler objects"),
    ('{"shifting": "SD3", "target_shift_terminal": 1.0}', "target_shift_terminal is 1.0")])
def test_a_damaged_scheduler_config_is_refused_naming_the_file(
        tmp_path: Path, tiny: tuple[Path, Path], scheduler: str, expected: str) -> None:
    """A scheduler that is not an object is refused at the scan; a terminal outside (0, 1) at
    load, naming the file and the field, before any job could fail inside the schedule."""
    from studio.errors import CheckpointError
    from studio.models.registry import family

    root = tmp_path / "bad"
    root.mkdir()
    name = "ltxv-2b-0.9.1.safetensors"
    header = json.loads(safe_metadata(tiny[0])["config"])
    text = json.dumps(header).replace(json.dumps(header["scheduler"]), scheduler)
    save_file(load_file(str(tiny[0])), str(root / name), metadata={"config": text})
    for part in ("text_encoder", "tokenizer"):
        (root / part).symlink_to(tiny[0].parent / part)
    found = scan([root])[0]
    if not found.usable:
        assert any(expected in p and name in p for p in found.problems), found.problems
        return
    with pytest.raises(CheckpointError) as refused:
        family("ltx").load(found, torch.device("cpu"), torch.float32)
    assert name in refused.value.message and expected in refused.value.message


def safe_metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        return handle.metadata()


def test_open_sora_keeps_its_t5_folders() -> None:
    """A T5 folder outside an LTX context is not LTX's."""
    from studio.models.ltx.identify import describe_folder

    assert describe_folder(Path(__file__).parent) is None


def _picture(folder: Path) -> Path:
    path = folder / "a.png"
    Image.new("RGB", (80, 48), (200, 40, 90)).save(path)
    return path


@pytest.mark.parametrize(("layout", "images"), [
    ("single", []), ("single", ["@0"]), ("diffusers", ["@0", "@8"])])
def test_generate_runs_end_to_end(tiny: tuple[Path, Path], tmp_path: Path, layout: str,
                                  images: list[str]) -> None:
    root = tiny[0].parent if layout == "single" else tiny[1]
    picture = _picture(tmp_path)
    out = tmp_path / "clip.mp4"
    args = ["generate", "--model", str(root), "--prompt", "a cat runs", "--steps", "3",
            "--width", "64", "--height", "64", "--frames", "9", "--out", str(out)]
    for image in images:
        args += ["--image", f"{picture}{image}"]
    assert run_cli(args) == 0
    recipe = json.loads(out.with_suffix(".json").read_text())
    assert recipe["model"]["family"] == "ltx"
    assert recipe["latent_shape"] == [1, 16, 2, 2, 2]
    assert len(recipe["request"]["conditioning"]) == len(images)
    assert out.stat().st_size > 0


def test_models_scan_lists_the_set(tiny: tuple[Path, Path],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["models", "scan", str(tiny[1])]) == 0
    out = capsys.readouterr().out
    assert "ltx" in out and "0.9.1" in out
    assert run_cli(["models", "scan", str(tiny[0].parent)]) == 0
    single = capsys.readouterr().out  # the VAE inside the checkpoint is not a second file
    vae_line = next(line for line in single.splitlines() if "vae: " in line)
    assert "in dit's file" in vae_line and " 0 B" not in vae_line


def test_schedule_rule_is_the_checkpoints(tiny: tuple[Path, Path]) -> None:
    from studio.models.registry import family

    found = scan([tiny[0].parent])[0]
    model = family("ltx").load(found, torch.device("cpu"), torch.float32)
    shift, times = model.schedule_rule(40, (1, 128, 16, 16, 24))
    assert times[-2] == pytest.approx(0.1) and times[1] == pytest.approx(0.997985, abs=1e-6)
    assert shift == pytest.approx(16.1728, abs=1e-3)


def test_vae_adapter_mixes_noise_then_unnormalises(tiny: tuple[Path, Path]) -> None:
    """The original's order: noise on the normalised latent, then un-normalise, then decode at
    the decode timestep; encode gives the normalised latent."""
    from studio.models.ltx.loader import load_vae, read_configs
    from studio.models.ltx.vae_adapter import LTXVideoVAEAdapter

    found = scan([tiny[0].parent])[0]
    vae = load_vae(found, read_configs(found), torch.device("cpu"))
    adapter = LTXVideoVAEAdapter(vae, decode_timestep=0.05, decode_noise_scale=0.025)
    z = torch.randn(1, 16, 2, 2, 2, generator=torch.Generator().manual_seed(3))
    noise = adapter.decode_noise(z.shape)
    expected = vae.decode(vae.denormalise(z * 0.975 + noise * 0.025), timestep=0.05)
    torch.testing.assert_close(adapter.decode(z), expected)
    video = torch.rand(1, 3, 9, 64, 64) * 2 - 1
    torch.testing.assert_close(adapter.encode(video), vae.normalise(vae.encode(video)))


def test_published_memory_counts_the_published_sizes() -> None:
    from studio.models.ltx.memory import published_memory

    memory = published_memory("2b", "0.9.1", torch.bfloat16)
    assert memory.dit_bytes == 2 * 1_923_385_472  # models.md's computed 2B parameter count
    assert memory.dit.num_layers == 28 and memory.dit.context_len == 256
    assert published_memory("13b", "0.9.5", torch.bfloat16).dit.dim == 4096


def test_random_model_generates_with_stg_and_cfg() -> None:
    from studio.engine.pipeline import generate
    from studio.engine.request import GenerationRequest
    from studio.models.ltx.random_model import random_model

    model = random_model("cpu", torch.float32)
    assert model.capabilities.frame_layout and model.capabilities.samplers == ("euler",
                                                                               "stochastic")
    out = generate(model, GenerationRequest(prompt="a cat", steps=2, width=64, height=64,
                                            frames=9, fps=24, guidance=3.0, stg=1.0))
    assert out.video.shape == (9, 64, 64, 3) and out.plan.schedule[-2] == pytest.approx(0.1)


def test_releases_with_causal_token_times_are_compared_as_numbers() -> None:
    from studio.models.ltx.loader import keyframe_era

    assert [keyframe_era(v) for v in ("0.9", "0.9.1", "0.9.5", "0.9.8", "0.9.10", "")] == [
        False, False, True, True, True, False]
