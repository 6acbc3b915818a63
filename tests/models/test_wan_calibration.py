"""Step-cache calibrations of Wan sets: none is shipped (docs/families/wan.md §11 says why), so a
loaded set refuses ``--cache`` with the calibrate hint until the user's own calibration for its
variant is in STUDIO_HOME, which the loader then picks up."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from studio.engine.pipeline import plan_generation
from studio.engine.request import GenerationRequest
from studio.engine.step_cache import CacheCalibration
from studio.errors import InvalidRequest
from studio.models.calibrations import calibration_path, save_calibration
from studio.models.registry import scan
from studio.models.wan.loader import load_wan_model
from tests.models.tiny_wan import write_wan_set

CALIBRATION = CacheCalibration(((1.0, 0.3), (0.5, 0.0), (0.02, -0.2)))


def _load(folder: Path):
    (found,) = scan([folder])
    return load_wan_model(found, "cpu", torch.float32)


def test_a_wan_set_uses_the_users_calibration_of_its_variant(tmp_path: Path) -> None:
    write_wan_set(tmp_path / "set", "t2v", "original")
    bare = _load(tmp_path / "set")
    assert bare.cache_calibration is None
    request = GenerationRequest(prompt="a cat", steps=4, width=64, height=64, frames=5,
                                step_cache=0.01)  # fmt: skip
    with pytest.raises(InvalidRequest, match="studio cache calibrate"):
        plan_generation(bare, request)

    save_calibration(CALIBRATION, calibration_path("wan", bare.variant))
    calibrated = _load(tmp_path / "set")
    assert calibrated.cache_calibration == CALIBRATION
    assert plan_generation(calibrated, request).request.step_cache == 0.01
