"""STG, reference noise and explicit timesteps in the prompt panel (LTX-Video's options): shown
with the model's defaults only for models that have them, part of the request (timesteps set the
step count), restored from a recipe — and None in the requests of models without them."""

from __future__ import annotations

from dataclasses import replace

from studio.app.schedule_options import format_timesteps, parse_timesteps

DISTILLED = (1.0, 0.9937, 0.9875, 0.9812, 0.975, 0.9094, 0.725)


def _shown(panel) -> list[bool]:
    o = panel.schedule_options
    return [field.isVisible() and label.isVisible()
            for field, label in zip(o._fields(), o._labels, strict=True)]


def test_rows_follow_the_model_and_reach_the_request(make_window) -> None:
    window = make_window()
    panel = window.prompt_panel
    tiny = window._info
    assert _shown(panel) == [False] * 4
    plain = panel.request()
    assert (plain.stg, plain.stg_rescale, plain.reference_noise, plain.timesteps) == (
        None, None, None, None)

    panel.set_model(replace(tiny, id="ltx-dev-like", stg=1.0, stg_rescale=0.7,
                            reference_noise=0.15))
    assert _shown(panel) == [True, True, True, False]
    request = panel.request()
    assert (request.stg, request.stg_rescale, request.reference_noise) == (1.0, 0.7, 0.15)
    panel.schedule_options.stg.setValue(2.0)
    assert panel.request().stg == 2.0
    panel.set_request(request.with_changes(stg=None, reference_noise=0.3))
    assert panel.request().stg == 1.0 and panel.request().reference_noise == 0.3


def test_a_distilled_models_timesteps_set_the_steps(make_window) -> None:
    window = make_window()
    panel = window.prompt_panel
    panel.set_model(replace(window._info, id="ltx-distilled-like", steps=7, guidance=1.0,
                            timesteps=DISTILLED, stg=0.0, stg_rescale=1.0))
    assert _shown(panel)[3] and not panel.steps.isEnabled()
    request = panel.request()
    assert request.timesteps == DISTILLED and request.steps == 7
    request.validate()
    panel.schedule_options.timesteps.setText("1, 0.9, 0.5")
    edited = panel.request()
    assert edited.timesteps == (1.0, 0.9, 0.5) and edited.steps == 3 and panel.steps.value() == 3
    panel.schedule_options.timesteps.setText("")
    assert panel.request().timesteps is None and panel.steps.isEnabled()
    panel.set_request(edited)
    assert panel.schedule_options.timesteps.text() == "1, 0.9, 0.5"


def test_timesteps_text() -> None:
    assert parse_timesteps("1, 0.5;0.25 0.1") == (1.0, 0.5, 0.25, 0.1)
    assert parse_timesteps("") is None and parse_timesteps("1, x") is None
    assert format_timesteps((1.0, 0.725)) == "1, 0.725"


def test_a_models_published_sampler_is_the_default(make_window) -> None:
    from studio.service.model_info import default_request

    window = make_window()
    panel = window.prompt_panel
    assert panel.request().sampler == "euler"
    distilled = replace(window._info, id="ltx-096-distilled-like", sampler="stochastic")
    panel.set_model(distilled)
    assert panel.sampler.currentText() == "stochastic" and panel.request().sampler == "stochastic"
    assert default_request(distilled, "a").sampler == "stochastic"


def test_a_recipes_timesteps_survive_on_a_model_without_a_list(make_window) -> None:
    """Re-opening a recipe made with --timesteps on a model that has no default list keeps the
    list (the row shows to hold it) instead of silently sampling from the steps field."""
    window = make_window()
    panel = window.prompt_panel
    panel.set_model(replace(window._info, id="ltx-dev-like", stg=1.0, stg_rescale=0.7,
                            reference_noise=0.15))
    assert not _shown(panel)[3]
    recipe = panel.request().with_changes(steps=3, timesteps=(1.0, 0.8, 0.4))
    panel.set_request(recipe)
    assert _shown(panel)[3] and panel.request().timesteps == (1.0, 0.8, 0.4)
    assert panel.request().steps == 3
    panel.set_model(replace(window._info, id="another"))  # a new model: its own rows again
    assert not _shown(panel)[3] and panel.request().timesteps is None


def test_unreadable_timesteps_block_generate_and_say_why(make_window) -> None:
    window = make_window()
    panel = window.prompt_panel
    panel.set_model(replace(window._info, id="distilled-like", steps=3, timesteps=(1.0, 0.9, 0.5)))
    assert panel.is_valid()
    panel.schedule_options.timesteps.setText("1, 0.9, abc")
    field = panel.schedule_options.timesteps
    assert not panel.is_valid() and "Not a list of numbers" in field.toolTip()
    assert not window.generate_action.isEnabled()
    panel.schedule_options.timesteps.setText("1, 0.9")
    assert panel.is_valid() and window.generate_action.isEnabled()
