"""The reference panel's keyframes: add three, change their frames and strengths, remove one;
the job's request carries them, a recipe puts them back, the schedule lists each; first-frame
models keep one row at frame 0 and models without conditioning disable the panel."""

from __future__ import annotations

import numpy as np
from PIL import Image
from PySide6.QtGui import QImage

from studio.app.job_text import recipe_summary
from studio.app.keyframe_list import NUMBERED, free_frame
from studio.app.schedule_view import MARKER
from studio.engine.model import FIRST_FRAME
from studio.engine.request import ConditioningItem, GenerationRequest
from studio.media.video import write_video

from .conftest import run_job
from .test_panels import drop_files

T_EPS = 1e-6  # the mask's t_eps (docs/flow-conventions.md), written out here on purpose


def _images(folder, count: int) -> list[str]:
    """``count`` small PNGs of different greys; their absolute paths."""
    paths = []
    for k in range(count):
        path = folder / f"key{k}.png"
        Image.fromarray(np.full((32, 48, 3), 40 + 60 * k, np.uint8)).save(path)
        paths.append(str(path.resolve()))
    return paths


def _first_step(ts, strength: float) -> int | None:
    """The first step whose update reaches a token of mask m: t_i − t_eps < 1 − m."""
    return next((i for i, t in enumerate(ts[:-1]) if t - T_EPS < 1.0 - strength), None)


def _has_marker_text(image: QImage, top: float, bottom: float, left: float, scale: float) -> bool:
    for y in range(int(top * scale), int(bottom * scale)):
        for x in range(int(left * scale), int((left + 160) * scale)):
            c = image.pixelColor(x, y)
            if max(abs(c.red() - MARKER.red()), abs(c.green() - MARKER.green()),
                   abs(c.blue() - MARKER.blue())) <= 40:
                return True
    return False


def test_free_frame_fills_first_last_then_the_widest_gap() -> None:
    assert free_frame([], 17) == 0 and free_frame([0], 17) == -1
    assert free_frame([0, -1], 17) == 8 and free_frame([0, 16], 17) == 8
    assert free_frame([0, -1, 8], 17) == 4 and free_frame([0, 4, -1], 17) == 10
    assert free_frame([0], 1) == 0


def test_three_keyframes_edit_remove_run_and_show_on_the_schedule(make_window, qtbot, tmp_path):
    window = make_window()
    panel, view = window.reference_panel, window.schedule_view
    window.prompt_panel.size.set_values(96, 64, 13)
    window.prompt_panel.steps.setValue(10)
    a, b, c = _images(tmp_path, 3)
    drop_files(panel.drop_zone, a, b)  # two at once
    qtbot.waitUntil(lambda: len(panel.rows) == 2, timeout=10_000)
    panel.load_path(c)
    qtbot.waitUntil(lambda: len(panel.rows) == 3, timeout=10_000)
    assert panel.items() == (  # first, last, the middle
        ConditioningItem(a, 0, 1.0, "fill"), ConditioningItem(b, -1, 1.0, "fill"),
        ConditioningItem(c, 6, 1.0, "fill"))
    assert all(row.frame_index.maximum() == 12 for row in panel.rows)

    first, last, middle = panel.rows
    middle.frame_index.setValue(4)
    middle.strength.setValue(0.6)
    last.strength.setValue(0.5)
    panel.fit.setChecked(True)
    assert middle.frame_choice.currentIndex() == NUMBERED and middle.frame_index.isEnabled()
    with qtbot.waitSignal(panel.changed):
        first.remove_button.click()
    assert panel.rows == (last, middle)
    panel.load_path(a)  # comes back at the frame now free
    qtbot.waitUntil(lambda: len(panel.rows) == 3, timeout=10_000)
    expected = (ConditioningItem(b, -1, 0.5, "fit"), ConditioningItem(c, 4, 0.6, "fit"),
                ConditioningItem(a, 0, 1.0, "fit"))
    assert panel.items() == expected

    qtbot.waitUntil(lambda: view.chart is not None and len(view.chart.starts) == 3)
    ts = view.chart.ts
    assert _first_step(ts, 0.6) is not None and _first_step(ts, 0.5) < _first_step(ts, 0.6)
    assert view.keyframe_lines() == [
        f"last frame · strength 0.5 · starts at step {_first_step(ts, 0.5)} (t < 0.50)",
        f"frame 4 · strength 0.6 · starts at step {_first_step(ts, 0.6)} (t < 0.40)",
        "first frame · strength 1 · kept",
    ]
    image = view.grab().toImage()
    rect, scale = view._plot_rect(), image.width() / view.width()
    for k in range(3):  # each listed line is painted, stacked up from the plot's bottom
        bottom = rect.bottom() - 2 - 14 * k
        assert _has_marker_text(image, bottom - 14, bottom, rect.left() + 6, scale), k

    outcome = run_job(qtbot, window)
    assert outcome.kind == "finished", outcome.payload
    job = window.controller.queue.get(outcome.job_id)
    assert job.request.conditioning == expected
    assert [line for line in recipe_summary(job).splitlines() if line.startswith("Keyframe")] == [
        "Keyframe: key1.png at last frame, strength 0.5 (fit)",
        "Keyframe: key2.png at frame 4, strength 0.6 (fit)",
        "Keyframe: key0.png at first frame, strength 1 (fit)",
    ]


