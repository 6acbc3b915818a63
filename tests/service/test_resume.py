"""Sampling checkpoints and saved latents: an interrupted job continues where it stopped and ends
with exactly the latent an uninterrupted run makes."""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from studio.engine.cancel import CancelToken
from studio.engine.request import ConditioningItem
from studio.errors import Cancelled
from studio.media.latent_file import load_latent
from studio.service import resume
from studio.service.generation import GenerationService, ProgressEvent, StageEvent
from studio.service.job_folder import JobFolder
from studio.service.resume import (
    SamplingCheckpoint,
    job_identity,
    load_checkpoint,
    save_checkpoint,
)
from tests.service.tiny_model import tiny_request


def cancel_after_step(step: int) -> tuple[CancelToken, Callable[[object], None], list[object]]:
    """A token that is set when step ``step`` has been reported, its event sink and log."""
    cancel, events = CancelToken(), []

    def on_event(event: object) -> None:
        events.append(event)
        if isinstance(event, ProgressEvent) and event.step == step:
            cancel.set()

    return cancel, on_event, events


def final_latent(service: GenerationService, job_id: str, request, **kw) -> torch.Tensor:
    return load_latent(service.run(job_id, request, **kw).latent_path)[0]


def reference_image(tmp_path: Path) -> Path:
    pixels = np.zeros((24, 32, 3), np.uint8)
    pixels[4:16, 6:20] = (220, 40, 40)
    path = tmp_path / "ref.png"
    Image.fromarray(pixels).save(path)
    return path


@pytest.mark.parametrize("sampler", ["euler", "stochastic"])
def test_a_cancelled_job_resumes_at_its_checkpoint_with_a_bit_identical_result(
    service: GenerationService, _studio_home: Path, tmp_path: Path, sampler: str
) -> None:
    item = ConditioningItem(str(reference_image(tmp_path)), 0, 0.8)
    request = tiny_request(steps=8, sampler=sampler, conditioning=(item,))
    uninterrupted = final_latent(service, "whole", request)

    cancel, on_event, _ = cancel_after_step(5)
    with pytest.raises(Cancelled):
        service.run("cut", request, on_event, cancel)
    folder = _studio_home / "jobs" / "cut"
    assert load_checkpoint(JobFolder(folder).checkpoint).step == 4  # every 2 steps: 2, 4
    assert not (folder / "latent.safetensors").exists()
    assert list(service.settings.outputs.glob("*cut*")) == []

    events: list[object] = []
    result = service.run("cut", request, events.append)
    steps = [e.step for e in events if isinstance(e, ProgressEvent)]
    assert steps == [5, 6, 7, 8] and result.resumed_from_step == 4
    resumed, recipe = load_latent(result.latent_path)
    assert torch.equal(resumed, uninterrupted)
    assert recipe["resumed_from_step"] == 4
    assert not (JobFolder(folder).checkpoint).exists()  # done with it once the latent is saved


def test_a_saved_final_latent_skips_sampling(
    service: GenerationService, _studio_home: Path
) -> None:
    request = tiny_request()
    cancel = CancelToken()

    def on_event(event: object) -> None:
        if isinstance(event, StageEvent) and event.stage == "exporting":
            cancel.set()  # the job dies after its latent was saved

    with pytest.raises(Cancelled):
        service.run("late", request, on_event, cancel)
    saved, _ = load_latent(_studio_home / "jobs" / "late" / "latent.safetensors")
    model = service.cache.loaded
    calls = model.denoiser.calls
    events: list[object] = []
    result = service.run("late", request, events.append)
    assert model.denoiser.calls == calls
    assert [e.stage for e in events if isinstance(e, StageEvent)] == [
        "loading", "decoding", "exporting"]
    assert result.resumed_from_step == request.steps
    assert torch.equal(load_latent(result.latent_path)[0], saved)


