"""Step-cache calibrations on disk: one JSON file per family and variant.

A calibration made with ``studio cache calibrate`` is kept in ``STUDIO_HOME/calibrations/``;
a family may also ship one beside its weights (the demo model does). The user's own wins.
"""

from __future__ import annotations

import logging
from pathlib import Path

from studio.engine.step_cache import CacheCalibration
from studio.media.atomic import atomic_write_json
from studio.media.json_file import read_small_json
from studio.paths import studio_home

log = logging.getLogger(__name__)


def calibration_path(family: str, variant: str) -> Path:
    """Where the user's calibration of ``family`` / ``variant`` is kept."""
    safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in f"{family}-{variant}")
    return studio_home() / "calibrations" / f"{safe}.json"


def load_calibration(family: str, variant: str,
                     shipped: Path | None = None) -> CacheCalibration | None:
    """The user's calibration, else the shipped one, else None (a damaged file is skipped with
    a warning)."""
    for path in (calibration_path(family, variant), shipped):
        if path is None or not path.exists():
            continue
        try:
            return CacheCalibration.from_dict(read_small_json(path))
        except ValueError as exc:
            log.warning("step-cache calibration %s is unusable (%s); ignored", path, exc)
    return None


def save_calibration(calibration: CacheCalibration, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, calibration.to_dict())
    return path
