"""Faults and bad input at the job level: damaged files, a full disk, bad reference images,
cancellation in every stage, a process killed mid-job, and arbitrary request JSON."""

from __future__ import annotations

import errno
import gc
import json
import logging
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from studio.engine.cancel import CancelToken
from studio.engine.request import ConditioningItem, GenerationRequest
from studio.errors import Cancelled, CheckpointError, InvalidRequest, MediaError
from studio.media import atomic, latent_file, video
from studio.media.latent_file import load_latent
from studio.media.video import read_video
from studio.service import job_queue as jobs_module
from studio.service.generation import GenerationService, ProgressEvent, StageEvent
from studio.service.job_folder import JobFolder
from studio.service.job_queue import JobQueue, JobState
from studio.service.resume import load_checkpoint
from studio.service.runner import QueueRunner
from studio.service.settings import save_settings
from tests.service.tiny_model import TINY_ID, WEIGHTS_NAME, tiny_request

ROOT = Path(__file__).resolve().parents[2]


def partial_files(*folders: Path) -> list[Path]:
    return [p for folder in folders if folder.exists() for p in folder.rglob("*.partial")]


def snapshot(*folders: Path) -> dict[Path, bytes]:
    """Every file's bytes (what "nothing previously saved lost" compares)."""
    return {p: p.read_bytes() for folder in folders for p in sorted(folder.rglob("*"))
            if p.is_file() and p.suffix != ".lock"}


