"""The reliability campaign's careless and hostile inputs through the command line and the
service: each gets a specific error or a correct result, and nothing is left behind.

Numbered as in the campaign (docs/reliability.md): 2 output names, 4 undecodable text, 5
relative image paths, 6 recipe paths, 7 leftovers, 8 the smaller points.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio.cli import run_cli
from studio.engine.request import GenerationRequest
from studio.errors import Cancelled, InvalidRequest, OutOfMemory
from studio.logs import QuietFileHandler
from studio.service import generation, process_memory
from studio.service.generation import GenerationService
from studio.service.job_folder import JobFolder, jobs_root
from studio.service.job_queue import JobQueue, JobState
from studio.service.recipe import request_from_recipe
from studio.service.settings import save_settings
from tests.service.tiny_model import TINY_ID, tiny_request


def studio(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = run_cli(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((24, 32, 3), 200, np.uint8)).save(path)
    return path


def _recipe(path: Path, **request: object) -> Path:
    values = {**tiny_request().to_dict(), **request}
    path.write_text(json.dumps({"recipe_version": 1, "request": values}))
    return path


# --- 2: the output name ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["clip.json", "clip", "clip.mp4.json"])
def test_an_output_that_is_not_an_mp4_is_refused_before_any_work(
    settings, tiny_catalog: Path, tmp_path: Path, capsys, name: str
) -> None:
    save_settings(settings)
    code, _, err = studio(["generate", "--model", TINY_ID, "--prompt", "x", "--out",
                           str(tmp_path / name)], capsys)  # fmt: skip
    assert code == 2 and "does not end in .mp4" in err
    assert not (tmp_path / name).exists() and JobQueue().pending() == []


def test_a_missing_output_folder_is_reported_before_sampling(settings, tiny_catalog: Path,
                                                            tmp_path: Path, capsys) -> None:
    save_settings(settings)
    code, _, err = studio(["generate", "--model", TINY_ID, "--prompt", "x", "--out",
                           str(tmp_path / "nowhere" / "clip.mp4")], capsys)  # fmt: skip
    assert code == 2 and "does not exist" in err
    assert not any(jobs_root().iterdir())  # no job, no latent: nothing was sampled


# --- 4: text that is not UTF-8 -----------------------------------------------------------------


def test_an_undecodable_prompt_is_refused_without_a_job_folder(settings, tiny_catalog: Path,
                                                                capsys) -> None:
    save_settings(settings)
    prompt = b"a \xff cat".decode("utf-8", "surrogateescape")  # as argv delivers such bytes
    code, _, err = studio(["generate", "--model", TINY_ID, "--prompt", prompt, "--queue"],
                          capsys)  # fmt: skip
    assert code == 2 and "prompt" in err and "UTF-8" in err
    assert not any(jobs_root().iterdir())


@pytest.mark.parametrize("field", ["seed", "guidance", "steps"])
def test_numbers_of_hundreds_of_digits_are_refused_naming_the_field(field: str) -> None:
    recipe = {"recipe_version": 1, "request": {**tiny_request().to_dict(), field: 10**400}}
    with pytest.raises(InvalidRequest) as refused:
        request_from_recipe(recipe)
    assert refused.value.field == field


def test_a_recipe_version_of_true_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="recipe_version"):
        request_from_recipe({"recipe_version": True, "request": tiny_request().to_dict()})


def test_a_deeply_nested_recipe_file_is_an_error_not_a_crash(settings, tiny_catalog: Path,
                                                              tmp_path: Path, capsys) -> None:
    save_settings(settings)
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    code, _, err = studio(["generate", "--recipe", str(path), "--queue"], capsys)
    assert code == 2 and "deep" in err and "Traceback" not in err


# --- 5: relative reference paths ---------------------------------------------------------------


def test_a_relative_image_path_is_stored_absolute(settings, tiny_catalog: Path, tmp_path: Path,
                                                  monkeypatch, capsys) -> None:
    save_settings(settings)
    _image(tmp_path / "refs" / "start.png")
    monkeypatch.chdir(tmp_path / "refs")
    code, out, _ = studio(["generate", "--model", TINY_ID, "--prompt", "x", "--image",
                           "start.png", "--queue"], capsys)  # fmt: skip
    assert code == 0
    (job,) = JobQueue().pending()
    assert job.request.conditioning[0].image == str((tmp_path / "refs" / "start.png").resolve())


# --- 6: what a recipe may point at -------------------------------------------------------------


def test_a_recipe_naming_an_unknown_model_is_refused_without_scanning_it(
    settings, tiny_catalog: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    save_settings(settings)
    scanned: list[object] = []
    from studio.models import registry

    monkeypatch.setattr(registry, "scan", lambda folders: scanned.append(folders) or [])
    code, _, err = studio(["generate", "--recipe", str(_recipe(tmp_path / "r.json", model="/")),
                           "--queue"], capsys)  # fmt: skip
    assert code == 2 and "not one of your model sets" in err and "--model" in err
    assert scanned == [] and JobQueue().pending() == []


def test_recipe_images_are_used_beside_the_recipe_or_when_confirmed(
    settings, tiny_catalog: Path, tmp_path: Path, capsys
) -> None:
    save_settings(settings)
    _image(tmp_path / "sent" / "ref.png")
    elsewhere = _image(tmp_path / "private" / "photo.png")
    item = {"frame_index": 0, "strength": 1.0, "fit": "fill"}
    beside = _recipe(tmp_path / "sent" / "beside.json", conditioning=[{"image": "ref.png", **item}])
    away = _recipe(tmp_path / "sent" / "away.json",
                   conditioning=[{"image": str(elsewhere), **item}])  # fmt: skip
    assert studio(["generate", "--recipe", str(beside), "--queue"], capsys)[0] == 0
    code, _, err = studio(["generate", "--recipe", str(away), "--queue"], capsys)
    assert code == 2 and "not beside the recipe" in err and "--trust-recipe-paths" in err
    assert studio(["generate", "--recipe", str(away), "--queue", "--trust-recipe-paths"],
                  capsys)[0] == 0  # fmt: skip
    images = [job.request.conditioning[0].image for job in JobQueue().pending()]
    assert images == [str((tmp_path / "sent" / "ref.png").resolve()), str(elsewhere.resolve())]


# --- 7: leftovers ------------------------------------------------------------------------------


def test_stale_partial_files_and_empty_job_folders_are_removed_after_a_job(
    service: GenerationService, tmp_path: Path
) -> None:
    outputs = service.settings.outputs
    old, fresh = outputs / ".clip.mp4.ab12.partial", outputs / ".other.mp4.cd34.partial"
    old.write_bytes(b"x")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    empty = jobs_root() / "deadbeef0000"
    empty.mkdir()
    os.utime(empty, (time.time() - 3600, time.time() - 3600))
    time.sleep(0.01)
    fresh.write_bytes(b"y")  # a write in progress now, maybe by another process: kept
    os.utime(fresh, (time.time() + 60, time.time() + 60))
    service.run("job1", tiny_request())
    assert not old.exists() and not empty.exists() and fresh.exists()


def test_a_run_that_fails_early_leaves_no_job_folder(service: GenerationService) -> None:
    with pytest.raises(InvalidRequest):
        service.run("failsearly", tiny_request(frames=8))  # 8 frames: not 1 + 4k
    assert not JobFolder.of("failsearly").path.exists()


def test_a_cut_short_plain_generate_is_restarted_from_the_queue(
    settings, tiny_catalog: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    save_settings(settings)

    def cancelled(*args, **kwargs):
        raise Cancelled()

    with monkeypatch.context() as patch:
        patch.setattr(generation, "decode_latent", cancelled)  # Ctrl+C while decoding
        code, _, err = studio(["generate", "--model", TINY_ID, "--prompt", "x"], capsys)
    assert code == 130 and "studio queue restart" in err
    (job,) = JobQueue().history()
    assert job.state is JobState.CANCELLED and job.files.latent.exists()
    assert studio(["queue", "restart", job.id], capsys)[0] == 0
    assert studio(["queue", "run"], capsys)[0] == 0
    done = JobQueue().get(job.id)
    assert done.state is JobState.FINISHED
    recipe = json.loads(done.files.recipe.read_text())
    assert recipe["resumed_from_step"] == 0 and Path(done.result["video_path"]).exists()


# --- 8: smaller points -------------------------------------------------------------------------


def test_restarting_a_queued_job_says_what_to_do(settings, tiny_catalog: Path, capsys) -> None:
    save_settings(settings)
    job = JobQueue().add(tiny_request())
    code, _, err = studio(["queue", "restart", job.id], capsys)
    assert code == 2 and "queued" in err and "in its turn" in err


def test_a_request_larger_than_the_memory_is_refused_before_sampling(
    service: GenerationService, monkeypatch
) -> None:
    monkeypatch.setattr(process_memory, "available_ram", lambda: 1 << 20)
    from studio.service import forecast

    monkeypatch.setattr(forecast, "available_ram", lambda: 1 << 20)
    monkeypatch.setattr(forecast, "current_rss", lambda: 1 << 20)
    model = service.cache.get(TINY_ID)
    model.memory = _memory_of(model)
    with pytest.raises(OutOfMemory, match=r"GiB short"):
        service.run("huge", tiny_request())
    assert not JobFolder.of("huge").latent.exists()


def _memory_of(model):
    from studio.engine.memory_model import ModelMemory, TextEncoderShape, TransformerShape

    return ModelMemory(dit_bytes=1 << 30, dit_block_bytes=1 << 20, text_encoder_bytes=0,
                       vae_bytes=0, dit=TransformerShape(16, 32, 2, 8), act_bytes=4,
                       per_token_time=True, text=TextEncoderShape(16, 2, 8), text_act_bytes=4,
                       vae_decode_per_pixel=10.0, vae_encode_per_pixel=10.0,
                       geometry=model.geometry)  # fmt: skip


def test_a_log_file_that_cannot_be_written_says_so_once(tmp_path: Path, capsys) -> None:
    handler = QuietFileHandler(tmp_path / "studio.log")
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "message", None, None)
    handler.handleError(record)
    handler.handleError(record)
    handler.close()
    err = capsys.readouterr().err
    assert err.count("cannot be written") == 1 and "Traceback" not in err


def test_requests_refuse_lone_surrogates_in_every_text_field() -> None:
    bad = "\udcff"
    for changes in ({"prompt": bad}, {"negative_prompt": bad}, {"model": bad}):
        with pytest.raises(InvalidRequest):
            GenerationRequest(**{"prompt": "x", **changes}).validate()
