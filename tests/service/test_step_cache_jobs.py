"""Step caching through the command line and the service: the recipe records the threshold and
the forwards, a cached recipe reproduces bit for bit, and a calibration made by the command is
the one the model loads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from studio.cli import run_cli
from studio.cli.requests import parse_cache
from studio.engine.step_cache import DEFAULT_THRESHOLD
from studio.errors import InvalidRequest
from studio.media.video import read_video
from studio.models.calibrations import calibration_path, load_calibration
from studio.models.demo.loader import FAMILY_NAME, load_demo_model


def test_cache_options_parse() -> None:
    assert parse_cache("magcache") == DEFAULT_THRESHOLD
    assert parse_cache("magcache:0.2") == 0.2
    for bad in ("teacache", "magcache:lots"):
        with pytest.raises(InvalidRequest) as refused:
            parse_cache(bad)
        assert refused.value.field == "cache"


def test_a_cached_run_is_recorded_and_reproduced_bit_for_bit(tmp_path: Path, capsys) -> None:
    first = tmp_path / "first.mp4"
    assert run_cli(["generate", "--prompt", "a red circle moving right", "--steps", "10",
                    "--cache", "magcache:0.05", "--out", str(first)]) == 0  # fmt: skip
    assert "forwards run" in capsys.readouterr().out
    recipe = json.loads(first.with_suffix(".json").read_text())
    assert recipe["request"]["step_cache"] == 0.05
    run, skipped = recipe["forwards"]["run"], recipe["forwards"]["skipped"]
    assert run + skipped == 10 and skipped > 0
    again = tmp_path / "again.mp4"
    assert run_cli(["generate", "--recipe", str(first.with_suffix(".json")), "--out",
                    str(again)]) == 0  # fmt: skip
    assert np.array_equal(read_video(first)[0], read_video(again)[0])


def test_the_calibrate_command_writes_what_the_model_then_loads(tmp_path: Path, capsys) -> None:
    assert run_cli(["cache", "calibrate", "--model", "demo", "--steps", "8"]) == 0
    path = calibration_path(FAMILY_NAME, load_demo_model().variant)
    assert f"wrote {path}" in capsys.readouterr().out
    made = load_calibration(FAMILY_NAME, load_demo_model().variant)
    assert made is not None and len(made.points) == 8
    assert load_demo_model().cache_calibration == made  # the user's own wins over the shipped


@pytest.mark.parametrize(("sampler", "every"), [("euler", 2), ("dpm++2m", 0)])
def test_a_multistep_run_keeps_no_sampling_checkpoints(service, monkeypatch, sampler: str,
                                                       every: int) -> None:
    """A checkpoint holds x alone; a multistep sampler's state is more, so its runs start over
    rather than resume into a different result."""
    from studio.service import generation
    from tests.service.tiny_model import tiny_request

    seen: list[int] = []
    real = generation.checkpoint_writer

    def spy(folder, identity, schedule, checkpoint_every):
        seen.append(checkpoint_every)
        return real(folder, identity, schedule, checkpoint_every)

    monkeypatch.setattr(generation, "checkpoint_writer", spy)
    service.run("multistep", tiny_request(sampler=sampler))
    assert seen == [every]
