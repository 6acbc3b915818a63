"""The queue dock on the real window: queue while paused, reorder, remove, pause/resume, restart,
retry, and changes made by another process."""

from __future__ import annotations

import json

from PySide6.QtCore import QModelIndex, Qt

from studio.app.queue_view import queue_index
from studio.paths import studio_home
from studio.service.job_queue import JobQueue, JobState

from .conftest import run_job


def queue_jobs(qtbot, window, prompts: list[str]) -> list[str]:
    """Queue one job per prompt from the prompt panel (Generate); their ids in order."""
    ids = []
    for prompt in prompts:
        window.prompt_panel.prompt.setPlainText(prompt)
        window.generate()
        ids.append(window.controller.queue.pending()[-1].id)
    qtbot.waitUntil(lambda: window.queue_view.model.queued_ids() == ids, timeout=5000)
    return ids


def disk_order() -> list[str]:
    return json.loads((studio_home() / "queue.json").read_text())["order"]


def pause(qtbot, window, paused: bool = True, check: bool = True) -> None:
    """Click the Pause/Resume toggle and wait until the change is on disk.

    ``check``: the queue's state is still the one asked for (not when a job-started handler
    may change it again meanwhile).
    """
    view = window.queue_view
    assert view.pause_action.isChecked() != paused
    with qtbot.waitSignal(window.queue_ops.done, timeout=5000):
        view.pause_action.trigger()
    if check:
        assert window.controller.queue.paused is paused
        assert view.pause_action.isChecked() is paused


def test_queue_index_maps_positions_among_queued_jobs_to_queue_indices() -> None:
    order = ["run", "a", "b", "c"]
    queued = ["a", "b", "c"]
    assert queue_index(order, queued, "c", 0) == 1  # before "a" (the running job stays first)
    assert queue_index(order, queued, "a", 2) == 3  # after "c": the end
    assert queue_index(order, queued, "b", 0) == 1
    assert queue_index(["a", "b"], ["a", "b"], "b", 0) == 0


def test_paused_queue_reorder_remove_then_resume_runs_in_the_new_order(make_window, qtbot):
    window = make_window(step_delay_s=0.01)
    view, model, queue = window.queue_view, window.queue_view.model, window.controller.queue
    window.prompt_panel.steps.setValue(3)
    pause(qtbot, window)
    first, second, third = queue_jobs(qtbot, window, ["first", "second", "third"])
    assert not window.controller.busy
    assert [model.job_at(i).request.prompt for i in range(3)] == ["first", "second", "third"]
    assert "1. first" in model.data(model.index(0))
    assert "tiny · 64×48 × 9 frames · 3 steps · seed" in model.data(model.index(0))

    # Drag the third job to the top of the list.
    mime = model.mimeData([model.index(2)])
    with qtbot.waitSignal(window.queue_ops.done, timeout=5000):
        assert not model.dropMimeData(mime, Qt.DropAction.MoveAction, 0, 0, QModelIndex())
    assert [j.id for j in queue.pending()] == [third, first, second] == disk_order()
    qtbot.waitUntil(lambda: model.job_ids() == [third, first, second], timeout=5000)

    # Keyboard: Ctrl+Down moves the selected job one down, Ctrl+Up back.
    view.select(third)
    view.list.setFocus()
    with qtbot.waitSignal(window.queue_ops.done, timeout=5000):
        qtbot.keyClick(view.list, Qt.Key.Key_Down, Qt.KeyboardModifier.ControlModifier)
    assert disk_order() == [first, third, second]
    qtbot.waitUntil(lambda: model.job_ids() == [first, third, second], timeout=5000)
    assert view.selected_id() == third
    with qtbot.waitSignal(window.queue_ops.done, timeout=5000):
        qtbot.keyClick(view.list, Qt.Key.Key_Up, Qt.KeyboardModifier.ControlModifier)
    assert disk_order() == [third, first, second]

    # Delete removes the selected queued job from the queue and the disk.
    view.select(first)
    with qtbot.waitSignal(window.queue_ops.done, timeout=5000):
        qtbot.keyClick(view.list, Qt.Key.Key_Delete)
    assert disk_order() == [third, second]
    assert not (studio_home() / "jobs" / first).exists()
    assert first not in {j.id for j in JobQueue().pending() + JobQueue().history()}
    qtbot.waitUntil(lambda: model.job_ids() == [third, second], timeout=5000)

    # Resume; as the first job starts, pause again: it finishes, the next one does not start.
    started: list[str] = []

    def on_started(job_id: str) -> None:
        started.append(job_id)
        if len(started) == 1:
            view.pause_action.trigger()
            window.queue_ops.wait()  # on disk before the worker's "finished" is handled

    window.controller.job_started.connect(on_started)
    outcome = run_job(qtbot, window, lambda: pause(qtbot, window, False, check=False))
    assert outcome.kind == "finished" and outcome.job_id == third
    qtbot.wait(50)
    assert started == [third] and not window.controller.busy
    assert queue.get(second).state is JobState.QUEUED and queue.paused
    qtbot.waitUntil(lambda: model.job_ids() == [second], timeout=5000)

    outcome = run_job(qtbot, window, lambda: pause(qtbot, window, False))
    assert outcome.kind == "finished" and started == [third, second]
    assert [j.id for j in JobQueue().history()] == [second, third]
    assert all(j.state is JobState.FINISHED for j in JobQueue().history())
    assert disk_order() == []
    qtbot.waitUntil(lambda: model.rowCount() == 0, timeout=5000)


