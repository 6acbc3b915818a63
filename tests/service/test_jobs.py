"""The persistent job queue: order, pause, history, restarts, and two processes sharing it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.engine.request import GenerationRequest
from studio.errors import StudioError
from studio.service.jobs import Job, JobQueue, JobState


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
