"""A two-expert Wan 2.2 A14B set in the window: the low-noise guidance field appears with the
model's default, the schedule marks where the experts hand over, and a job records both
guidances."""

from __future__ import annotations

from studio.media.video import read_video
from studio.service.settings import Settings
from tests.models.tiny_a14b import write_a14b_set

from .conftest import run_job


def test_a14b_shows_its_experts_and_records_both_guidances(make_window, qtbot, tmp_path) -> None:
    root = tmp_path / "models"
    write_a14b_set(root / "a14b", "t2v", "original")
    settings = Settings(model_folders=(str(root),), output_dir=str(tmp_path / "out"),
                        default_model=str(root / "a14b"))
    window = make_window(settings=settings)
    prompt = window.prompt_panel
    assert prompt.guidance_low.isVisible() and prompt.guidance_low.value() == 3.0
    assert prompt.guidance.value() == 4.0 and prompt.steps.value() == 40
    multiple = prompt.model_info.geometry.size_multiple
    prompt.size.set_values(2 * multiple, 2 * multiple, 5)
    prompt.steps.setValue(8)
    prompt.guidance_low.setValue(2.0)
    qtbot.waitUntil(lambda: window.schedule_view.chart is not None
                    and window.schedule_view.chart.steps == 8, timeout=5_000)
    mark = window.schedule_view.chart.experts
    ts = window.schedule_view.chart.ts
    assert mark.boundary == 0.875 and ts[mark.step] < 0.875 <= ts[mark.step - 1]
    prompt.prompt.setPlainText("a fox in the snow")
    outcome = run_job(qtbot, window, timeout_ms=120_000)
    assert outcome.kind == "finished", outcome.payload
    recipe = read_video(outcome.payload.video_path)[2]
    assert recipe["request"]["guidance_low"] == 2.0 and recipe["experts"]["boundary"] == 0.875
