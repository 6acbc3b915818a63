"""Saved state that lets a job continue where it stopped instead of starting over.

Two kinds, both in the job's folder and both written atomically:

* ``sampling.safetensors`` — a sampling checkpoint, written every k steps (the
  ``checkpoint_every`` setting): the state x after ``step`` steps (``[1, C, T', H', W']``,
  float32), the schedule and the job's identity hash. A killed job resumes at that step and ends
  with the same latent, bit for bit on the CPU, as a run that was never interrupted (the Euler
  step is deterministic; the stochastic sampler seeds each step's noise by seed and step).
* ``latent.safetensors`` — the final latent (see :mod:`studio.media.latent_file`): a job that
  died while decoding or exporting skips sampling entirely.

A checkpoint that is damaged, or was made for another request, schedule or model file, is
ignored with a warning: the job then samples from the start, which is slower but never wrong.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from studio.engine.request import GenerationRequest
from studio.engine.sampler import StepInfo
from studio.errors import StudioError
from studio.media.atomic import atomic_write_bytes
from studio.media.latent_file import load_latent
from studio.service.job_folder import JobFolder

log = logging.getLogger(__name__)

CHECKPOINT_VERSION = 1
_STATE_KEY = "x"


def job_identity(request: GenerationRequest, model_files: Sequence[dict[str, Any]]) -> str:
    """Hex SHA-256 of the request and the model files' content hashes.

    Saved state is reused only under the same identity: the same request on the same weights.
    """
    payload = {
        "request": request.to_dict(),
        "model_files": sorted(str(f.get("sha256", "")) for f in model_files),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class SamplingCheckpoint:
    """The sampler state after ``step`` of ``len(schedule) − 1`` steps.

    Attributes:
        x: the latent after step ``step`` (1-based count), ``[1, C, T', H', W']`` float32 CPU.
        step: steps finished; sampling resumes at step index ``step``.
        schedule: the N + 1 times (t ∈ [0, 1]) the run uses.
        identity: :func:`job_identity` of the run.
    """

    x: torch.Tensor
    step: int
    schedule: tuple[float, ...]
    identity: str


def save_checkpoint(path: Path, checkpoint: SamplingCheckpoint) -> None:
    """Write ``checkpoint`` atomically (a reader sees the previous one or this one)."""
    metadata = {
        "version": str(CHECKPOINT_VERSION),
        "step": str(checkpoint.step),
        "schedule": json.dumps(list(checkpoint.schedule)),
        "identity": checkpoint.identity,
    }
    tensor = checkpoint.x.detach().float().cpu().contiguous()
    Path(path).parent.mkdir(parents=True, exist_ok=True)  # the job folder's first file
    atomic_write_bytes(Path(path), save({_STATE_KEY: tensor}, metadata=metadata))


def load_checkpoint(path: Path) -> SamplingCheckpoint | None:
    """The checkpoint at ``path``; None (with a warning) when it is damaged, None when absent."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            x = fh.get_tensor(_STATE_KEY).clone()  # not a view of the mapped file
        if meta.get("version") != str(CHECKPOINT_VERSION) or x.dim() != 5:
            raise ValueError("not a sampling checkpoint of a supported version")
        schedule = tuple(float(t) for t in json.loads(meta["schedule"]))
        return SamplingCheckpoint(x, int(meta["step"]), schedule, str(meta["identity"]))
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring the damaged sampling checkpoint %s (%s); sampling from the start",
                    path, exc)
        return None


def find_checkpoint(
    folder: Path, identity: str, schedule: Sequence[float]
) -> SamplingCheckpoint | None:
    """A usable checkpoint for this run in ``folder``, or None (start from noise)."""
    checkpoint = load_checkpoint(JobFolder(Path(folder)).checkpoint)
    if checkpoint is None:
        return None
    steps = len(schedule) - 1
    if checkpoint.identity != identity or checkpoint.schedule != tuple(schedule):
        log.warning("the sampling checkpoint in %s belongs to other settings or model files; "
                    "sampling from the start", folder)
        return None
    if not 1 <= checkpoint.step < steps:
        log.warning("the sampling checkpoint in %s is at step %d of %d; sampling from the start",
                    folder, checkpoint.step, steps)
        return None
    return checkpoint


def find_saved_latent(
    folder: Path, identity: str
) -> tuple[torch.Tensor, dict[str, Any]] | None:
    """The job's final latent and its recipe when one was saved for this identity, else None."""
    path = JobFolder(Path(folder)).latent
    if not path.exists():
        return None
    try:
        latent, recipe = load_latent(path)
    except StudioError as exc:
        log.warning("ignoring the saved latent %s (%s); sampling again", path, exc)
        return None
    if recipe.get("job_identity") != identity:
        log.warning("the saved latent in %s was made with other settings; sampling again", folder)
        return None
    return latent, recipe


def saved_progress(folder: Path) -> str:
    """A few words on the state a job would resume from ("latent saved", "step 10 saved", "")."""
    folder = Path(folder)
    if (JobFolder(Path(folder)).latent).exists():
        return "latent saved"
    try:
        with safe_open(str(JobFolder(Path(folder)).checkpoint), framework="pt") as fh:
            return f"step {int((fh.metadata() or {})['step'])} saved"
    except (SafetensorError, OSError, ValueError, KeyError):
        return ""


def discard_checkpoint(folder: Path) -> None:
    """Delete the sampling checkpoint once the final latent is safely on disk."""
    (JobFolder(Path(folder)).checkpoint).unlink(missing_ok=True)


def checkpoint_writer(
    folder: Path,
    identity: str,
    schedule: Sequence[float],
    every: int,
) -> Callable[[StepInfo], None]:
    """A step callback that saves a checkpoint after every ``every``-th step (0 = never).

    The last step is not checkpointed (the final latent is saved right after it). A checkpoint
    that cannot be written (full disk) is logged and skipped: it must not fail the run.
    """
    path = JobFolder(Path(folder)).checkpoint
    schedule = tuple(float(t) for t in schedule)

    def on_step(info: StepInfo) -> None:
        done = info.i + 1
        if every <= 0 or done % every or done >= info.n:
            return
        try:
            save_checkpoint(path, SamplingCheckpoint(info.x, done, schedule, identity))
        except (OSError, StudioError) as exc:
            log.warning("could not save the sampling checkpoint at step %d: %s", done, exc)

    return on_step