def test_the_running_job_shows_its_steps_and_delete_cancels_it_then_restart_and_retry(
        make_window, qtbot):
    window = make_window(step_delay_s=0.02)
    view, model, queue = window.queue_view, window.queue_view.model, window.controller.queue
    window.prompt_panel.steps.setValue(10)
    window.prompt_panel.prompt.setPlainText("long")
    steps_seen: list[str] = []

    def on_progress(progress) -> None:
        row = model.row_of(progress.job_id)
        steps_seen.append(model.data(model.index(row)).splitlines()[0])
        if progress.step == 2:
            view.select(progress.job_id)
            view.list.setFocus()
            qtbot.keyClick(view.list, Qt.Key.Key_Delete)

    window.controller.progress.connect(on_progress)
    outcome = run_job(qtbot, window)
    assert outcome.kind == "cancelled"
    assert steps_seen[:2] == ["▶ Running · step 1/10 · long", "▶ Running · step 2/10 · long"]
    job_id = outcome.job_id
    assert queue.get(job_id).state is JobState.CANCELLED  # cancelled, not deleted
    qtbot.waitUntil(lambda: model.rowCount() == 1
                    and model.job_at(0).state is JobState.CANCELLED, timeout=5000)
    assert model.data(model.index(0)).startswith("■ Cancelled · long")
    window.controller.progress.disconnect(on_progress)

    view.select(job_id)
    assert view.restart_action.isEnabled() and not view.up_action.isEnabled()
    outcome = run_job(qtbot, window, view.restart_action.trigger)
    assert outcome.kind == "finished" and outcome.job_id == job_id  # the same job, resumed
    assert queue.get(job_id).state is JobState.FINISHED

    queue.mark_failed(job_id, "Boom", "it broke", "try again")  # a failed job, as on disk
    qtbot.waitUntil(lambda: model.rowCount() == 1
                    and model.job_at(0).state is JobState.FAILED, timeout=5000)
    assert "✗ Failed: it broke" in model.data(model.index(0))
    assert "it broke — try again" in model.data(model.index(0), Qt.ItemDataRole.ToolTipRole)
    view.select(job_id)
    outcome = run_job(qtbot, window, view.retry_action.trigger)
    assert outcome.kind == "finished" and outcome.job_id != job_id  # a new job, same request
    assert queue.get(outcome.job_id).request == queue.get(job_id).request


def test_changes_by_another_process_show_up_after_a_refresh(make_window, qtbot):
    window = make_window()
    view, model = window.queue_view, window.queue_view.model
    pause(qtbot, window)
    (mine,) = queue_jobs(qtbot, window, ["mine"])
    other = JobQueue()  # what `studio queue …` in a terminal uses: the same folder
    theirs = other.add(window.controller.queue.get(mine).request.with_changes(prompt="theirs"))
    other.move(theirs.id, 0)
    assert window.queue_ops.timer.isActive() and window.queue_ops.timer.interval() == 1000
    qtbot.waitUntil(lambda: model.job_ids() == [theirs.id, mine], timeout=5000)  # the timer
    assert model.data(model.index(0)).startswith("1. theirs")
    other.remove(mine)
    window.queue_ops.refresh()  # what the timer does, without waiting for it
    qtbot.waitUntil(lambda: model.job_ids() == [theirs.id], timeout=5000)
    other.set_paused(False)  # resumed elsewhere: the app starts the job
    window.queue_ops.refresh()
    qtbot.waitUntil(lambda: window.controller.queue.get(theirs.id).state is JobState.FINISHED,
                    timeout=30_000)
    assert not view.pause_action.isChecked()
