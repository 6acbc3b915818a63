"""Every output carries its full recipe, and `studio generate --recipe` reproduces the video."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import studio
from studio.cli import run_cli
from studio.engine.model import ResolutionShift
from studio.engine.pipeline import resolve_shift
from studio.engine.schedule import make_schedule
from studio.errors import InvalidRequest
from studio.media.latent_file import load_latent
from studio.media.video import read_video, read_video_metadata
from studio.service.generation import GenerationService
from studio.service.recipe import RECIPE_VERSION, request_from_recipe
from studio.service.settings import save_settings
from tests.service.tiny_model import GEOMETRY, WEIGHTS_NAME, tiny_request


def test_the_recipe_records_request_model_files_precision_schedule_and_versions(
    service: GenerationService, tiny_dir: Path
) -> None:
    request = tiny_request(sampler="stochastic", steps=5, shift="auto")
    result = service.run("r1", request)
    recipe = json.loads(result.recipe_path.read_text())
    assert recipe == read_video_metadata(result.video_path)
    assert recipe["recipe_version"] == RECIPE_VERSION
    assert recipe["request"] == request.to_dict()
    weights = tiny_dir / WEIGHTS_NAME
    assert recipe["model"]["files"] == [{
        "path": str(weights), "size": weights.stat().st_size,
        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
    }]
    assert recipe["model"]["family"] == "tiny" and recipe["precision"] == "float32"
    assert recipe["sampler"] == "stochastic" and recipe["device"] == "cpu"
    assert recipe["noise"] == {"generator": "cpu", "dtype": "float32", "seed": request.seed}
    shift = resolve_shift(request, GEOMETRY, ResolutionShift())
    assert recipe["schedule"] == make_schedule(request.steps, shift)
    assert len(recipe["schedule"]) == 6 and recipe["schedule"][-1] == 0.0
    assert recipe["shift"] == pytest.approx((3 ** 0.5) * (1 + (12 - 256) / 1920))
    assert recipe["versions"]["torch"] == torch.__version__
    assert recipe["versions"]["cuda"] == torch.version.cuda
    assert recipe["versions"]["studio"] == studio.__version__
    assert set(recipe["timings_s"]) >= {"load", "encode", "sample", "decode"}


@pytest.mark.parametrize("source", ["json", "mp4"])
def test_generate_with_recipe_reproduces_the_video_bit_for_bit(
    service: GenerationService, tiny_catalog: Path, _studio_home: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], source: str,
) -> None:
    save_settings(service.settings)  # the command reads STUDIO_HOME/settings.json
    original = service.run("orig", tiny_request(sampler="stochastic", seed=123))
    recipe_file = original.recipe_path if source == "json" else original.video_path
    out = tmp_path / "again.mp4"

    assert run_cli(["generate", "--recipe", str(recipe_file), "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out

    again = read_video(out)
    first = read_video(original.video_path)
    assert np.array_equal(again[0], first[0]) and again[1] == first[1]
    assert again[2]["request"] == first[2]["request"]
    assert again[2]["schedule"] == first[2]["schedule"]
    latents = [p for p in (_studio_home / "jobs").glob("*/latent.safetensors")
               if p.parent.name != "orig"]
    assert len(latents) == 1
    assert torch.equal(load_latent(latents[0])[0], load_latent(original.latent_path)[0])


def test_options_given_with_a_recipe_override_it(
    service: GenerationService, tiny_catalog: Path, tmp_path: Path
) -> None:
    save_settings(service.settings)
    original = service.run("orig", tiny_request())
    out = tmp_path / "seed9.mp4"
    assert run_cli(["generate", "--recipe", str(original.recipe_path), "--seed", "9",
                    "--out", str(out)]) == 0
    meta = read_video_metadata(out)
    assert meta["request"] == {**tiny_request().to_dict(), "seed": 9}
    assert not np.array_equal(read_video(out)[0], read_video(original.video_path)[0])


def test_a_bad_recipe_file_is_a_clear_error_not_a_crash(
    tiny_catalog: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = {
        "half.json": json.dumps({"request": tiny_request().to_dict()})[:40],
        "future.json": json.dumps({"recipe_version": 99, "request": tiny_request().to_dict()}),
        "list.json": "[1, 2]",
        "field.json": json.dumps({"request": {**tiny_request().to_dict(), "steps": -1}}),
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        assert run_cli(["generate", "--recipe", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err, (name, err)
    assert run_cli(["generate", "--recipe", str(tmp_path / "missing.json")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_request_from_recipe_accepts_a_recipe_or_a_bare_request() -> None:
    request = tiny_request()
    assert request_from_recipe({"recipe_version": 1, "request": request.to_dict()}) == request
    assert request_from_recipe(request.to_dict()) == request
    for bad in ([], "x", {"recipe_version": 2, "request": request.to_dict()}, {"request": 5}):
        with pytest.raises(InvalidRequest):
            request_from_recipe(bad)
