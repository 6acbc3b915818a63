"""The persistent job queue: order, pause, history, restarts, and two processes sharing it."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from studio.cli import run_cli
from studio.engine.request import GenerationRequest
from studio.errors import OutOfMemory, StudioError
from studio.service.job_queue import Job, JobQueue, JobState
from studio.service.settings import save_settings
from tests.service.tiny_model import TINY_ID, TinyDenoiser, tiny_request


def request(prompt: str = "a red ball", **changes) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, steps=4, width=32, height=24, frames=9, **changes)


def ids(jobs: list[Job]) -> list[str]:
    return [j.id for j in jobs]


def test_queue_survives_a_restart_in_order_with_pause(_studio_home: Path) -> None:
    queue = JobQueue()
    a, b, c = (queue.add(request(p)) for p in ("one", "two", "three"))
    queue.move(c.id, 0)
    queue.remove(b.id)
    queue.set_paused(True)

    again = JobQueue()
    assert ids(again.pending()) == [c.id, a.id]
    assert again.paused
    assert again.get(a.id).request == request("one")
    assert not (_studio_home / "jobs" / b.id).exists()
    on_disk = json.loads((_studio_home / "queue.json").read_text())
    assert on_disk == {"order": [c.id, a.id], "paused": True}


def test_take_next_runs_jobs_in_order_and_history_is_newest_first() -> None:
    queue = JobQueue()
    first, second = queue.add(request("one")), queue.add(request("two"))
    taken = queue.take_next()
    assert taken is not None and taken.id == first.id
    assert taken.state is JobState.RUNNING and taken.attempts == 1
    queue.mark_finished(first.id, {"video_path": "x.mp4"})
    assert queue.take_next().id == second.id
    queue.mark_failed(second.id, "Out of memory", "too big", "use fewer frames")
    assert queue.pending() == [] and queue.take_next() is None
    history = queue.history()
    assert ids(history) == [second.id, first.id]
    assert history[0].error == {"title": "Out of memory", "message": "too big",
                                "hint": "use fewer frames"}
    assert JobQueue().get(first.id).result == {"video_path": "x.mp4"}


def test_paused_queue_starts_nothing_and_resume_continues() -> None:
    queue = JobQueue()
    job = queue.add(request())
    queue.set_paused(True)
    assert queue.take_next() is None
    queue.set_paused(False)
    assert queue.take_next().id == job.id


def test_move_clamps_and_unknown_jobs_raise() -> None:
    queue = JobQueue()
    a, b, c = (queue.add(request(p)) for p in "abc")
    queue.move(a.id, 99)
    assert ids(queue.pending()) == [b.id, c.id, a.id]
    queue.move(a.id, -5)
    assert ids(queue.pending()) == [a.id, b.id, c.id]
    with pytest.raises(KeyError):
        queue.move("nope", 0)
    with pytest.raises(KeyError):
        queue.remove("nope")


def test_running_job_cannot_be_removed_and_requeue_keeps_its_place() -> None:
    queue = JobQueue()
    a, b = queue.add(request("a")), queue.add(request("b"))
    queue.take_next()
    with pytest.raises(StudioError, match="running"):
        queue.remove(a.id)
    queue.requeue(a.id)
    assert ids(queue.pending()) == [a.id, b.id]
    assert queue.get(a.id).state is JobState.QUEUED
    assert queue.take_next().attempts == 2


def test_a_job_left_running_by_a_dead_process_is_queued_again_at_its_place(
    _studio_home: Path,
) -> None:
    queue = JobQueue()
    a, b = queue.add(request("a")), queue.add(request("b"))
    queue.move(b.id, 0)
    # What a killed process leaves: job.json says running and nobody holds its run.lock.
    path = _studio_home / "jobs" / a.id / "job.json"
    data = json.loads(path.read_text())
    data["state"] = "running"
    path.write_text(json.dumps(data))

    again = JobQueue()
    assert ids(again.pending()) == [b.id, a.id]
    assert again.get(a.id).state is JobState.QUEUED
    assert json.loads(path.read_text())["state"] == "queued"


def test_a_job_running_in_another_live_queue_is_left_running() -> None:
    runner, viewer = JobQueue(), JobQueue()
    job = runner.add(request())
    viewer.refresh()
    assert runner.take_next().id == job.id
    other = JobQueue()  # e.g. `studio queue list` while the job runs
    assert other.get(job.id).state is JobState.RUNNING
    assert other.take_next() is None
    with pytest.raises(StudioError, match="running"):
        other.remove(job.id)
    runner.mark_finished(job.id, {})
    other.refresh()
    assert other.pending() == [] and ids(other.history()) == [job.id]


def test_changes_made_by_another_process_are_respected(_studio_home: Path) -> None:
    app, cli = JobQueue(), JobQueue()
    a, b, c = (app.add(request(p)) for p in "abc")
    cli.move(c.id, 0)
    cli.remove(b.id)
    assert app.take_next().id == c.id  # the app sees the command line's order
    app.mark_finished(c.id, {})
    cli.set_paused(True)
    assert app.take_next() is None
    cli.set_paused(False)
    d = cli.add(request("d"))
    app.refresh()
    assert ids(app.pending()) == [a.id, d.id]
    assert ids(app.history()) == [c.id]
    assert b.id not in [j.id for j in app.pending() + app.history()]
    cli.refresh()
    assert ids(cli.history()) == [c.id]


def test_listeners_hear_changes_including_other_processes() -> None:
    queue, other = JobQueue(), JobQueue()
    calls: list[int] = []
    queue.subscribe(lambda: calls.append(len(queue.pending())))
    queue.add(request())
    assert calls == [1]
    queue.refresh()
    assert calls == [1]  # nothing changed, nobody is told
    other.add(request("b"))
    queue.refresh()
    assert calls == [1, 2]


def test_restart_requeues_a_failed_job_under_its_own_id_and_retry_makes_a_new_one() -> None:
    queue = JobQueue()
    a, b = queue.add(request("a")), queue.add(request("b"))
    queue.take_next()
    queue.mark_failed(a.id, "Error", "boom")
    restarted = queue.restart(a.id)
    assert restarted.id == a.id and restarted.state is JobState.QUEUED
    assert restarted.error is None and restarted.ended is None
    assert ids(queue.pending()) == [b.id, a.id]
    with pytest.raises(StudioError, match="queued"):
        queue.restart(a.id)
    new = queue.retry(a.id)
    assert new.id != a.id and new.request == a.request


def test_find_accepts_unique_prefixes() -> None:
    queue = JobQueue()
    job = queue.add(request())
    assert queue.find(job.id[:5]) == job
    assert queue.find(job.id) == job
    with pytest.raises(StudioError, match="no job"):
        queue.find("zzzz-not-an-id")


def test_delete_removes_an_ended_job_and_its_outputs(tmp_path: Path, _studio_home: Path) -> None:
    queue = JobQueue()
    job = queue.add(request())
    video = tmp_path / "v.mp4"
    video.write_bytes(b"video")
    queue.take_next()
    with pytest.raises(StudioError, match="queued"):
        queue.delete(job.id)
    queue.mark_finished(job.id, {"video_path": str(video)})
    queue.delete(job.id)
    assert not video.exists() and not (_studio_home / "jobs" / job.id).exists()
    assert JobQueue().history() == []


def test_job_file_round_trip_and_strict_parsing() -> None:
    job = Job("abc", request(), JobState.FAILED, created=1.0, started=2.0, ended=3.5,
              error={"title": "t", "message": "m", "hint": "h"}, attempts=2)
    assert Job.from_dict(json.loads(json.dumps(job.to_dict()))) == job
    for damage in ({"state": "exploded"}, {"created": "yesterday"}, {"started": "x"},
                   {"result": [1]}, {"request": {"prompt": 3}}, {"version": 99}):
        with pytest.raises(StudioError):
            Job.from_dict({**job.to_dict(), **damage})


# --- the queue runner and `studio queue` -------------------------------------------------------


def test_only_one_runner_works_through_the_queue_at_a_time(service) -> None:
    from studio.service.runner import QueueRunner, runner_lock

    held = runner_lock()
    assert held.try_acquire()
    queue = JobQueue()
    queue.add(tiny_request())
    with pytest.raises(StudioError, match="already running the queue"):
        QueueRunner(queue, service).run()
    held.release()
    assert QueueRunner(queue, service).run(max_jobs=1).finished != []


def studio(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = run_cli(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_queue_commands_list_reorder_pause_and_remove(
    settings, tiny_catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_settings(settings)
    for prompt in ("first clip", "second clip", "third clip"):
        code, out, _ = studio(["generate", "--model", TINY_ID, "--prompt", prompt, "--queue"],
                              capsys)
        assert code == 0 and out.startswith("queued job ")
    a, b, c = JobQueue().pending()
    assert [j.request.prompt for j in (a, b, c)] == ["first clip", "second clip", "third clip"]

    assert studio(["queue", "move", c.id[:6], "1"], capsys)[0] == 0
    assert studio(["queue", "remove", b.id], capsys)[0] == 0
    assert studio(["queue", "pause"], capsys)[0] == 0
    code, out, _ = studio(["queue", "list"], capsys)
    lines = out.splitlines()
    assert code == 0 and lines[0] == "queue: 2 job(s) (paused)"
    assert lines[2].split()[:3] == ["1", c.id, "queued"] and lines[2].endswith("third clip")
    assert lines[3].split()[:3] == ["2", a.id, "queued"] and "32x24x9" in lines[3]

    code, out, _ = studio(["queue", "run"], capsys)
    assert code == 0 and "paused" in out and JobQueue().history() == []
    assert studio(["queue", "resume"], capsys)[0] == 0
    assert not JobQueue().paused

    code, _, err = studio(["queue", "move", "nosuchjob", "1"], capsys)
    assert code == 2 and "no job" in err and "hint:" in err


def test_queue_run_finishes_jobs_and_ctrl_c_leaves_the_current_one_queued(
    settings, tiny_catalog: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    save_settings(settings)
    queue = JobQueue()
    first, second = queue.add(tiny_request(steps=8)), queue.add(tiny_request(seed=3))
    real_call = TinyDenoiser.__call__
    pressed: list[bool] = []

    def interrupting_call(self, x, t_tok, context):
        if self.calls == 4 and not pressed:
            pressed.append(True)
            signal.raise_signal(signal.SIGINT)  # the user presses Ctrl+C during step 5
        return real_call(self, x, t_tok, context)

    monkeypatch.setattr(TinyDenoiser, "__call__", interrupting_call)
    code, out, err = studio(["queue", "run"], capsys)
    assert code == 130 and "stays queued" in err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    queue.refresh()
    assert [j.id for j in queue.pending()] == [first.id, second.id]
    code, out, _ = studio(["queue", "list"], capsys)
    assert "step 4 saved" in out.splitlines()[2]

    code, out, _ = studio(["queue", "run"], capsys)
    assert code == 0 and "2 finished, 0 failed, 0 still queued" in out
    queue.refresh()
    assert [j.id for j in queue.history()] == [second.id, first.id]
    video = Path(queue.get(first.id).result["video_path"])
    assert f"job {first.id}: wrote {video}" in out and video.exists()
    code, out, _ = studio(["queue", "list", "--all"], capsys)
    assert out.splitlines()[0] == "queue: 0 job(s)" and out.count("finished") == 2


def test_restart_and_decode_bring_a_failed_job_to_the_finish(
    settings, tiny_catalog: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from studio.service import generation

    save_settings(settings)
    queue = JobQueue()
    job = queue.add(tiny_request())

    def no_memory(*args, **kwargs):
        raise OutOfMemory("decoding the video ran out of memory", "close other programs")

    with monkeypatch.context() as patch:
        patch.setattr(generation, "decode_latent", no_memory)
        code, _, err = studio(["queue", "run"], capsys)
    assert code == 1 and "ran out of memory" in err and "decode again" in err
    queue.refresh()
    assert queue.get(job.id).state is JobState.FAILED

    out_file = tmp_path / "decoded.mp4"
    code, out, _ = studio(["queue", "decode", job.id[:8], "--out", str(out_file)], capsys)
    assert code == 0 and f"wrote {out_file}" in out and out_file.exists()
    queue.refresh()
    assert queue.get(job.id).state is JobState.FINISHED
    assert queue.get(job.id).result["video_path"] == str(out_file)

    code, _, err = studio(["queue", "restart", job.id], capsys)
    assert code == 2 and "only failed or cancelled" in err
