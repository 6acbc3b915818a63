"""The editors and panels of the real window: size validation, schedule plot, reference frame,
recipe drops, the model manager."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage, QMouseEvent
from PySide6.QtWidgets import QApplication, QDockWidget, QPushButton

from studio.engine.request import ConditioningItem, GenerationRequest
from studio.media.video import write_video
from studio.service.settings import load_settings

from .conftest import BROKEN_ROW, TINY_ROW, run_job


def drop_files(widget, *paths) -> None:
    """Drag file URLs onto ``widget`` and drop them, as a file manager would: the drag must be
    accepted on entry, then the QDropEvent is delivered."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    enter = QDragEnterEvent(QPoint(10, 10), Qt.DropAction.CopyAction, mime,
                            Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted(), "the drag was refused"
    drop = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime,
                      Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, drop)
    assert drop.isAccepted()


def shifted_schedule(steps: int, alpha: float) -> list[float]:
    """docs/flow-conventions.md §3.1, written out independently of the engine."""
    return [alpha * t / (1 + (alpha - 1) * t) for t in (1 - i / steps for i in range(steps + 1))]


def test_invalid_size_shows_the_rule_and_the_nearest_values(make_window, qtbot):
    window = make_window()
    size = window.prompt_panel.size
    assert not size.banner.isVisible() and window.generate_action.isEnabled()
    size.width_spin.selectAll()
    qtbot.keyClicks(size.width_spin, "50")
    assert size.width_spin.value() == 50
    assert size.banner.isVisible()
    assert "width 50 px is not valid: use a multiple of 16 px" in size.banner.text()
    assert not window.generate_action.isEnabled()
    qtbot.waitUntil(lambda: window.schedule_view.chart is None)
    fixes = [b.text() for b in size.banner.findChildren(QPushButton)]
    assert fixes == ["Use 48", "Use 64"]
    size.frames_spin.setValue(10)
    assert "10 frames is not valid: this model needs 1 + 4·k frames" in size.banner.text()
    window.generate()  # refused with a message, nothing queued
    assert window.controller.queue.pending() == []
    assert "Fix the size first" in window.statusBar().currentMessage()

    for button in size.banner.findChildren(QPushButton):
        if button.text() in ("Use 64", "Use 9"):
            qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
            break
    qtbot.waitUntil(lambda: size.width_spin.value() == 64)
    next(b for b in size.banner.findChildren(QPushButton) if b.text() == "Use 9").click()
    qtbot.waitUntil(lambda: not size.banner.isVisible())
    assert size.values() == (64, 48, 9)
    assert window.generate_action.isEnabled()
    assert size.preset.currentText() == "64 × 48"