def test_state_saved_for_other_settings_is_ignored(
    service: GenerationService, _studio_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = tiny_request(seed=1, steps=8), tiny_request(seed=2, steps=8)
    cancel, on_event, _ = cancel_after_step(3)
    with pytest.raises(Cancelled):
        service.run("job", first, on_event, cancel)
    assert (JobFolder(_studio_home / "jobs" / "job").checkpoint).exists()
    with caplog.at_level(logging.WARNING, logger="studio.service.resume"):
        result = service.run("job", second)
    assert "other settings" in caplog.text and result.resumed_from_step == 0
    assert torch.equal(load_latent(result.latent_path)[0], final_latent(service, "fresh", second))
    # The saved latent of `second` is not reused for `first` either.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="studio.service.resume"):
        again = service.run("job", first)
    assert "other settings" in caplog.text and again.resumed_from_step == 0


def test_a_damaged_checkpoint_means_sampling_from_the_start(
    service: GenerationService, _studio_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    request = tiny_request(steps=8)
    cancel, on_event, _ = cancel_after_step(5)
    with pytest.raises(Cancelled):
        service.run("job", request, on_event, cancel)
    path = JobFolder(_studio_home / "jobs" / "job").checkpoint
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with caplog.at_level(logging.WARNING, logger="studio.service.resume"):
        result = service.run("job", request)
    assert "damaged sampling checkpoint" in caplog.text and result.resumed_from_step == 0
    assert torch.equal(load_latent(result.latent_path)[0], final_latent(service, "ok", request))


def test_checkpoints_follow_the_setting_and_a_failed_save_does_not_fail_the_job(
    service: GenerationService, _studio_home: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    saved_steps: list[int] = []
    real_save = resume.save_checkpoint

    def recording_save(path: Path, checkpoint: SamplingCheckpoint) -> None:
        saved_steps.append(checkpoint.step)
        real_save(path, checkpoint)

    monkeypatch.setattr(resume, "save_checkpoint", recording_save)
    service.settings = service.settings.with_changes(checkpoint_every=3)
    service.run("a", tiny_request(steps=8))
    assert saved_steps == [3, 6]
    service.settings = service.settings.with_changes(checkpoint_every=0)
    service.run("b", tiny_request(steps=8))
    assert saved_steps == [3, 6]

    def full_disk(path: Path, checkpoint: SamplingCheckpoint) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(resume, "save_checkpoint", full_disk)
    service.settings = service.settings.with_changes(checkpoint_every=1)
    with caplog.at_level(logging.WARNING, logger="studio.service.resume"):
        result = service.run("c", tiny_request(steps=4))
    assert "could not save the sampling checkpoint" in caplog.text
    assert result.frames == 9


def test_job_identity_depends_on_the_request_and_the_model_file_contents() -> None:
    files = [{"path": "a", "size": 1, "sha256": "aa"}]
    identity = job_identity(tiny_request(), files)
    assert identity == job_identity(tiny_request(), [dict(files[0])])
    assert identity != job_identity(tiny_request(seed=8), files)
    assert identity != job_identity(tiny_request(), [{**files[0], "sha256": "bb"}])


def test_checkpoint_file_round_trip(tmp_path: Path) -> None:
    x = torch.randn(1, 4, 3, 6, 8)
    checkpoint = SamplingCheckpoint(x, 3, (1.0, 0.5, 0.25, 0.1, 0.0), "abc")
    save_checkpoint(JobFolder(tmp_path).checkpoint, checkpoint)
    back = load_checkpoint(JobFolder(tmp_path).checkpoint)
    assert torch.equal(back.x, x) and back.step == 3 and back.identity == "abc"
    assert back.schedule == checkpoint.schedule
    assert resume.find_checkpoint(tmp_path, "abc", checkpoint.schedule) is not None
    assert resume.find_checkpoint(tmp_path, "abc", (1.0, 0.0)) is None
    assert resume.saved_progress(tmp_path) == "step 3 saved"
    assert list(tmp_path.iterdir()) == [JobFolder(tmp_path).checkpoint]
