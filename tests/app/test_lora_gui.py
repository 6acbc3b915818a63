"""The LoRA list in the models panel, over a real tiny Wan set: each LoRA's report before
Generate, a refused one marked and left out, a distillation LoRA's few-step button in the prompt
panel, strengths recorded in the recipe, and a recipe's LoRAs restored."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from studio.media.video import read_video
from studio.models.wan.dit import WanDiT
from studio.service.settings import Settings
from tests.models.tiny_wan import TINY_DIT_21, write_wan_set

from .conftest import run_job


def write_loras(folder: Path) -> tuple[Path, Path]:
    """A distillation-named LoRA for the tiny DiT's q projections, and one for a wider DiT."""
    torch.manual_seed(4)
    shapes = {k: tuple(v.shape) for k, v in WanDiT(TINY_DIT_21).state_dict().items()}
    good = {f"diffusion_model.{name.removesuffix('.weight')}.{piece}.weight": tensor
            for name, shape in shapes.items() if name.endswith("self_attn.q.weight")
            for piece, tensor in (("lora_down", 0.1 * torch.randn(2, shape[1])),
                                  ("lora_up", 0.1 * torch.randn(shape[0], 2)))}
    wide = {"diffusion_model.blocks.0.self_attn.q.lora_down.weight": torch.zeros(2, 5120),
            "diffusion_model.blocks.0.self_attn.q.lora_up.weight": torch.zeros(5120, 2)}
    paths = folder / "lightx2v_4step_tiny.safetensors", folder / "wan14b_style.safetensors"
    save_file(good, str(paths[0]))
    save_file(wide, str(paths[1]))
    return paths


def test_loras_are_reported_refused_offered_and_recorded(make_window, qtbot, tmp_path) -> None:
    root = tmp_path / "models"
    write_wan_set(root / "wan-tiny", "t2v", "original")
    good, wide = write_loras(tmp_path)
    settings = Settings(model_folders=(str(root),), output_dir=str(tmp_path / "out"),
                        default_model=str(root / "wan-tiny"))
    window = make_window(settings=settings)
    panel, prompt = window.lora_panel, window.prompt_panel
    panel.add(str(good))
    qtbot.waitUntil(lambda: panel.check_of(str(good)) is not None, timeout=20_000)
    assert panel.table.item(0, 2).text() == "ready"
    assert not prompt.guidance_low.isVisible()  # one DiT: no low-noise guidance
    assert "blocks.N.self_attn.q: 1 matched" in panel.report.text()
    qtbot.waitUntil(prompt.few_step.isVisible, timeout=5_000)
    assert prompt.few_step.text() == "Use few-step settings: 4 steps, guidance 1, shift 5, euler"

    window.open_path(wide)  # a dropped .safetensors file becomes a LoRA row
    qtbot.waitUntil(lambda: panel.check_of(str(wide)) is not None, timeout=20_000)
    assert panel.table.item(1, 2).text().startswith("refused: made for another variant")
    assert "REFUSED" in panel.report.text() and "5120×5120" in panel.report.text()
    assert [item.path for item in panel.items()] == [str(good)]

    prompt.apply_preset()
    assert (prompt.steps.value(), prompt.guidance.value(), prompt.sampler.currentText()) == (
        4, 1.0, "euler")
    assert not prompt.shift_auto.isChecked() and prompt.shift.value() == 5.0
    panel.table.cellWidget(0, 1).setValue(0.5)
    multiple = prompt.model_info.geometry.size_multiple
    prompt.size.set_values(2 * multiple, 2 * multiple, 5)
    prompt.prompt.setPlainText("a cat runs in the snow")
    outcome = run_job(qtbot, window, timeout_ms=120_000)
    assert outcome.kind == "finished", outcome.payload
    recipe = read_video(outcome.payload.video_path)[2]
    (item,) = recipe["request"]["loras"]
    assert (item["path"], item["strength"], len(item["sha256"])) == (str(good), 0.5, 64)
    assert recipe["loras"][0]["applied"] == "merge" and recipe["request"]["steps"] == 4

    panel.set_items((), "auto")
    window.open_path(outcome.payload.recipe_path)  # the recipe brings its LoRA back
    qtbot.waitUntil(lambda: panel.paths() == [str(good)], timeout=20_000)
    qtbot.waitUntil(lambda: len(panel.items()) == 1, timeout=20_000)
    assert panel.items()[0].sha256 == item["sha256"] and panel.items()[0].strength == 0.5
