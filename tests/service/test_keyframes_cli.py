"""``studio generate`` with several ``--image PATH[@FRAME][:STRENGTH]`` keyframes: the queued
job's request carries each, with its own frame and strength and an absolute path; a malformed
one stops the command with a message that names it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from studio.cli import run_cli
from studio.engine.request import ConditioningItem
from studio.service.job_queue import JobQueue
from studio.service.settings import save_settings
from tests.service.tiny_model import TINY_ID


def _image(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((24, 32, 3), value, np.uint8)).save(path)


def test_three_keyframes_are_queued_each_with_its_frame_and_strength(
        settings, tiny_catalog: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    save_settings(settings)
    for name, value in (("a.png", 30), ("b.png", 120), ("c.png", 220)):
        _image(tmp_path / "refs" / name, value)
    monkeypatch.chdir(tmp_path / "refs")
    code = run_cli(["generate", "--model", TINY_ID, "--prompt", "x", "--frames", "9",
                    "--image", "a.png@0", "--image", "b.png@-1:0.5", "--image", "c.png@4:0.8",
                    "--strength", "0.9", "--queue"])
    assert code == 0, capsys.readouterr().err
    (job,) = JobQueue().pending()
    refs = (tmp_path / "refs").resolve()
    assert job.request.conditioning == (
        ConditioningItem(str(refs / "a.png"), 0, 0.9, "fill"),
        ConditioningItem(str(refs / "b.png"), -1, 0.5, "fill"),
        ConditioningItem(str(refs / "c.png"), 4, 0.8, "fill"),
    )


def test_a_malformed_keyframe_is_refused_by_name_before_loading(
        settings, tiny_catalog: Path, capsys, caplog) -> None:
    save_settings(settings)
    code = run_cli(["generate", "--model", TINY_ID, "--prompt", "x", "--image", "a.png@1.5",
                    "--queue"])
    err = capsys.readouterr().err
    assert code != 0 and "'a.png@1.5'" in err and "PATH[@FRAME][:STRENGTH]" in err
    assert JobQueue().pending() == []
    assert not [r for r in caplog.records if "loading model" in r.getMessage()]
