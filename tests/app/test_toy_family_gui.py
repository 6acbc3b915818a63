"""The toy family of ``tests/toy_family`` (registered from outside ``studio/``) in the window:
the model manager lists it from a scan, the window loads it, and Generate makes its video."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from studio.models import registry
from studio.service.settings import Settings
from tests.toy_family.family import KEY, NAME, TOY_FAMILY

from .conftest import run_job


@pytest.fixture()
def toy_settings(tmp_path: Path) -> Iterator[Settings]:
    folder = tmp_path / "models" / "toy-model"
    folder.mkdir(parents=True)
    save_file({KEY: torch.ones(3)}, str(folder / "gain.safetensors"))
    registry.register_family(TOY_FAMILY)
    yield Settings(model_folders=(str(tmp_path / "models"),), default_model=str(folder),
                   output_dir=str(tmp_path / "outputs"))
    registry.unregister_family(NAME)


def test_the_window_scans_loads_and_generates_with_a_toy_family(make_window, qtbot,
                                                                toy_settings) -> None:
    window = make_window(settings=toy_settings)
    table = window.models_panel.model
    qtbot.waitUntil(lambda: table.find(toy_settings.default_model) >= 0, timeout=20_000)
    row = table.row_at(table.find(toy_settings.default_model))
    assert (row.family, row.complete, row.problems) == (NAME, True, ())
    assert window._info is not None and window._info.family == NAME
    qtbot.waitUntil(lambda: "RAM ≈" in window.prompt_panel.size.forecast.text(),
                    timeout=5_000)
    window.prompt_panel.prompt.setPlainText("a toy in the window")
    outcome = run_job(qtbot, window)
    assert outcome.kind == "finished", outcome.payload
    recipe = json.loads(outcome.payload.recipe_path.read_text())
    assert recipe["model"]["family"] == NAME
    assert recipe["request"]["prompt"] == "a toy in the window"
