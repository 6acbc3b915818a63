"""A family added from outside ``studio/`` goes through scan → pairing → load → forecast →
generate (CLI) → recipe → ``studio bench``, with nothing changed outside its folder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from studio.cli import run_cli
from studio.engine.request import GenerationRequest
from studio.models import registry
from studio.service.catalog import ModelCache
from studio.service.forecast import forecast_request
from studio.service.generation import GenerationService
from studio.service.model_info import model_info
from studio.service.settings import Settings
from tests.toy_family.family import KEY, MEMORY, NAME, TOY_FAMILY


@pytest.fixture()
def toy_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))
    folder = tmp_path / "toy-model"
    folder.mkdir()
    save_file({KEY: torch.ones(3)}, str(folder / "gain.safetensors"))
    registry.register_family(TOY_FAMILY)
    yield folder
    registry.unregister_family(NAME)


def test_scan_finds_and_pairs_the_toy_set(toy_folder: Path) -> None:
    (toy_folder / "stray.safetensors").write_bytes(b"\x00" * 7)
    sets = registry.scan([toy_folder])
    assert [(s.family, s.variant, s.complete) for s in sets] == [(NAME, "analytic", True)]
    assert any("stray.safetensors" in p for p in sets[0].problems)  # a damaged file is named


def test_load_forecast_and_generate_through_the_service(toy_folder: Path) -> None:
    service = GenerationService(Settings())
    request = GenerationRequest(prompt="a toy", steps=3, width=64, height=48, frames=9,
                                model=str(toy_folder))  # fmt: skip
    result = service.run("toyjob", request)
    info = model_info(service.cache.loaded)
    assert info.family == NAME and info.memory == MEMORY
    forecast = forecast_request(info, request)
    assert forecast is not None and forecast.ram_bytes > MEMORY.weight_bytes
    recipe = json.loads(result.recipe_path.read_text())
    assert recipe["model"]["family"] == NAME
    assert recipe["model"]["files"][0]["path"].endswith("gain.safetensors")
    assert recipe["latent_shape"] == [1, 3, 3, 6, 8]
    assert result.frames == 9 and result.video_path.stat().st_size > 0


def test_the_family_capabilities_are_enforced(toy_folder: Path) -> None:
    service = GenerationService(Settings(), ModelCache(Settings()))
    request = GenerationRequest(prompt="a toy", steps=2, width=64, height=48, frames=9,
                                sampler="stochastic", model=str(toy_folder))  # fmt: skip
    with pytest.raises(Exception, match="stochastic"):
        service.run("toyjob2", request)


def test_cli_generate_and_bench_run_the_toy_family(toy_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "toy.mp4"
    assert run_cli(["generate", "--model", str(toy_folder), "--prompt", "a toy", "--steps", "2",
                    "--out", str(out)]) == 0  # fmt: skip
    assert json.loads(out.with_suffix(".json").read_text())["model"]["family"] == NAME
    report = tmp_path / "bench.json"
    assert run_cli(["bench", "--model", str(toy_folder), "--config", "tiny", "--what",
                    "generate", "--steps", "2", "--device", "cpu", "--json", str(report)]) == 0
    result = json.loads(report.read_text())
    assert set(result["generate"]["stages_s"]) == {"text encode", "sampling", "decode", "export"}
    assert result["spec"].startswith(result["model"]["name"]) and str(toy_folder) in result["spec"]
    assert result["model"]["family"] == NAME  # the loaded set, not the config's random model
