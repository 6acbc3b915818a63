"""Run one generation job end to end and report what happens, without any Qt.

``GenerationService.run`` is what the desktop worker thread, ``studio generate`` and
``studio queue run`` all call: load (cached) → validate → encode → sample (progress + live
previews, a sampling checkpoint every k steps) → save the latent → decode (retrying in spatial
tiles when out of memory) → export the MP4 with its recipe, and the recipe beside it as JSON.

Nothing is lost on the way: a job that was killed resumes from its last sampling checkpoint, or
skips sampling when its final latent was already saved (:mod:`studio.service.resume`); a decode or
export that fails keeps the latent, and :meth:`GenerationService.decode_again` makes the video
from it without sampling again. Every failure arrives as a :class:`StudioError` with a hint;
cancellation raises :class:`Cancelled` and leaves no partial output behind.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from studio.engine.cancel import NEVER, CancelToken
from studio.engine.decode import is_out_of_memory
from studio.engine.fastpath import PreviewQueue
from studio.engine.model import LoadedModel
from studio.engine.pipeline import (
    SAMPLING,
    GenerationPlan,
    decode_latent,
    plan_generation,
    sample_plan,
)
from studio.engine.request import GenerationRequest
from studio.engine.sampler import StepInfo
from studio.engine.samplers import MULTISTEP_SAMPLERS
from studio.engine.step_cache import CacheStats, StepCacheHook
from studio.errors import MediaError, OutOfMemory, StudioError
from studio.media.atomic import atomic_write_json
from studio.media.latent_file import load_latent, save_latent
from studio.media.preview import latent_to_rgb
from studio.media.video import check_video_target, write_video
from studio.service.catalog import ModelCache
from studio.service.cleanup import remove_leftovers
from studio.service.forecast import check_memory
from studio.service.job_events import (
    EventSink,
    JobEvent,
    JobResult,
    PreviewEvent,
    ProgressEvent,
    StageEvent,
)
from studio.service.job_folder import JobFolder
from studio.service.loras import loras_applied, prepare_loras
from studio.service.recipe import build_recipe, model_files_record, request_from_recipe
from studio.service.resume import (
    checkpoint_writer,
    discard_checkpoint,
    find_checkpoint,
    find_saved_latent,
    job_identity,
)
from studio.service.settings import Settings
from studio.service.thumbnails import save_job_thumbnail

log = logging.getLogger(__name__)


def output_name(request: GenerationRequest, job_id: str) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", request.prompt.lower()).strip("-")[:40].strip("-")
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{words or 'video'}-{request.seed}-{job_id[:6]}.mp4"


def free_path(path: Path) -> Path:
    """``path``, or ``name-2.mp4``, ``name-3.mp4`` … when it exists (outputs never overwrite)."""
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


class _Timer:
    """Seconds per stage, for the recipe and the result."""

    def __init__(self) -> None:
        self.started = self._clock = time.perf_counter()
        self.timings: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round(now - self._clock, 4)
        self._clock = now

    @property
    def total(self) -> float:
        return time.perf_counter() - self.started


@contextlib.contextmanager
def _latent_kept(latent_path: Path) -> Iterator[None]:
    """Add to a decode/export failure's hint that the latent is safe and how to use it."""
    try:
        yield
    except StudioError as exc:
        note = (f"The sampled latent is kept ({latent_path}); 'decode again' makes the video "
                "without sampling again.")
        hint = exc.hint.rstrip()
        exc.hint = f"{hint}{'' if not hint or hint.endswith('.') else '.'} {note}".strip()
        raise


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
        """Generate one video, resuming from the job's saved state when there is some.

        Raises StudioError (with hint) or Cancelled. An output path that cannot take the video
        is refused before anything is loaded; leftovers of interrupted runs are removed after.
        """
        if output_path is not None:
            output_path = check_video_target(output_path)
        try:
            with _memory_errors():
                return self._run(job_id, request, on_event, cancel, output_path)
        finally:
            remove_leftovers([self.settings.outputs])

    def decode_again(
        self,
        source: str | Path,
        on_event: EventSink = lambda event: None,
        cancel: CancelToken = NEVER,
        output_path: Path | None = None,
        fps: float | None = None,
    ) -> JobResult:
        """Decode and export a saved latent again, without sampling ("decode/export again").

        Args:
            source: a job id (its ``latent.safetensors``) or the path of a saved latent.
            output_path: the MP4 to write (default: a new file in the outputs folder).
            fps: a different playback rate for the new export (default: the recipe's).

        The new MP4 carries the latent's recipe. A damaged latent raises :class:`MediaError`.
        """
        if output_path is not None:
            output_path = check_video_target(output_path)
        latent_path = self._latent_path(source)
        job_id = latent_path.parent.name
        folder = JobFolder(latent_path.parent)
        latent, recipe = load_latent(latent_path)
        request = request_from_recipe(recipe)
        if fps is not None:
            request = request.with_changes(fps=fps).validate()
            recipe = {**recipe, "request": request.to_dict()}
        with _memory_errors():
            timer = _Timer()
            on_event(StageEvent(job_id, "loading"))
            model = self.cache.get(request.model, cancel, keep_patch=True)
            expected = model.geometry.latent_shape(request.frames, request.height, request.width)
            if tuple(latent.shape) != expected:
                raise MediaError(
                    f"the saved latent {latent_path} has shape {tuple(latent.shape)}, but "
                    f"{model.name} makes {expected} for its recipe",
                    "decode it with the model it was made with",
                )
            timer.lap("load")
            return self._finish(folder, request, model, latent, recipe, on_event, cancel,
                                output_path, timer, request.steps, latent_path)

    # --- stages ----------------------------------------------------------------------------

    def _run(
        self,
        job_id: str,
        request: GenerationRequest,
        on_event: EventSink,
        cancel: CancelToken,
        output_path: Path | None,
    ) -> JobResult:
        timer = _Timer()
        on_event(StageEvent(job_id, "loading"))
        loras = prepare_loras(request, self.cache.find(request.model))
        request = loras.request if loras else request  # with the LoRA files' hashes
        model = self.cache.get(request.model, cancel, patch=loras.patch if loras else None,
                               lora_mode=request.lora_mode)
        plan = plan_generation(model, request)
        check_memory(model, request)
        model_set = self.cache.loaded_set
        files = model_files_record(model_set.all_files() if model_set else [])
        identity = job_identity(request, files)
        timer.lap("load")
        folder = JobFolder.of(job_id)  # created by the first file saved in it
        saved = find_saved_latent(folder.path, identity)
        if saved is not None:
            log.info("job %s: its final latent was saved before; decoding it", job_id)
            latent, recipe = saved
            start = request.steps
        else:
            with loras_applied(model, loras, self.cache.merged) as applied:
                record = {"loras": loras.record(applied)} if loras else {}
                latent, recipe, start = self._sample(folder, plan, model, files, identity,
                                                     on_event, cancel, timer, record)
        return self._finish(folder, request, model, latent, recipe, on_event, cancel,
                            output_path, timer, start)

    def _sample(
        self,
        folder: JobFolder,
        plan: GenerationPlan,
        model: LoadedModel,
        files: list[dict[str, Any]],
        identity: str,
        on_event: EventSink,
        cancel: CancelToken,
        timer: _Timer,
        record: dict[str, Any],
    ) -> tuple[torch.Tensor, dict[str, Any], int]:
        """Encode, sample (from noise or a checkpoint), save the final latent atomically;
        ``record`` is added to the recipe (the LoRAs and how they were applied)."""
        job_id, request = folder.job_id, plan.request
        # A multistep sampler's state is more than x: its runs start over instead of resuming
        # from a checkpoint that would change their result.
        multistep = request.sampler in MULTISTEP_SAMPLERS
        checkpoint = None if multistep else find_checkpoint(folder.path, identity,
                                                            list(plan.schedule))
        start, x = (checkpoint.step, checkpoint.x) if checkpoint else (0, None)
        if start:
            log.info("job %s: resuming sampling after step %d of %d", job_id, start,
                     request.steps)
        report = self._step_reporter(job_id, model, on_event, start)
        save = checkpoint_writer(folder.path, identity, list(plan.schedule),
                                 0 if multistep else self.settings.checkpoint_every)

        def on_stage(stage: str) -> None:
            if stage == SAMPLING:
                timer.lap("encode")
            on_event(StageEvent(job_id, stage))

        def on_step(info: StepInfo) -> None:
            report(info)
            save(info)

        cache = (StepCacheHook(model.cache_calibration, plan.schedule, request.step_cache, start)
                 if request.step_cache > 0 and model.cache_calibration is not None else None)
        latent = sample_plan(model, plan, on_stage=on_stage, on_step=on_step, cancel=cancel,
                             start_step=start, x=x, wrap=cache)
        timer.lap("sample")
        stats = cache.stats if cache else CacheStats(forwards=request.steps - start)
        recipe = build_recipe(plan, model, files, timer.timings)
        recipe["job_identity"] = identity
        recipe["resumed_from_step"] = start
        recipe["forwards"] = {"run": stats.forwards, "skipped": stats.skipped}
        recipe.update(record)
        log.info("job %s: %d denoiser forwards run, %d skipped by the step cache", job_id,
                 stats.forwards, stats.skipped)
        save_latent(folder.create().latent, latent, recipe)
        discard_checkpoint(folder.path)
        return latent, recipe, start

    def _finish(
        self,
        folder: JobFolder,
        request: GenerationRequest,
        model: LoadedModel,
        latent: torch.Tensor,
        recipe: dict[str, Any],
        on_event: EventSink,
        cancel: CancelToken,
        output_path: Path | None,
        timer: _Timer,
        start: int,
        latent_path: Path | None = None,
    ) -> JobResult:
        """Decode the latent and export the MP4, its recipe JSON and the job's recipe copy."""
        job_id = folder.job_id
        latent_path = latent_path or folder.latent
        with _latent_kept(latent_path):
            on_event(StageEvent(job_id, "decoding"))
            frames = decode_latent(model, latent, cancel)
            timer.lap("decode")
            on_event(StageEvent(job_id, "exporting"))
            video_path = Path(output_path) if output_path else free_path(
                self.settings.outputs / output_name(request, job_id))
            recipe = {**recipe, "timings_s": {**recipe.get("timings_s", {}), **timer.timings}}
            write_video(video_path, frames, request.fps, metadata=recipe, cancel=cancel)
            recipe_path = video_path.with_suffix(".json")
            atomic_write_json(recipe_path, recipe)
            atomic_write_json(folder.recipe, recipe)
            save_job_thumbnail(folder.path, frames)
            timer.lap("export")
        log.info("job %s finished in %.2f s: %s", job_id, timer.total, video_path)
        forwards = recipe.get("forwards", {})
        return JobResult(job_id, request, model.name, video_path, latent_path, recipe_path,
                         int(frames.shape[0]), request.fps, timer.total, dict(timer.timings),
                         start, int(forwards.get("run", 0)), int(forwards.get("skipped", 0)))

    def _latent_path(self, source: str | Path) -> Path:
        text = str(source)
        if Path(text).suffix == ".safetensors" or Path(text).is_file():
            return Path(text)
        if not re.fullmatch(r"[0-9a-zA-Z_-]+", text):
            raise MediaError(f"{text!r} is neither a job id nor a saved latent",
                             "pass a job id from the history or a latent .safetensors file")
        return JobFolder.of(text).latent

    def _step_reporter(
        self, job_id: str, model: LoadedModel, on_event: EventSink, start: int = 0
    ) -> Callable[[StepInfo], None]:
        began = time.perf_counter()
        every = max(1, self.settings.preview_every)
        previews = PreviewQueue()  # x̂₀ copied to the host without waiting for the device

        def on_step(info: StepInfo) -> None:
            done = info.i + 1
            elapsed = time.perf_counter() - began
            rate = (done - start) / elapsed if elapsed > 0 else 0.0
            eta = (info.n - done) / rate if rate > 0 else 0.0
            on_event(ProgressEvent(job_id, done, info.n, info.t_next, rate, eta))
            if done % every == 0 or done == info.n:
                previews.submit(done, info.x0_hat[0])
            for step, x0_hat in previews.collect(wait=done == info.n):
                on_event(PreviewEvent(job_id, step, latent_to_rgb(x0_hat, model.preview)))

        return on_step


@contextlib.contextmanager
def _memory_errors() -> Iterator[None]:
    """Turn a device or host allocation failure into :class:`OutOfMemory` with a hint."""
    try:
        yield
    except (RuntimeError, MemoryError) as exc:
        if not is_out_of_memory(exc):
            raise
        where = "GPU" if isinstance(exc, torch.OutOfMemoryError) else "computer"
        raise OutOfMemory(
            f"the {where} ran out of memory ({str(exc).splitlines()[0][:200]})",
            "use fewer frames or a smaller size, or close other programs",
        ) from exc


__all__ = [
    "GenerationService",
    "JobEvent",
    "JobResult",
    "PreviewEvent",
    "ProgressEvent",
    "StageEvent",
    "StudioError",
]
