"""The window over a real (tiny, random-weight) Wan 2.1 set found by the registry: the model
manager lists it with its problems, loads it, and it generates through the same path."""

from __future__ import annotations

import shutil

import torch

from studio.media.video import read_video
from studio.service.settings import Settings
from tests.models.tiny_wan import write_wan_set

from .conftest import run_job


def test_tiny_wan_set_is_listed_loaded_and_generates(make_window, qtbot, tmp_path):
    root = tmp_path / "models"
    write_wan_set(root / "wan-tiny", "t2v", "original", dtype=torch.bfloat16)
    broken = write_wan_set(root / "wan-incomplete", "t2v", "original")
    broken.text_encoder.unlink()
    shutil.rmtree(root / "wan-incomplete" / "google")
    settings = Settings(model_folders=(str(root),), output_dir=str(tmp_path / "out"),
                        default_model=str(root / "wan-tiny"))
    window = make_window(settings=settings)
    panel = window.models_panel
    qtbot.waitUntil(lambda: panel.model.rowCount() >= 2, timeout=20_000)
    rows = {panel.model.row_at(i).id: panel.model.row_at(i) for i in range(panel.model.rowCount())}
    good, bad = rows[str(root / "wan-tiny")], rows[str(root / "wan-incomplete")]
    assert good.usable and good.family == "wan" and good.precision.upper() == "BF16"
    assert good.size_bytes > 0
    assert not bad.usable and (bad.problems or not bad.complete)
    assert "Loaded:" in panel.loaded_label.text() and "wan" in panel.loaded_label.text()

    size = window.prompt_panel.size
    multiple = window.prompt_panel.model_info.geometry.size_multiple
    size.set_values(4 * multiple, 2 * multiple, 5)
    window.prompt_panel.prompt.setPlainText("a cat runs in the snow")
    window.prompt_panel.steps.setValue(2)
    forecast = window.prompt_panel.size.forecast
    qtbot.waitUntil(lambda: forecast.isVisible() and "RAM ≈" in forecast.text())
    outcome = run_job(qtbot, window, timeout_ms=120_000)
    assert outcome.kind == "finished", outcome.payload
    frames, _, recipe = read_video(outcome.payload.video_path)
    assert frames.shape == (5, 2 * multiple, 4 * multiple, 3)
    assert recipe["model"]["family"] == "wan" and recipe["request"]["steps"] == 2
