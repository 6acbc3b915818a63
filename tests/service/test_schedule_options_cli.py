"""``studio generate --timesteps / --stg / --stg-rescale / --reference-noise``: parsed into the
request, with explicit timesteps setting the step count and ``--steps`` replacing a distilled
model's list; bad values refused naming the field."""

from __future__ import annotations

import pytest

from studio.cli import build_parser
from studio.cli.requests import option_changes, parse_timesteps
from studio.engine.request import GenerationRequest
from studio.errors import InvalidRequest


def _changes(*argv: str) -> dict:
    return option_changes(build_parser().parse_args(["generate", *argv]))


def test_options_parse_into_request_fields() -> None:
    assert _changes("--stg", "1.5", "--stg-rescale", "0.7", "--reference-noise", "0.15") == {
        "stg": 1.5, "stg_rescale": 0.7, "reference_noise": 0.15}
    assert _changes("--timesteps", "1, 0.9, 0.5") == {"timesteps": (1.0, 0.9, 0.5), "steps": 3}
    assert _changes("--steps", "12") == {"steps": 12, "timesteps": None}
    assert _changes("--timesteps", "none", "--steps", "8") == {"steps": 8, "timesteps": None}
    assert _changes() == {}


def test_a_distilled_base_request_takes_either_form() -> None:
    base = GenerationRequest("a", steps=3, timesteps=(1.0, 0.9, 0.5), guidance=1.0)
    assert base.with_changes(**_changes("--steps", "20")).validate().timesteps is None
    chosen = base.with_changes(**_changes("--timesteps", "1,0.7")).validate()
    assert (chosen.steps, chosen.timesteps) == (2, (1.0, 0.7))


def test_bad_values_name_the_field() -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_timesteps("1, half")
    assert refused.value.field == "timesteps"
    base = GenerationRequest("a")
    for argv, field in ((("--timesteps", "1,1.5"), "timesteps"), (("--stg", "-2"), "stg"),
                        (("--stg-rescale", "3"), "stg_rescale"),
                        (("--reference-noise", "9"), "reference_noise")):
        with pytest.raises(InvalidRequest) as refused:
            base.with_changes(**_changes(*argv)).validate()
        assert refused.value.field == field
