"""Excepthooks, the job queue order, background tasks, the smoke test and the service bridges."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtGui import QImage

from studio.app.dialogs import install_excepthooks
from studio.app.images import array_to_qimage, qimage_to_array
from studio.app.smoke import SmokeTest
from studio.app.tasks import TaskRunner
from studio.engine.request import ConditioningItem, GenerationRequest
from studio.engine.shapes import LatentGeometry
from studio.errors import InvalidRequest, MediaError
from studio.media.video import read_video_metadata
from studio.service.job_queue import JobQueue, JobState
from studio.service.model_info import size_problems
from studio.service.reference import inspect_reference, thumbnail_size
from studio.service.schedule_chart import first_changing_step, schedule_chart

WAN21 = LatentGeometry(channels=16, temporal_factor=4, spatial_factor=8, patch=(1, 2, 2))


def test_uncaught_exceptions_on_any_thread_become_dialogs(make_window, qtbot):
    window = make_window(load=False)
    before = (sys.excepthook, threading.excepthook)
    restore = install_excepthooks(window.reporter)
    assert (sys.excepthook, threading.excepthook) != before
    try:
        def crash() -> None:
            raise ValueError("broken in a helper thread")

        with qtbot.waitSignal(window.reporter.reported, timeout=10_000) as blocker:
            thread = threading.Thread(target=crash, name="helper")
            thread.start()
            thread.join()
        assert blocker.args[0].title == "Internal error"
        assert "ValueError: broken in a helper thread" in blocker.args[0].message
        try:
            raise MediaError("the disk went away", "plug it back in")
        except MediaError:
            with qtbot.waitSignal(window.reporter.reported, timeout=10_000) as blocker:
                sys.excepthook(*sys.exc_info())
        failure = blocker.args[0]
        assert (failure.title, failure.message, failure.hint) == (
            "Media problem", "the disk went away", "plug it back in")
        assert "Traceback" in failure.details
        assert len(window.reporter.dialogs) == 2
    finally:
        restore()
    assert (sys.excepthook, threading.excepthook) == before


def test_jobs_run_one_at_a_time_in_queue_order(make_window, qtbot):
    window = make_window()
    c = window.controller
    order: list[str] = []
    c.job_started.connect(order.append)
    window.prompt_panel.steps.setValue(2)
    with qtbot.waitSignals([c.job_finished, c.job_finished, c.job_finished], timeout=60_000):
        ids = [c.submit(window.prompt_panel.request().with_changes(seed=s)) for s in (1, 2, 3)]
        assert c.busy and [j.id for j in c.queue.pending()] == ids
    qtbot.waitUntil(lambda: not c.busy)
    assert order == ids
    history = {j.id: j for j in c.queue.history()}
    assert all(history[i].state is JobState.FINISHED for i in ids)
    assert len({history[i].result["video_path"] for i in ids}) == 3


def test_jobs_left_in_the_queue_by_an_earlier_session_run_at_start(make_window, qtbot):
    first = make_window()
    request = first.prompt_panel.request().with_changes(steps=2)
    first.close()
    earlier = JobQueue()  # what a session that crashed left on disk
    ids = [earlier.add(request.with_changes(seed=s)).id for s in (1, 2)]
    window = make_window(load=False)
    c = window.controller
    assert [j.id for j in c.queue.pending()] == ids
    with qtbot.waitSignals([c.job_finished, c.job_finished], timeout=60_000):
        window.start()
    qtbot.waitUntil(lambda: not c.busy)
    history = {j.id: j for j in c.queue.history()}
    assert all(history[i].state is JobState.FINISHED for i in ids)
    assert c.queue.pending() == []


def test_invalid_requests_are_refused_before_queueing(make_window, qtbot):
    window = make_window()
    with pytest.raises(InvalidRequest):
        window.controller.submit(GenerationRequest(prompt="x", steps=0))
    assert window.controller.queue.pending() == []


def test_background_task_results_and_errors_arrive_on_the_gui_thread(qtbot):
    runner = TaskRunner()
    results, failures, threads = [], [], []

    def on_done(value):
        threads.append(threading.current_thread() is threading.main_thread())
        results.append(value)

    with qtbot.waitSignal(runner.idle, timeout=10_000):
        runner.submit(lambda: threading.current_thread() is threading.main_thread(), on_done)
        runner.submit(lambda: 1 / 0, on_done, failures.append)
    assert results == [False] and threads == [True]
    assert failures[0].title == "Internal error" and "ZeroDivisionError" in failures[0].message
    assert runner.wait(1000)


def test_smoke_test_drives_generate_and_export(make_window, qtbot, tmp_path):
    window = make_window(load=False)
    codes: list[int] = []
    smoke = SmokeTest(window, tmp_path / "smoke.mp4", timeout_s=120, exit_app=codes.append)
    smoke.start()
    with qtbot.waitSignal(smoke.done, timeout=120_000) as blocker:
        window.start()
    assert blocker.args == [0] and codes == [0]
    recipe = read_video_metadata(tmp_path / "smoke.mp4")
    assert recipe["request"]["steps"] == 1 and recipe["request"]["frames"] == 5


def test_qimage_round_trip_keeps_pixels():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (7, 5, 3), dtype=np.uint8)  # odd width: padded scan lines
    image = array_to_qimage(frame)
    assert image.format() == QImage.Format.Format_RGB888
    assert (image.width(), image.height()) == (5, 7)
    del frame  # the QImage owns a copy
    assert np.array_equal(qimage_to_array(image), qimage_to_array(image.copy()))
    again = rng.integers(0, 256, (7, 5, 3), dtype=np.uint8)
    assert np.array_equal(qimage_to_array(array_to_qimage(again)), again)


def test_size_problems_name_the_nearest_valid_values():
    assert size_problems(WAN21, 832, 480, 81) == []
    problems = {p.field: p for p in size_problems(WAN21, 830, 0, 80)}
    assert problems["width"].choices == (816, 832)
    assert problems["height"].choices == (16,)
    assert problems["frames"].choices == (77, 81)
    assert "multiple of 16 px" in problems["width"].message


def test_schedule_chart_is_the_engine_schedule_with_reference_starts():
    request = GenerationRequest(prompt="x", steps=10, width=256, height=256, frames=17,
                                conditioning=(ConditioningItem("a.png", 0, 1.0),
                                              ConditioningItem("b.png", -1, 0.3)))
    preview = schedule_chart(request, WAN21)
    # docs/flow-conventions.md §3.1: seq 256, T' = 5 → α = 2.236068 and this 10-step schedule.
    reference = [1.0, 0.952662, 0.89944, 0.839163, 0.770332, 0.690983, 0.598508, 0.489357,
                 0.35857, 0.199008, 0.0]
    assert preview.auto and abs(preview.shift - 2.236068) < 1e-6
    assert np.allclose(preview.ts, reference, atol=1e-6)
    hard, soft = preview.starts
    assert (hard.latent_frame, hard.step, hard.t_start) == (0, None, 0.0)
    assert soft.latent_frame == 4 and abs(soft.t_start - 0.7) < 1e-12
    assert soft.step == 5 and preview.ts[5] < 0.7 < preview.ts[4]
    assert first_changing_step(preview.ts, 0.0) == 0
    with pytest.raises(InvalidRequest):
        schedule_chart(request.with_changes(frames=16), WAN21)


def test_reference_inspection_accepts_images_and_refuses_others(tmp_path):
    image = QImage(600, 300, QImage.Format.Format_RGB888)
    image.fill(0x336699)
    path = tmp_path / "wide.png"
    assert image.save(str(path))
    info = inspect_reference(path)
    assert (info.width, info.height) == (600, 300) and info.thumbnail.shape == (128, 256, 3)
    assert tuple(info.thumbnail[64, 128]) == (0x33, 0x66, 0x99)
    assert thumbnail_size(100, 50) == (100, 50) and thumbnail_size(1000, 10) == (256, 3)
    bogus = tmp_path / "fake.png"
    bogus.write_bytes(b"not really a png")
    with pytest.raises(MediaError) as caught:
        inspect_reference(bogus)
    assert caught.value.hint


def test_run_app_smoke_test_exits_0(monkeypatch, qapp, tmp_path):
    """``studio --smoke-test`` end to end through ``run_app`` (the tiny model stands in for the
    demo model): style, excepthooks, window, 1-step job, export, exit code."""
    from studio.app import main as app_main
    from studio.service.catalog import ModelCache
    from studio.service.generation import GenerationService
    from studio.service.job_queue import JobQueue
    from studio.service.settings import Settings

    from .conftest import TINY_ROW, TinySet
    from .tiny_family import tiny_model

    def build_window():
        settings = Settings(output_dir=str(tmp_path / "out"), default_model="tiny")
        model = tiny_model()
        cache = ModelCache(settings, finder=lambda _s, _m: TinySet(),
                           loader=lambda _set, _device, _cancel, **_kwargs: model)
        return app_main.MainWindow(settings, GenerationService(settings, cache), JobQueue(),
                                   catalog=lambda _s: [TINY_ROW])

    monkeypatch.setattr(app_main, "build_window", build_window)
    hooks = (sys.excepthook, threading.excepthook)
    assert app_main.run_app(["--smoke-test", "--smoke-timeout", "120"]) == 0
    assert (sys.excepthook, threading.excepthook) == hooks
    assert "QSpinBox::up-arrow" in qapp.styleSheet() and "%ICONS%" not in qapp.styleSheet()
    assert not qapp.windowIcon().isNull()
    exported = Path(os.environ["STUDIO_HOME"]) / "smoke-export.mp4"
    assert read_video_metadata(exported)["request"]["steps"] == 1
    qapp.setStyleSheet("")
