"""``studio generate --guidance-image / --oscillate / --prompt-suffix``: parsed into the request
(bad values refused naming the field), recorded in the recipe, and filled from the model's
defaults only for models that have them."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from studio.cli import build_parser, run_cli
from studio.cli.requests import option_changes, parse_oscillation
from studio.engine.request import OSCILLATION
from studio.errors import InvalidRequest
from studio.models.demo.loader import load_demo_model
from studio.service.model_info import default_request, model_info


def _changes(*argv: str) -> dict:
    return option_changes(build_parser().parse_args(["generate", *argv]))


def test_the_options_parse_into_request_fields() -> None:
    assert _changes("--guidance-image", "2.5", "--oscillate", "temporal, text",
                    "--prompt-suffix", " 24 FPS.") == {
        "guidance_image": 2.5, "oscillation": ("text", "temporal"), "prompt_suffix": " 24 FPS."}
    assert _changes("--oscillate", "none", "--prompt-suffix", "") == {
        "oscillation": (), "prompt_suffix": ""}
    assert _changes("--dry-run", "--oscillate", "image") == {"oscillation": ("image",)}
    assert _changes() == {}
    assert parse_oscillation("text,image,temporal") == OSCILLATION
    for bad in ("wobble", "text,,image", "", "text;image"):
        with pytest.raises(InvalidRequest) as refused:
            parse_oscillation(bad)
        assert refused.value.field == "oscillation"


def test_default_requests_fill_the_options_only_for_models_that_have_them() -> None:
    demo = model_info(load_demo_model())
    assert (demo.guidance_image, demo.oscillation, demo.prompt_suffix) == (None, (), "")
    plain = default_request(demo, "a red circle")
    assert (plain.guidance_image, plain.oscillation, plain.prompt_suffix) == (None, None, None)
    tuned = replace(demo, guidance_image=3.0, oscillation=OSCILLATION,
                    prompt_suffix=" 24 FPS. 4 motion score.")
    request = default_request(tuned, "a red circle").validate()
    assert (request.guidance_image, request.oscillation, request.prompt_suffix) == (
        3.0, OSCILLATION, " 24 FPS. 4 motion score.")


def test_the_demo_records_the_options_in_its_recipe(tmp_path: Path, capsys) -> None:
    out = tmp_path / "options.mp4"
    assert run_cli(["generate", "--prompt", "a red circle moving right", "--steps", "4",
                    "--guidance-image", "2.5", "--oscillate", "text,temporal",
                    "--prompt-suffix", " still", "--out", str(out)]) == 0
    request = json.loads(out.with_suffix(".json").read_text())["request"]
    assert request["guidance_image"] == 2.5
    assert request["oscillation"] == ["text", "temporal"] and request["prompt_suffix"] == " still"


@pytest.mark.parametrize(("argv", "field"), [
    (["--oscillate", "text,wobble"], "oscillation"),
    (["--guidance-image", "80"], "guidance_image"),
])
def test_bad_values_exit_2_naming_the_field(argv: list[str], field: str, tmp_path: Path,
                                            capsys) -> None:
    assert run_cli(["generate", "--prompt", "a red circle", "--steps", "2", *argv,
                    "--out", str(tmp_path / "bad.mp4")]) == 2
    err = capsys.readouterr().err
    assert f"error: {field}:" in err and "hint:" in err
    assert not (tmp_path / "bad.mp4").exists()