def test_a_recipe_with_three_keyframes_puts_every_one_back(make_window, qtbot, tmp_path):
    window = make_window()
    panel = window.reference_panel
    a, b, c = _images(tmp_path, 3)
    items = (ConditioningItem(a, 0, 1.0, "fill"), ConditioningItem(b, 8, 0.3, "fit"),
             ConditioningItem(c, -1, 0.65, "fill"))
    request = GenerationRequest(prompt="three keys", seed=5, steps=5, width=96, height=64,
                                frames=13, fps=8.0, model="tiny", conditioning=items)
    video = tmp_path / "keys.mp4"
    write_video(video, np.zeros((5, 64, 96, 3), np.uint8), 8.0,
                metadata={"recipe_version": 1, "request": request.to_dict()})
    panel.load_path(a)  # something else on screen first: the recipe replaces it
    qtbot.waitUntil(lambda: len(panel.rows) == 1, timeout=10_000)
    drop_files(window, video)
    qtbot.waitUntil(lambda: panel.items() == items, timeout=10_000)
    assert window.prompt_panel.request(panel.items()) == request
    assert panel.rows[1].frame_index.value() == 8 and panel.fill.isChecked()  # the first's fit
    qtbot.waitUntil(lambda: window.schedule_view.chart is not None
                    and len(window.schedule_view.keyframe_lines()) == 3)

    panel.set_items(())
    assert panel.items() == ()


def test_first_frame_models_keep_one_row_and_others_disable_the_panel(make_window, qtbot,
                                                                      tmp_path):
    window = make_window()
    panel = window.reference_panel
    a, b, c = _images(tmp_path, 3)
    for path in (a, b):
        panel.load_path(path)
    qtbot.waitUntil(lambda: len(panel.rows) == 2, timeout=10_000)
    panel.set_supported(True, "First-frame model", (FIRST_FRAME,))
    (row,) = panel.rows
    assert panel.items() == (ConditioningItem(a, 0, 1.0, "fill"),)
    assert not row.frame_choice.isEnabled()
    panel.load_path(c)  # replaces the one row
    qtbot.waitUntil(lambda: panel.image is not None and panel.image.path == c, timeout=10_000)
    assert panel.items() == (ConditioningItem(c, 0, 1.0, "fill"),)

    panel.set_supported(False, "Text-only model")
    assert not panel.isEnabled() and panel.items() == ()
    assert "Text-only model does not take reference frames" in panel.toolTip()
    panel.set_supported(True, "Keyframe model")
    assert panel.rows[0].frame_choice.isEnabled() and len(panel.items()) == 1


def test_an_image_dropped_on_a_frame_of_the_player_pins_that_frame(make_window, qtbot, tmp_path):
    from studio.app.player import decode_video_images

    window = make_window()
    panel = window.reference_panel
    window.prompt_panel.size.set_values(96, 64, 13)
    clip = tmp_path / "clip.mp4"
    write_video(clip, np.zeros((13, 64, 96, 3), np.uint8), 8.0)
    player = window.player
    player.set_video(decode_video_images(clip), autoplay=False)
    player.seek(6)
    (a,) = _images(tmp_path, 1)
    drop_files(player, a)
    qtbot.waitUntil(lambda: len(panel.rows) == 1, timeout=10_000)
    assert panel.items()[0].frame_index == 6 and panel.items()[0].image == a

    # a recipe dropped on a shown frame, and any drop on an empty player, are the window's
    from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
    from PySide6.QtGui import QDragEnterEvent

    mimes = []  # the events point at their mime data: keep it alive

    def drag(path) -> QDragEnterEvent:
        mimes.append(QMimeData())
        mimes[-1].setUrls([QUrl.fromLocalFile(str(path))])
        return QDragEnterEvent(QPoint(5, 5), Qt.DropAction.CopyAction, mimes[-1],
                               Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)

    assert player._dropped_images(drag(a)) == [a]
    assert player._dropped_images(drag(clip)) == []
    player.clear()
    assert player._dropped_images(drag(a)) == []
