"""The window over tiny random-weight LTX-Video sets found by the registry: the dev set loads
with its STG and reference-noise rows, generates with two keyframes (the later one appended as
extra tokens and dropped before decoding) and records them in the recipe; the distilled set
brings its timesteps, which fix the step count."""

from __future__ import annotations

import numpy as np
from PIL import Image

from studio.media.video import read_video
from studio.models.ltx.presets import DISTILLED_098
from studio.service.settings import Settings
from tests.models.ltx.tiny_ltx import write_single_file_set

from .conftest import run_job


def _image(path, colour) -> str:
    Image.fromarray(np.full((64, 96, 3), colour, np.uint8)).save(path)
    return str(path)


def test_ltx_sets_load_generate_with_keyframes_and_bring_their_presets(make_window, qtbot,
                                                                       tmp_path):
    root = tmp_path / "models"
    write_single_file_set(root / "ltx-dev")
    write_single_file_set(root / "ltx-distilled", "0.9.8", distilled=True)
    settings = Settings(model_folders=(str(root),), output_dir=str(tmp_path / "out"),
                        default_model=str(root / "ltx-dev"))
    window = make_window(settings=settings)
    panel, options = window.prompt_panel, window.prompt_panel.schedule_options
    qtbot.waitUntil(lambda: panel.model_info is not None
                    and panel.model_info.family == "ltx", timeout=30_000)
    assert (options.stg.value(), options.stg_rescale.value()) == (1.0, 0.7)
    assert options.reference_noise.value() == 0.15 and not options.timesteps.isVisible()
    assert window.reference_panel.isEnabled()

    multiple = panel.model_info.geometry.size_multiple
    panel.size.set_values(3 * multiple, 2 * multiple, 17)
    panel.prompt.setPlainText("a paper boat drifts across a pond")
    panel.steps.setValue(2)
    keys = window.reference_panel
    keys.add_keyframe(_image(tmp_path / "a.png", (200, 40, 40)), 0)
    keys.add_keyframe(_image(tmp_path / "b.png", (40, 40, 200)), 16)
    qtbot.waitUntil(lambda: len(keys.rows) == 2, timeout=10_000)
    keys.rows[1].strength.setValue(0.5)
    outcome = run_job(qtbot, window, timeout_ms=120_000)
    assert outcome.kind == "finished", outcome.payload
    frames, _, recipe = read_video(outcome.payload.video_path)
    assert frames.shape == (17, 2 * multiple, 3 * multiple, 3)
    request = recipe["request"]
    assert recipe["model"]["family"] == "ltx" and request["stg"] == 1.0
    assert [(c["frame_index"], c["strength"]) for c in request["conditioning"]] == [
        (0, 1.0), (16, 0.5)]

    window.load_model(str(root / "ltx-distilled"))
    qtbot.waitUntil(lambda: panel.model_info.id == str(root / "ltx-distilled"),
                    timeout=30_000)
    assert options.timesteps.isVisible() and not panel.steps.isEnabled()
    distilled = panel.request()
    assert distilled.timesteps == DISTILLED_098 and distilled.steps == len(DISTILLED_098)
    assert distilled.guidance == 1.0 and distilled.stg == 0.0
