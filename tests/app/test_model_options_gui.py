"""A model's own options in the prompt panel (Open-Sora 2.0's image guidance, guidance oscillation
and prompt suffix): shown with the model's defaults only for models that have them, part of the
request, restored from a recipe — and absent (None) from the requests of models without them."""

from __future__ import annotations

from dataclasses import replace

from studio.engine.request import OSCILLATION
from studio.media.video import read_video

from . import tiny_family
from .conftest import run_job

SUFFIX = " 24 FPS. 4 motion score."


def _shown(panel) -> dict[str, bool]:
    o = panel.options
    return {"guidance_image": o.guidance_image.isVisible() and o.guidance_image_label.isVisible(),
            "oscillation": all(box.isVisible() for box in o.oscillate.values())
            and o.oscillate_label.isVisible(),
            "prompt_suffix": o.prompt_suffix.isVisible() and o.prompt_suffix_label.isVisible()}


def test_the_options_show_for_a_model_that_has_them_and_hide_for_others(make_window) -> None:
    window = make_window()
    panel = window.prompt_panel
    tiny = window._info
    assert tiny.guidance_image is None and tiny.oscillation == () and tiny.prompt_suffix == ""
    assert not any(_shown(panel).values())
    plain = panel.request()
    assert (plain.guidance_image, plain.oscillation, plain.prompt_suffix) == (None, None, None)

    panel.set_model(replace(tiny, id="opensora-like", guidance_image=3.0, oscillation=OSCILLATION,
                            prompt_suffix=SUFFIX))
    assert all(_shown(panel).values())
    options = panel.options
    assert options.guidance_image.value() == 3.0
    assert all(box.isChecked() for box in options.oscillate.values())
    assert options.prompt_suffix.text() == SUFFIX
    assert "reference image" in options.guidance_image.toolTip()
    assert "empty" in options.prompt_suffix.toolTip().lower()
    defaults = panel.request()
    assert (defaults.guidance_image, defaults.oscillation, defaults.prompt_suffix) == (
        3.0, OSCILLATION, SUFFIX)

    options.guidance_image.setValue(4.5)
    options.oscillate["image"].setChecked(False)
    options.prompt_suffix.setText(" 16 FPS.")
    edited = panel.request()
    assert (edited.guidance_image, edited.oscillation, edited.prompt_suffix) == (
        4.5, ("text", "temporal"), " 16 FPS.")
    edited.validate()

    panel.set_request(edited.with_changes(guidance_image=2.0, oscillation=(), prompt_suffix=""))
    restored = panel.request()
    assert (restored.guidance_image, restored.oscillation, restored.prompt_suffix) == (2.0, (), "")
    assert not any(box.isChecked() for box in options.oscillate.values())
    panel.set_request(edited.with_changes(guidance_image=None, oscillation=None,
                                          prompt_suffix=None))
    again = panel.request()  # a recipe without them: the model's defaults
    assert (again.guidance_image, again.oscillation, again.prompt_suffix) == (
        3.0, OSCILLATION, SUFFIX)

    panel.set_model(tiny)
    assert not any(_shown(panel).values())
    back = panel.request()
    assert (back.guidance_image, back.oscillation, back.prompt_suffix) == (None, None, None)


def test_a_loaded_model_with_options_records_the_edited_ones(make_window, qtbot,
                                                            monkeypatch) -> None:
    monkeypatch.setattr(tiny_family, "DEFAULTS", replace(
        tiny_family.DEFAULTS, guidance_image=3.0, oscillation=("text",), prompt_suffix=SUFFIX))
    window = make_window()
    panel = window.prompt_panel
    assert window._info.guidance_image == 3.0 and window._info.oscillation == ("text",)
    assert all(_shown(panel).values())
    assert panel.options.oscillate["text"].isChecked()
    assert not panel.options.oscillate["temporal"].isChecked()
    panel.options.oscillate["temporal"].setChecked(True)
    panel.options.prompt_suffix.setText("")
    panel.prompt.setPlainText("a fox in the snow")
    outcome = run_job(qtbot, window)
    assert outcome.kind == "finished", outcome.payload
    request = read_video(outcome.payload.video_path)[2]["request"]
    assert request["guidance_image"] == 3.0
    assert request["oscillation"] == ["text", "temporal"] and request["prompt_suffix"] == ""
