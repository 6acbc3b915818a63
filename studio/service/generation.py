"""Run one generation job end to end and report what happens, without any Qt.

``GenerationService.run`` is what the desktop worker thread and ``studio generate`` both call:
load (cached) → validate → encode → sample (progress + live previews) → save the latent →
decode → export the MP4 with its recipe. Every failure arrives as a :class:`StudioError` with a
hint; cancellation raises :class:`Cancelled` and leaves no partial output behind.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from studio.engine.cancel import NEVER, CancelToken
from studio.engine.pipeline import (
    build_conditioning,
    check_request,
    decode_latent,
    encode_prompts,
    sample_latent,
)
from studio.engine.request import GenerationRequest
from studio.engine.sampler import StepInfo
from studio.errors import OutOfMemory, StudioError
from studio.media.latent_file import save_latent
from studio.media.atomic import atomic_write_json
from studio.media.preview import latent_to_rgb
from studio.media.video import write_video
from studio.models.family import LoadedModel
from studio.service.catalog import ModelCache, find_model
from studio.service.recipe import build_recipe, model_files_record
from studio.service.settings import Settings
from studio.service.jobs import jobs_root

log = logging.getLogger(__name__)


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
    """What a finished job produced."""

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


def job_dir(job_id: str) -> Path:
    """``STUDIO_HOME/jobs/<job_id>``: the job's latent and recipe live here."""
    path = jobs_root() / job_id
    path.mkdir(parents=True, exist_ok=True)
    return path


def output_name(request: GenerationRequest, job_id: str) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", request.prompt.lower()).strip("-")[:40].strip("-")
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{words or 'video'}-{request.seed}-{job_id[:6]}.mp4"


class GenerationService:
    """Owns the model cache; runs jobs one at a time (callers serialise)."""

    def __init__(self, settings: Settings, cache: ModelCache | None = None) -> None:
        self.settings = settings
        self.cache = cache or ModelCache(settings)

    def run(
        self,
        job_id: str,
        request: GenerationRequest,
        on_event: EventSink = lambda event: None,
        cancel: CancelToken = NEVER,
        output_path: Path | None = None,
    ) -> JobResult:
        """Generate one video. Raises StudioError (with hint) or Cancelled."""
        try:
            return self._run(job_id, request, on_event, cancel, output_path)
        except torch.OutOfMemoryError as exc:
            raise OutOfMemory(
                f"the GPU ran out of memory ({exc})".split("\n")[0],
                "use fewer frames or a smaller size, or close other GPU programs",
            ) from exc
        except MemoryError as exc:
            raise OutOfMemory(
                "the computer ran out of memory",
                "use fewer frames or a smaller size, or close other programs",
            ) from exc

    def _run(
        self,
        job_id: str,
        request: GenerationRequest,
        on_event: EventSink,
        cancel: CancelToken,
        output_path: Path | None,
    ) -> JobResult:
        timings: dict[str, float] = {}
        started = clock = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[name] = round(now - clock, 4)
            clock = now

        on_event(StageEvent(job_id, "loading"))
        model = self.cache.get(request.model, cancel)
        check_request(model, request)
        lap("load")
        on_event(StageEvent(job_id, "encoding"))
        cancel.check()
        with torch.inference_mode():
            context, uncond = encode_prompts(model, request)
        cond = build_conditioning(model, request, cancel)
        lap("encode")
        on_event(StageEvent(job_id, "sampling"))
        on_step = self._step_reporter(job_id, model, on_event)
        latent, ts, shift = sample_latent(
            model, request, context, uncond, cond, on_step=on_step, cancel=cancel
        )
        latent = latent.float().cpu()
        lap("sample")
        folder = job_dir(job_id)
        files = model_files_record(find_model(self.settings, model.id).all_files())
        recipe = build_recipe(request, model, files, ts, shift, timings)
        latent_path = folder / "latent.safetensors"
        save_latent(latent_path, latent, recipe)
        on_event(StageEvent(job_id, "decoding"))
        frames = decode_latent(model, latent, cancel)
        lap("decode")
        on_event(StageEvent(job_id, "exporting"))
        video_path = output_path or self.settings.outputs / output_name(request, job_id)
        recipe = build_recipe(request, model, files, ts, shift, timings)
        write_video(video_path, frames, request.fps, metadata=recipe, cancel=cancel)
        lap("export")
        recipe = build_recipe(request, model, files, ts, shift, timings)
        recipe_path = video_path.with_suffix(".json")
        atomic_write_json(recipe_path, recipe)
        atomic_write_json(folder / "recipe.json", recipe)
        seconds = time.perf_counter() - started
        log.info("job %s finished in %.2f s: %s", job_id, seconds, video_path)
        return JobResult(job_id, request, model.name, Path(video_path), latent_path, recipe_path,
                         int(frames.shape[0]), request.fps, seconds, timings)

    def _step_reporter(
        self, job_id: str, model: LoadedModel, on_event: EventSink
    ) -> Callable[[StepInfo], None]:
        start = time.perf_counter()
        every = max(1, self.settings.preview_every)

        def on_step(info: StepInfo) -> None:
            done = info.i + 1
            elapsed = time.perf_counter() - start
            rate = done / elapsed if elapsed > 0 else 0.0
            eta = (info.n - done) / rate if rate > 0 else 0.0
            on_event(ProgressEvent(job_id, done, info.n, info.t_next, rate, eta))
            if done % every == 0 or done == info.n:
                on_event(PreviewEvent(job_id, done, latent_to_rgb(info.x0_hat[0], model.preview)))

        return on_step


__all__ = [
    "GenerationService",
    "JobEvent",
    "JobResult",
    "PreviewEvent",
    "ProgressEvent",
    "StageEvent",
    "StudioError",
    "job_dir",
]
