"""What a running job reports (stage, progress, live previews) and what a finished one produced.

Plain data: the desktop worker forwards these events to the window as they are, the command line
prints them, and the bench times the stages from them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from studio.engine.request import GenerationRequest


@dataclass(frozen=True, slots=True)
class StageEvent:
    """The job entered a stage: "loading", "encoding", "sampling", "decoding" or "exporting"."""

    job_id: str
    stage: str


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """Step ``step`` of ``steps`` finished (1-based), at time t, with speed and ETA in seconds."""

    job_id: str
    step: int
    steps: int
    t: float
    it_per_s: float
    eta_s: float


@dataclass(frozen=True, slots=True)
class PreviewEvent:
    """x̂₀ at a step as RGB: uint8 ``[T', H', W', 3]`` (one image per latent frame)."""

    job_id: str
    step: int
    frames: np.ndarray


JobEvent = StageEvent | ProgressEvent | PreviewEvent
EventSink = Callable[[JobEvent], None]


@dataclass(frozen=True, slots=True)
class JobResult:
    """What a finished job produced.

    ``resumed_from_step`` is 0 for a run from noise, k when sampling continued from a checkpoint
    after step k, and ``request.steps`` when the saved final latent was decoded. ``forwards``
    and ``skipped_forwards`` count the denoiser forwards the sampling ran and the step cache
    skipped.
    """

    job_id: str
    request: GenerationRequest
    model_name: str
    video_path: Path
    latent_path: Path
    recipe_path: Path
    frames: int
    fps: float
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    resumed_from_step: int = 0
    forwards: int = 0
    skipped_forwards: int = 0

    def to_record(self) -> dict[str, Any]:
        """The JSON-ready ``result`` a :class:`~studio.service.job_queue.Job` keeps."""
        return {
            "video_path": str(self.video_path), "latent_path": str(self.latent_path),
            "recipe_path": str(self.recipe_path), "seconds": self.seconds,
            "model_name": self.model_name, "frames": self.frames,
        }