def full_disk_writer(real_atomic_path=atomic.atomic_path):
    """An ``atomic_write_bytes`` whose disk fills up half-way through the temporary file."""

    def write(path, data: bytes) -> None:
        with real_atomic_path(path) as tmp:
            tmp.write_bytes(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

    return write


# --- damaged files -------------------------------------------------------------------------


def test_a_damaged_saved_latent_is_a_clear_error_and_the_job_can_sample_again(
    service: GenerationService, _studio_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    result = service.run("job", tiny_request())
    original = load_latent(result.latent_path)[0]
    data = result.latent_path.read_bytes()
    for damaged in (data[: len(data) // 2], b"\xff" * 64 + data[64:], b""):
        result.latent_path.write_bytes(damaged)
        with pytest.raises(MediaError) as caught:
            service.decode_again("job")
        assert "latent.safetensors" in caught.value.message and caught.value.hint
    with caplog.at_level(logging.WARNING, logger="studio.service.resume"):
        again = service.run("job", tiny_request())  # ignores the damaged latent, samples
    assert "ignoring the saved latent" in caplog.text and again.resumed_from_step == 0
    assert torch.equal(load_latent(again.latent_path)[0], original)
    assert service.run("other", tiny_request(seed=3)).frames == 9  # the service still works


@pytest.mark.parametrize("damage", ["truncated", "bad-header", "garbage", "missing"])
def test_a_damaged_model_file_fails_the_job_clearly_and_the_queue_goes_on(
    service: GenerationService, tiny_dir: Path, damage: str
) -> None:
    weights = tiny_dir / WEIGHTS_NAME
    good = weights.read_bytes()
    damaged = {
        "truncated": good[: len(good) - 100],
        "bad-header": struct.pack("<Q", 40) + b'{"text_table": {"dtype": "F32", "sha',
        "garbage": os.urandom(300),
        "missing": None,
    }[damage]
    if damaged is None:
        weights.unlink()
    else:
        weights.write_bytes(damaged)
    queue = JobQueue()
    first, second = queue.add(tiny_request()), queue.add(tiny_request(seed=2))
    outcomes: list[tuple[str, str]] = []
    runner = QueueRunner(queue, service, on_outcome=lambda job, what: outcomes.append(
        (job.id, what)))
    runner.run()
    assert outcomes == [(first.id, "failed"), (second.id, "failed")]
    error = queue.get(first.id).error
    assert error["title"] == CheckpointError.title and WEIGHTS_NAME in error["message"]
    assert error["hint"]

    weights.write_bytes(good)  # the user fixes the file; the same service carries on
    queue.restart(first.id)
    assert runner.run().finished == [first.id]
    assert queue.get(first.id).state is JobState.FINISHED


def test_a_queue_file_cut_in_half_is_rebuilt_from_the_job_files(
    _studio_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    queue = JobQueue()
    a, b, c = (queue.add(tiny_request(seed=s)) for s in (1, 2, 3))
    queue.take_next()  # a is running when the "crash" happens
    path = _studio_home / "queue.json"
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    del queue  # its process "died": the run lock it held goes with it
    gc.collect()
    with caplog.at_level(logging.WARNING, logger="studio.service.job_queue"):
        restored = JobQueue()
    assert "damaged" in caplog.text
    assert [j.id for j in restored.pending()] == [a.id, b.id, c.id]  # creation order
    assert restored.get(a.id).state is JobState.QUEUED
    assert json.loads(path.read_text())["order"] == [a.id, b.id, c.id]


def test_a_damaged_job_file_is_skipped_with_a_warning_and_left_on_disk(
    _studio_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    queue = JobQueue()
    a, b, c = (queue.add(tiny_request(seed=s)) for s in (1, 2, 3))
    broken = _studio_home / "jobs" / b.id / "job.json"
    broken.write_text(broken.read_text()[:50])
    (_studio_home / "jobs" / c.id / "job.json").write_text('{"version": 1, "id": "x"}')
    with caplog.at_level(logging.WARNING, logger="studio.service.job_queue"):
        restored = JobQueue()
    assert [j.id for j in restored.pending()] == [a.id]
    assert caplog.text.count("skipping unreadable job file") == 2
    assert broken.exists()
    restored.add(tiny_request(seed=4))
    assert caplog.text.count("skipping unreadable job file") == 2  # warned once per file


# --- a full disk -----------------------------------------------------------------------------


def test_disk_full_while_saving_the_latent_keeps_the_checkpoint_to_resume_from(
    service: GenerationService, _studio_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = tiny_request(steps=8)
    earlier = service.run("earlier", tiny_request(seed=5))
    before = snapshot(_studio_home / "jobs" / "earlier", service.settings.outputs)
    with monkeypatch.context() as patch, pytest.raises(MediaError, match="disk is full") as caught:
        patch.setattr(latent_file, "atomic_write_bytes", full_disk_writer())
        service.run("full", request)
    assert "Free some disk space" in caught.value.hint
    folder = _studio_home / "jobs" / "full"
    assert not (folder / "latent.safetensors").exists()
    assert load_checkpoint(JobFolder(folder).checkpoint).step == 6
    assert partial_files(_studio_home, service.settings.outputs) == []
    assert snapshot(_studio_home / "jobs" / "earlier", service.settings.outputs) == before
    assert earlier.video_path.exists()

    result = service.run("full", request)  # space was freed
    assert result.resumed_from_step == 6
    assert torch.equal(load_latent(result.latent_path)[0],
                       load_latent(service.run("fresh", request).latent_path)[0])


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_disk_full_while_exporting_keeps_the_latent_and_decode_again_finishes(
    service: GenerationService, _studio_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = video._encode_command
    with monkeypatch.context() as patch, pytest.raises(MediaError, match="disk is full") as caught:
        patch.setattr(video, "_encode_command",
                      lambda *a, **k: [*real(*a, **k)[:-1], "file:/dev/full"])
        service.run("job", tiny_request())
    assert "decode again" in caught.value.hint
    assert (_studio_home / "jobs" / "job" / "latent.safetensors").exists()
    assert list(service.settings.outputs.glob("*")) == []
    assert partial_files(_studio_home, service.settings.outputs) == []
    calls = service.cache.loaded.denoiser.calls
    result = service.decode_again("job")
    assert service.cache.loaded.denoiser.calls == calls
    assert read_video(result.video_path)[0].shape[0] == 9


def test_disk_full_while_saving_jobs_changes_nothing(
    _studio_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = JobQueue()
    kept = queue.add(tiny_request())
    before = snapshot(_studio_home / "jobs") | {_studio_home / "queue.json":
                                                (_studio_home / "queue.json").read_bytes()}

    def full_json(path, obj, **kw):
        full_disk_writer()(path, json.dumps(obj).encode())

    with monkeypatch.context() as patch:
        patch.setattr(jobs_module, "atomic_write_json", full_json)
        with pytest.raises(MediaError, match="disk is full"):
            queue.add(tiny_request(seed=2))
        with pytest.raises(MediaError, match="disk is full"):
            queue.set_paused(True)
        with pytest.raises(MediaError, match="disk is full"):
            queue.take_next()
    assert [j.id for j in queue.pending()] == [kept.id] and not queue.paused
    assert queue.get(kept.id).state is JobState.QUEUED
    after = snapshot(_studio_home / "jobs") | {_studio_home / "queue.json":
                                               (_studio_home / "queue.json").read_bytes()}
    assert after == before and partial_files(_studio_home) == []
    assert queue.take_next().id == kept.id


def test_disk_full_when_recording_a_finished_job_loses_nothing(
    service: GenerationService, _studio_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = JobQueue()
    job = queue.add(tiny_request())
    real = jobs_module.atomic_write_json
    with monkeypatch.context() as patch, pytest.raises(MediaError, match="disk is full"):
        patch.setattr(jobs_module, "atomic_write_json", lambda path, obj, **kw: (
            full_disk_writer()(path, b"{}") if obj.get("state") == "finished"
            else real(path, obj)))
        QueueRunner(queue, service).run()
    del queue
    gc.collect()
    restarted = JobQueue()  # the next start finds the job queued again …
    assert restarted.get(job.id).state is JobState.QUEUED
    calls = service.cache.loaded.denoiser.calls
    QueueRunner(restarted, service).run()  # … and finishes it from its saved latent
    assert service.cache.loaded.denoiser.calls == calls
    assert restarted.get(job.id).state is JobState.FINISHED


# --- bad reference images --------------------------------------------------------------------


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` × ``height`` pixels (its data is one empty row)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0"))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("content", ["garbage", "huge", "empty", "directory"])
def test_a_bad_reference_image_fails_that_job_only(
    service: GenerationService, tmp_path: Path, content: str
) -> None:
    image = tmp_path / "ref.png"
    if content == "directory":
        image.mkdir()
    else:
        image.write_bytes({"garbage": b"not an image at all" * 10, "empty": b"",
                           "huge": png_header(40_000, 40_000)}[content])
    queue = JobQueue()
    bad = queue.add(tiny_request(conditioning=(ConditioningItem(str(image)),)))
    good = queue.add(tiny_request())
    summary = QueueRunner(queue, service).run()
    assert summary.failed == [bad.id] and summary.finished == [good.id]
    error = queue.get(bad.id).error
    assert error["title"] == MediaError.title and "ref.png" in error["message"]


# --- cancellation in every stage -------------------------------------------------------------


@pytest.mark.parametrize("stage", ["loading", "encoding", "sampling", "decoding", "exporting"])
def test_cancel_in_any_stage_writes_nothing_half_and_loses_nothing(
    service: GenerationService, _studio_home: Path, stage: str
) -> None:
    earlier = service.run("earlier", tiny_request(seed=5))
    service.cache.unload()  # so that "loading" really loads
    outputs = service.settings.outputs
    before = snapshot(_studio_home / "jobs" / "earlier", outputs)
    cancel = CancelToken()
    reached: list[str] = []

    def on_event(event: object) -> None:
        if isinstance(event, StageEvent):
            reached.append(event.stage)
            if event.stage == stage and stage != "sampling":
                cancel.set()
        elif isinstance(event, ProgressEvent) and stage == "sampling" and event.step == 3:
            cancel.set()

    with pytest.raises(Cancelled):
        service.run("cut", tiny_request(), on_event, cancel, output_path=earlier.video_path)
    assert reached[-1] == stage
    assert partial_files(_studio_home, outputs) == []
    assert snapshot(_studio_home / "jobs" / "earlier", outputs) == before  # not overwritten
    latent = _studio_home / "jobs" / "cut" / "latent.safetensors"
    assert latent.exists() == (stage in ("decoding", "exporting"))
    if stage == "sampling":
        assert load_checkpoint(JobFolder(_studio_home / "jobs" / "cut").checkpoint).step == 2


def test_a_cancelled_queue_run_leaves_the_job_queued_and_stops(
    service: GenerationService,
) -> None:
    queue = JobQueue()
    first, second = queue.add(tiny_request(steps=8)), queue.add(tiny_request())
    cancel = CancelToken()

    def on_event(event: object) -> None:
        if isinstance(event, ProgressEvent) and event.step == 5:
            cancel.set()

    summary = QueueRunner(queue, service, on_event).run(cancel)
    assert summary.cancelled == [first.id] and summary.finished == []
    assert [j.id for j in queue.pending()] == [first.id, second.id]
    assert queue.get(first.id).state is JobState.QUEUED
    events: list[object] = []
    summary = QueueRunner(queue, service, events.append).run()
    assert summary.finished == [first.id, second.id]
    first_steps = [e.step for e in events if isinstance(e, ProgressEvent)][:4]
    assert first_steps == [5, 6, 7, 8]  # resumed after the checkpoint at step 4


# --- a process killed mid-job --------------------------------------------------------------


def _studio(args: list[str], env: dict[str, str], **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.service.tiny_studio", *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_job_killed_mid_sampling_finishes_after_a_restart_with_the_same_frames(
    service: GenerationService, tiny_dir: Path, _studio_home: Path
) -> None:
    save_settings(service.settings.with_changes(checkpoint_every=1))
    env = {**os.environ, "STUDIO_HOME": str(_studio_home), "PYTHONPATH": str(ROOT),
           "STUDIO_TEST_TINY_MODEL": str(tiny_dir), "STUDIO_TEST_THREADS":
           str(torch.get_num_threads())}
    queued = _studio(["generate", "--model", TINY_ID, "--prompt", "a blue square falls",
                      "--steps", "12", "--sampler", "stochastic", "--queue"], env)
    out, err = queued.communicate(timeout=120)
    assert queued.returncode == 0, err
    job_id = out.split()[-1]
    checkpoint = JobFolder(_studio_home / "jobs" / job_id).checkpoint

    running = _studio(["queue", "run"], {**env, "STUDIO_TEST_STEP_DELAY": "0.2"})
    deadline = time.monotonic() + 120
    while load_checkpoint(checkpoint) is None or load_checkpoint(checkpoint).step < 3:
        assert running.poll() is None, running.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    running.send_signal(signal.SIGKILL)
    running.communicate(timeout=60)
    killed_at = load_checkpoint(checkpoint).step
    assert 3 <= killed_at < 12
    job_file = json.loads((_studio_home / "jobs" / job_id / "job.json").read_text())
    assert job_file["state"] == "running"  # what the dead process left
    assert not (_studio_home / "jobs" / job_id / "latent.safetensors").exists()

    again = _studio(["queue", "run"], env)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    job = JobQueue().get(job_id)
    assert job.state is JobState.FINISHED and job.attempts == 2
    recipe = json.loads(Path(job.result["recipe_path"]).read_text())
    assert recipe["resumed_from_step"] == killed_at

    reference = service.run("uninterrupted", job.request)
    assert torch.equal(load_latent(Path(job.result["latent_path"]))[0],
                       load_latent(reference.latent_path)[0])
    assert np.array_equal(read_video(job.result["video_path"])[0],
                          read_video(reference.video_path)[0])


# --- arbitrary request JSON ------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
FIELDS = [f for f in tiny_request().to_dict()]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=json_values)
def test_the_request_parser_raises_only_invalid_request_on_any_json(data: object) -> None:
    try:
        request = GenerationRequest.from_dict(data)
    except InvalidRequest:
        return
    assert GenerationRequest.from_dict(request.to_dict()) == request


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=st.dictionaries(st.sampled_from([*FIELDS, "extra"]), json_values, max_size=4),
       conditioning=st.lists(st.dictionaries(
           st.sampled_from(["image", "frame_index", "strength", "fit", "other"]), json_values,
           max_size=5), max_size=2))
def test_damaging_fields_of_a_valid_request_raises_only_invalid_request(
    changes: dict, conditioning: list
) -> None:
    data = {**tiny_request().to_dict(), **changes}
    if conditioning:
        data["conditioning"] = conditioning
    try:
        request = GenerationRequest.from_dict(data)
    except InvalidRequest as exc:
        assert exc.field and exc.message
        return
    assert GenerationRequest.from_json(request.to_json()) == request
