"""The history gallery on the real window: thumbnails from the video, recipe and playback,
re-open into the prompt panel, decode again, delete with files, failed jobs, and a restart."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QMessageBox

from studio.app.history_model import saved_latent
from studio.app.images import qimage_to_array
from studio.errors import StudioError
from studio.media.video import read_video_metadata
from studio.paths import studio_home
from studio.service.job_folder import JobFolder
from studio.service.job_queue import JobState
from studio.service.thumbnails import middle_index

from .conftest import run_job


def finished_job(qtbot, window, prompt: str = "a teal square", steps: int = 3):
    """Generate one job from the prompt panel; the finished Job."""
    window.prompt_panel.prompt.setPlainText(prompt)
    window.prompt_panel.steps.setValue(steps)
    outcome = run_job(qtbot, window)
    assert outcome.kind == "finished", outcome.payload
    return window.controller.queue.get(outcome.job_id)


def wait_for_thumbnail(qtbot, view, job_id: str) -> QImage:
    qtbot.waitUntil(lambda: view.model.thumbnail(job_id) is not None, timeout=10_000)
    return view.model.thumbnail(job_id)


def decoded_frames(path: str) -> np.ndarray:
    """All frames of an MP4 through PyAV (an independent decoder), uint8 ``[T, H, W, 3]``."""
    with av.open(path) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def test_a_finished_job_shows_its_thumbnail_recipe_and_video(make_window, qtbot):
    window = make_window()
    view, model = window.history_view, window.history_view.model
    job = finished_job(qtbot, window)
    qtbot.waitUntil(lambda: model.row_of(job.id) == 0, timeout=5000)

    image = wait_for_thumbnail(qtbot, view, job.id)
    frames = decoded_frames(job.result["video_path"])
    assert (image.width(), image.height()) == (64, 48)  # 64×48 fits in 160 px: kept
    pixels = qimage_to_array(image).astype(float)
    middle = middle_index(len(frames))
    assert np.abs(pixels - frames[middle]).mean() < 3.0
    assert np.abs(pixels - frames[0]).mean() > np.abs(pixels - frames[middle]).mean() + 3.0
    assert model.data(model.index(0), Qt.ItemDataRole.DecorationRole) == image
    caption = model.data(model.index(0))
    assert caption.splitlines()[:2] == ["a teal square", "tiny · 64×48"]
    assert caption.splitlines()[2].endswith("s job · 1.1 s clip")  # 9 frames at 8 fps

    qtbot.waitUntil(lambda: window.player.video is not None, timeout=20_000)  # its own show
    window.player.clear()
    with qtbot.waitSignal(window.result_shown, timeout=20_000) as shown:
        view.select(job.id)
    assert shown.args == [job.result["video_path"]]
    assert window.stack.currentWidget() is window.player
    assert window.player.frame_count == len(frames)
    summary = view.summary.text()
    assert "Prompt: a teal square" in summary and f"Seed: {job.request.seed}" in summary
    assert "Steps: 3" in summary and "State: finished" in summary
    recipe = json.loads(view.recipe.toPlainText())
    assert recipe == json.loads(Path(job.result["recipe_path"]).read_text())
    assert recipe["request"] == job.request.to_dict()
    qtbot.waitUntil(lambda: window.tasks.pending == 0, timeout=20_000)
    view.reload()  # the queue changed: the same job stays selected, and is not played again
    assert view.selected_id() == job.id and window.tasks.pending == 0


def test_reopen_fills_every_field_of_the_prompt_panel(make_window, qtbot, tmp_path):
    window = make_window()
    panel, reference, view = window.prompt_panel, window.reference_panel, window.history_view
    image = tmp_path / "ref.png"
    pixels = QImage(64, 48, QImage.Format.Format_RGB888)
    pixels.fill(Qt.GlobalColor.darkCyan)
    assert pixels.save(str(image))
    with qtbot.waitSignal(reference.changed, timeout=10_000):
        reference.load_path(str(image))
    reference.rows[0].strength.setValue(0.6)
    panel.negative.setPlainText("grey, dull")
    panel.guidance.setValue(4.5)
    panel.shift_auto.setChecked(False)
    panel.shift.setValue(2.25)
    panel.size.set_values(96, 64, 5)
    job = finished_job(qtbot, window, prompt="a reopened fox", steps=4)
    assert job.request.conditioning and job.request.conditioning[0].image == str(image)

    # Change everything on screen, then re-open the job.
    reference.clear()
    panel.prompt.setPlainText("something else")
    panel.negative.setPlainText("")
    panel.seed.setText("7")
    panel.seed_lock.setChecked(False)
    panel.steps.setValue(9)
    panel.guidance.setValue(1.0)
    panel.shift_auto.setChecked(True)
    panel.size.set_values(48, 48, 13)
    qtbot.waitUntil(lambda: view.model.row_of(job.id) == 0, timeout=5000)
    view.select(job.id)
    with qtbot.waitSignal(reference.changed, timeout=10_000):
        view.reopen_button.click()
    assert panel.request(reference.items()) == job.request
    assert panel.seed_lock.isChecked()

    # Without its reference image file, the rest is restored and the user is told.
    image.unlink()
    reference.clear()
    panel.prompt.setPlainText("again something else")
    with qtbot.waitSignal(view.message, timeout=5000) as told:
        view.reopen_button.click()
    assert "no longer exist" in told.args[0]
    assert panel.request(reference.items()) == job.request.with_changes(conditioning=())


def test_decode_again_and_delete_with_its_files(make_window, qtbot):
    window = make_window()
    view, queue = window.history_view, window.controller.queue
    job = finished_job(qtbot, window)
    folder = studio_home() / "jobs" / job.id
    # The history finds the latent where the job saved it (one JobFolder names both).
    assert job.files.latent == JobFolder(folder).latent and JobFolder(folder).latent.is_file()
    assert saved_latent(job) == JobFolder(folder).latent
    assert JobFolder(folder).thumbnail.is_file()
    qtbot.waitUntil(lambda: view.model.row_of(job.id) == 0, timeout=5000)
    view.select(job.id)

    # A job whose decode failed (its latent kept) becomes finished when decoded again.
    queue.mark_failed(job.id, "Out of memory", "the GPU ran out of memory", "decode again")
    qtbot.waitUntil(lambda: view.selected_job().state is JobState.FAILED, timeout=5000)
    assert view.decode_button.isEnabled()
    outcome = run_job(qtbot, window, view.decode_button.click)
    assert outcome.kind == "finished" and outcome.job_id == job.id
    new_video = str(outcome.payload.video_path)
    assert new_video != job.result["video_path"] and Path(new_video).is_file()
    assert outcome.progress_steps == []  # no sampling
    decoded = queue.get(job.id)
    assert decoded.state is JobState.FINISHED and decoded.error is None
    assert decoded.result["video_path"] == new_video
    assert np.array_equal(decoded_frames(new_video), decoded_frames(job.result["video_path"]))

    # Delete asks first; Cancel keeps everything, Yes removes the job, its folder and files.
    qtbot.waitUntil(lambda: view.selected_job().state is JobState.FINISHED, timeout=5000)
    view.delete_button.click()
    view.confirm_box.button(QMessageBox.StandardButton.Cancel).click()
    assert folder.is_dir() and view.confirm_box is None
    view.delete_button.click()
    assert view.confirm_box.isVisible()
    with qtbot.waitSignal(window.queue_ops.done, timeout=5000):
        view.confirm_box.button(QMessageBox.StandardButton.Yes).click()
    assert not folder.exists() and not Path(new_video).exists()
    assert not Path(decoded.result["recipe_path"]).exists()
    qtbot.waitUntil(lambda: view.model.rowCount() == 0, timeout=5000)
    assert view.summary.text() == "Select a job to see its recipe"


def test_failed_jobs_are_marked_and_the_history_survives_a_restart(make_window, qtbot):
    first = make_window()
    done = finished_job(qtbot, first, prompt="kept across restarts")
    first.test_model.denoiser.fail_with = StudioError("the denoiser gave up", "lower the steps")
    failed = run_job(qtbot, first)
    assert failed.kind == "failed"
    first.test_model.denoiser.fail_with = None
    first.close()
    JobFolder(studio_home() / "jobs" / done.id).thumbnail.unlink()  # an older job: none yet

    window = make_window()
    view, model = window.history_view, window.history_view.model
    assert [j.id for j in model.jobs()] == [failed.job_id, done.id]
    assert model.data(model.index(0)).splitlines()[-1] == "FAILED"
    assert model.data(model.index(0), Qt.ItemDataRole.ForegroundRole).color().name() == "#ef9a9a"
    tip = model.data(model.index(0), Qt.ItemDataRole.ToolTipRole)
    assert "the denoiser gave up — lower the steps" in tip
    view.select(failed.job_id)
    assert "Error: the denoiser gave up — lower the steps" in view.summary.text()
    assert not view.decode_button.isEnabled()  # it failed while sampling: no latent
    assert model.thumbnail(failed.job_id) is None

    image = wait_for_thumbnail(qtbot, view, done.id)  # made again from the video
    assert JobFolder(studio_home() / "jobs" / done.id).thumbnail.is_file()
    frames = decoded_frames(done.result["video_path"])
    assert np.abs(qimage_to_array(image).astype(float)
                  - frames[middle_index(len(frames))]).mean() < 3.0


def test_export_again_saves_the_job_picked_in_the_history(make_window, qtbot, tmp_path):
    window = make_window()
    view = window.history_view
    older = finished_job(qtbot, window, prompt="the older job")
    newer = finished_job(qtbot, window, prompt="the newer job")
    qtbot.waitUntil(lambda: window.shown_video == Path(newer.result["video_path"]), timeout=20_000)
    qtbot.waitUntil(lambda: view.model.row_of(older.id) == 1, timeout=5000)

    with qtbot.waitSignal(window.result_shown, timeout=20_000):
        view.select(older.id)
    assert window.export_action.isEnabled()
    target = tmp_path / "again.mp4"
    with qtbot.waitSignal(window.files.exported, timeout=30_000):
        window.export_to(target)
    assert read_video_metadata(target)["request"]["prompt"] == "the older job"
    assert np.array_equal(decoded_frames(str(target)), decoded_frames(older.result["video_path"]))

    # Deleting the job on show takes its video: nothing is left to export.
    with qtbot.waitSignal(view.deleted, timeout=5000):
        view.delete(older.id)
    assert window.shown_video is None and not window.export_action.isEnabled()
    assert window.player.video is None