def test_schedule_follows_steps_shift_size_frames_and_hover(make_window, qtbot):
    window = make_window()
    panel, view = window.prompt_panel, window.schedule_view
    panel.steps.setValue(10)
    panel.size.set_values(96, 64, 17)
    qtbot.waitUntil(lambda: view.chart is not None and view.chart.steps == 10)
    tokens, latent_frames = (96 // 16) * (64 // 16), 5
    alpha = (1 + (3 - 1) / (4096 - 256) * (tokens - 256)) * math.sqrt(latent_frames)
    assert view.chart.auto and abs(view.chart.shift - alpha) < 1e-12
    assert np.allclose(view.chart.ts, shifted_schedule(10, alpha), atol=1e-12)
    assert panel.shift_label.text() == f"= {alpha:.3f}"
    assert not panel.size.forecast.isVisible()  # the analytic model has no memory forecast

    panel.shift_auto.setChecked(False)
    panel.shift.setValue(3.0)
    qtbot.waitUntil(lambda: not view.chart.auto)
    assert np.allclose(view.chart.ts, shifted_schedule(10, 3.0), atol=1e-12)
    assert "shift α = 3.000 (fixed)" in view.title()

    rect = view._plot_rect()
    x = rect.left() + rect.width() * 4 / 10
    move = QMouseEvent(QMouseEvent.Type.MouseMove, QPointF(x, rect.center().y()),
                       view.mapToGlobal(QPointF(x, rect.center().y())), Qt.MouseButton.NoButton,
                       Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(view, move)
    assert view.hover_text() == f"step 4 · t = {shifted_schedule(10, 3.0)[4]:.4f}"
    _assert_curve_drawn_through(view, shifted_schedule(10, 3.0))


def test_drop_reference_image_and_soft_start_marks(make_window, qtbot, tmp_path):
    window = make_window()
    image = QImage(120, 80, QImage.Format.Format_RGB888)
    image.fill(Qt.GlobalColor.darkMagenta)
    path = tmp_path / "reference.png"
    assert image.save(str(path))
    panel = window.reference_panel
    with qtbot.waitSignal(panel.changed, timeout=10_000):
        drop_files(window, path)
    assert panel.image is not None and (panel.image.width, panel.image.height) == (120, 80)
    (row,) = panel.rows
    thumb = row.thumbnail
    assert (thumb.width(), thumb.height()) == (120, 80)
    shown = row.preview.pixmap()
    assert abs(shown.width() / shown.height() - 1.5) < 0.05  # scaled to fit, aspect kept
    assert panel.items() == (ConditioningItem(str(path.resolve()), 0, 1.0, "fill"),)

    row.frame_choice.setCurrentIndex(1)
    row.strength.setValue(0.6)
    panel.fit.setChecked(True)
    assert panel.items() == (ConditioningItem(str(path.resolve()), -1, 0.6, "fit"),)
    view = window.schedule_view
    qtbot.waitUntil(lambda: view.chart is not None and len(view.chart.starts) == 1
                    and view.chart.starts[0].strength == 0.6)  # the debounced redraw ran
    start = view.chart.starts[0]
    assert abs(start.t_start - 0.4) < 1e-9
    assert start.step == next(i for i, t in enumerate(view.chart.ts) if t - 1e-6 < 0.4)

    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    with qtbot.waitSignal(panel.load_failed, timeout=10_000) as blocker:
        drop_files(panel.drop_zone, text)
    assert "PNG" in blocker.args[0] and panel.message.isVisible()
    assert panel.rows == (row,) and row.image.path == str(path.resolve())  # kept


def test_dropping_a_studio_mp4_restores_its_settings(make_window, qtbot, tmp_path):
    window = make_window()
    request = GenerationRequest(prompt="restored prompt", negative_prompt="fog", seed=4242,
                                steps=7, guidance=2.5, shift=4.0, width=96, height=64, frames=13,
                                fps=8.0, sampler="stochastic", model="tiny")
    video = tmp_path / "made-by-studio.mp4"
    frames = np.zeros((5, 64, 96, 3), np.uint8)
    write_video(video, frames, 8.0, metadata={"recipe_version": 1, "request": request.to_dict()})
    with qtbot.waitSignal(window.files.request_loaded, timeout=10_000):
        drop_files(window, video)
    shown = window.prompt_panel.request(window.reference_panel.items())
    assert shown == request
    assert window.prompt_panel.seed_lock.isChecked()
    assert "Settings restored from made-by-studio.mp4" in window.statusBar().currentMessage()

    plain = tmp_path / "plain.mp4"  # a video without a recipe is a clip, not a recipe
    write_video(plain, frames, 8.0)
    drop_files(window, plain)
    panel = window.reference_panel
    qtbot.waitUntil(lambda: len(panel.rows) == 1, timeout=10_000)
    assert panel.items()[0].image == str(plain.resolve()) and panel.items()[0].clip
    assert window.prompt_panel.request(panel.items()).seed == 4242  # settings kept


def test_model_manager_lists_problems_and_saves_folders(make_window, qtbot, tmp_path):
    window = make_window(rows=(TINY_ROW, BROKEN_ROW))
    panel = window.models_panel
    qtbot.waitUntil(lambda: panel.model.rowCount() == 2)
    model = panel.model
    broken = model.index(1, 1)
    assert model.data(broken) == "2 problems"
    assert "problem: no VAE found; text encoder width 2048 ≠ 4096" in model.data(
        broken, Qt.ItemDataRole.ToolTipRole)
    assert model.data(model.index(1, 2)) == "wan · t2v-1.3b"
    assert model.data(model.index(1, 3)) == "2.6 GiB"
    assert model.data(broken, Qt.ItemDataRole.ForegroundRole) is not None
    assert model.data(model.index(0, 1)) == "ready"
    assert model.data(model.index(0, 1), Qt.ItemDataRole.ForegroundRole) is None
    assert "Loaded: Tiny analytic model" in panel.loaded_label.text()
    assert panel.memory_label.text().startswith("RAM ")

    panel.table.selectRow(1)
    assert panel.details.isVisible()
    assert panel.details.text() == "• no VAE found\n• text encoder width 2048 ≠ 4096"
    panel.load_button.click()
    assert "cannot be loaded" in panel.status.text()

    folder = tmp_path / "wan-models"
    folder.mkdir()
    panel.set_folders((str(folder),))
    panel.folders_changed.emit(panel.folders)
    assert load_settings().model_folders == (str(folder),)
    assert window.settings.model_folders == (str(folder),)

    with qtbot.waitSignal(window.controller.model_unloaded, timeout=10_000):
        panel.unload_button.click()
    assert panel.loaded_label.text() == "No model loaded"
    with qtbot.waitSignal(window.controller.model_failed, timeout=10_000):
        window.load_model("/nowhere/at/all")
    assert "no model set was found" in panel.status.text()
    window.reporter.close_all()


def test_window_layout_is_saved_in_an_ini_under_studio_home(make_window, _studio_home):
    window = make_window()
    window.resize(window.width(), window.height() + 40)  # the offscreen screen is 800 px wide
    height = window.height()
    schedule_dock = window.findChild(QDockWidget, "dock-schedule")
    schedule_dock.hide()
    window.close()
    ini = _studio_home / "window.ini"
    assert ini.is_file() and "geometry" in ini.read_text()
    again = make_window(load=False)
    assert again.height() == height
    assert again.findChild(QDockWidget, "dock-schedule").isHidden()
    assert not again.findChild(QDockWidget, "dock-models").isHidden()


def test_new_seed_unless_locked(make_window):
    window = make_window()
    panel = window.prompt_panel
    panel.seed.setText("77")
    panel.seed_lock.setChecked(True)
    panel.prepare_seed()
    assert panel.seed_value() == 77
    panel.seed_lock.setChecked(False)
    seeds = set()
    for _ in range(5):
        panel.prepare_seed()
        seeds.add(panel.seed_value())
    assert len(seeds) > 1 and 77 not in seeds


def test_pasting_a_bitmap_saves_it_and_uses_it_as_the_reference(make_window, qtbot, _studio_home):
    window = make_window()
    image = QImage(40, 30, QImage.Format.Format_RGB888)
    image.fill(Qt.GlobalColor.darkYellow)
    QApplication.clipboard().setImage(image)
    panel = window.reference_panel
    with qtbot.waitSignal(panel.changed, timeout=10_000):
        window.paste_action.trigger()
    saved = list((_studio_home / "references").glob("pasted-*.png"))
    assert len(saved) == 1 and panel.image.path == str(saved[0].resolve())
    assert (panel.image.width, panel.image.height) == (40, 30)
    assert QImage(str(saved[0])).pixelColor(5, 5) == image.pixelColor(5, 5)
    QApplication.clipboard().clear()


def test_settings_dialog_saves_and_the_worker_uses_the_new_cadence(make_window, qtbot, tmp_path):
    window = make_window()
    window.window_actions.settings.trigger()
    dialog = window.settings_dialog
    assert dialog.isVisible() and dialog.device.currentText() == "auto"
    dialog.preview_every.setValue(2)
    dialog.output_dir.setText(str(tmp_path / "elsewhere"))
    dialog.accept()
    saved = load_settings()
    assert saved.preview_every == 2 and saved.output_dir == str(tmp_path / "elsewhere")
    steps: list[int] = []
    window.controller.preview.connect(lambda _job, step, _images: steps.append(step))
    window.prompt_panel.steps.setValue(5)
    assert run_job(qtbot, window).kind == "finished"
    assert steps == [2, 4, 5]  # every 2nd step, and always the last
    assert len(list((tmp_path / "elsewhere").glob("*.mp4"))) == 1


def test_a_recipe_from_elsewhere_restores_only_what_the_user_has(make_window, qtbot, tmp_path):
    """A received MP4 whose recipe names an unknown model set and an image away from it: the
    settings come back, the model and the image do not, and the window says why."""
    window = make_window()
    elsewhere = tmp_path / "private" / "photo.png"
    elsewhere.parent.mkdir()
    Image.fromarray(np.full((64, 96, 3), 90, np.uint8)).save(elsewhere)
    request = GenerationRequest(prompt="sent to me", width=96, height=64, frames=13, fps=8.0,
                                model="/", conditioning=(ConditioningItem(str(elsewhere)),))
    video = tmp_path / "received" / "clip.mp4"
    video.parent.mkdir()
    write_video(video, np.zeros((5, 64, 96, 3), np.uint8), 8.0,
                metadata={"recipe_version": 1, "request": request.to_dict()})
    with qtbot.waitSignal(window.reporter.reported, timeout=10_000) as blocker:
        drop_files(window, video)
    notes = blocker.args[0].message
    assert "the model / is not one of your model sets" in notes.lower()
    assert f"{elsewhere} is not beside the recipe" in notes
    qtbot.waitUntil(lambda: window.prompt_panel.prompt.toPlainText() == "sent to me")
    assert window.reference_panel.items() == () and window._info.id == "tiny"


def _assert_curve_drawn_through(view, ts) -> None:
    """The painted schedule passes through every step's point: the curve colour is found within
    two pixels of each (step, t), and not at a point off the curve."""
    from studio.app.schedule_view import CURVE

    image = view.grab().toImage()
    scale = image.width() / view.width()
    rect = view._plot_rect()

    def near_curve_colour(point) -> bool:
        for dx in range(-2, 3):
            for dy in range(-2, 3):
                colour = image.pixelColor(int(point.x() * scale) + dx, int(point.y() * scale) + dy)
                if max(abs(colour.red() - CURVE.red()), abs(colour.green() - CURVE.green()),
                       abs(colour.blue() - CURVE.blue())) <= 40:
                    return True
        return False

    assert all(near_curve_colour(view._point(rect, i, t)) for i, t in enumerate(ts))
    assert not near_curve_colour(view._point(rect, 1, 0.05))  # far below the curve at step 1


def test_the_prompt_panel_says_what_a_closed_vocabulary_model_knows(make_window) -> None:
    from dataclasses import replace

    from studio.models.demo.vocabulary import prompt_guide

    window = make_window()
    panel = window.prompt_panel
    assert window._info.prompt_guide == "" and panel.guide.isHidden()
    panel.set_model(replace(window._info, id="demo-like", prompt_guide=prompt_guide()))
    assert not panel.guide.isHidden()
    for word in ("circle", "square", "triangle", "purple", "navy", "still", "moving"):
        assert word in panel.guide.text()


def test_the_step_cache_control_is_part_of_the_request(make_window) -> None:
    window = make_window()
    panel = window.prompt_panel
    assert panel.step_cache.value() == 0.0 and panel.step_cache.text() == "off"
    panel.step_cache.setValue(0.02)
    request = panel.request()
    assert request.step_cache == 0.02
    panel.set_request(request.with_changes(step_cache=0.05))
    assert panel.request().step_cache == 0.05
