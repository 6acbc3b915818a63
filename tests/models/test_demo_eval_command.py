"""`studio eval demo`: the numbers of text- and image-to-video clips asked for; the columns."""

from __future__ import annotations

import json

from studio.cli import run_cli


def test_eval_command_runs_the_asked_numbers_of_text_and_image_clips(tmp_path) -> None:
    out = tmp_path / "report.json"
    assert run_cli(["eval", "demo", "--prompts", "2", "--images", "1", "--steps", "2",
                    "--device", "cpu", "--json", str(out)]) == 0  # fmt: skip
    report = json.loads(out.read_text())
    assert [r["image"] for r in report["results"]] == [False, False, True]
    for column in ("text_to_video", "image_to_video"):
        assert set(report["properties"][column]) == {
            "colour",
            "direction",
            "shape",
            "background",
            "whole",
            "all five",
        }
    assert set(report["vae_ceiling"]) == set(report["properties"]["text_to_video"])
