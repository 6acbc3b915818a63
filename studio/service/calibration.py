"""Making a model's step-cache calibration: one reference run, its velocity magnitudes recorded.

The run uses the model's defaults (size, frames, guidance, shift) with many steps, so the
magnitude curve is sampled finely enough to serve any step count later
(:class:`~studio.engine.step_cache.CacheCalibration` interpolates it along t).
"""

from __future__ import annotations

import logging

from studio.engine.pipeline import plan_generation, sample_plan
from studio.engine.sampler import Velocity
from studio.engine.step_cache import CacheCalibration, MagnitudeRecorder
from studio.service.catalog import ModelCache
from studio.service.model_info import default_request, model_info

log = logging.getLogger(__name__)

CALIBRATION_STEPS = 50
CALIBRATION_PROMPT = "a colourful object moving slowly across a plain background"


def calibrate(cache: ModelCache, model_id: str, steps: int = CALIBRATION_STEPS,
              prompt: str = CALIBRATION_PROMPT, seed: int = 0) -> CacheCalibration:
    """Run ``model_id``'s defaults for ``steps`` steps and return the measured calibration."""
    model = cache.get(model_id)
    request = default_request(model_info(model), prompt).with_changes(steps=steps, seed=seed)
    plan = plan_generation(model, request)
    recorders: list[MagnitudeRecorder] = []

    def record(velocity: Velocity) -> MagnitudeRecorder:
        recorders.append(MagnitudeRecorder(velocity, plan.schedule))
        return recorders[-1]

    sample_plan(model, plan, wrap=record)
    log.info("calibrated step caching for %s on %d steps", model.name, steps)
    return recorders[0].calibration()
