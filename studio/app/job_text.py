"""Words for jobs, shared by the queue view and the history gallery (plain strings, no Qt)."""

from __future__ import annotations

from pathlib import Path

from studio.engine.request import GenerationRequest
from studio.service.job_queue import Job, JobState

from .keyframe_list import frame_label


def elide(text: str, limit: int = 60) -> str:
    """``text`` on one line, cut to ``limit`` characters with "…" when longer."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def model_label(request: GenerationRequest) -> str:
    """The model a request names, short: a folder's name, or "default model"."""
    return Path(request.model).name if request.model else "default model"


def size_text(request: GenerationRequest) -> str:
    """"832×480 × 81 frames"."""
    return f"{request.width}×{request.height} × {request.frames} frames"


def request_line(request: GenerationRequest) -> str:
    """Model, size × frames, steps and seed on one line."""
    return (f"{model_label(request)} · {size_text(request)} · {request.steps} steps · "
            f"seed {request.seed}")


def job_seconds(job: Job) -> float | None:
    """Wall time of the job's last run, started → ended (s); None if it never ran to an end."""
    if job.started is None or job.ended is None:
        return None
    return max(0.0, job.ended - job.started)


def clip_seconds(request: GenerationRequest) -> float:
    """Length of the video the request makes, frames / fps (s)."""
    return request.frames / request.fps


def duration_text(seconds: float | None) -> str:
    """"42.1 s", "3 min 05 s", or "—"."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def error_text(job: Job) -> str:
    """The failure's message (and hint) of a failed job; "" otherwise."""
    if job.state is not JobState.FAILED or not job.error:
        return ""
    message, hint = job.error.get("message", ""), job.error.get("hint", "")
    return f"{message} — {hint}" if hint else message


def history_caption(job: Job) -> str:
    """The gallery's caption under a thumbnail: prompt, model · size, durations or the state."""
    request = job.request
    lines = [elide(request.prompt or "(no prompt)", 40),
             f"{model_label(request)} · {request.width}×{request.height}"]
    if job.state is JobState.FINISHED:
        lines.append(f"{duration_text(job_seconds(job))} job · "
                     f"{clip_seconds(request):.1f} s clip")
    else:
        lines.append(job.state.value.upper())
    return "\n".join(lines)


def recipe_summary(job: Job) -> str:
    """A readable multi-line summary of a job: what was asked, how it went, where it is."""
    r = job.request
    lines = [
        f"Prompt: {r.prompt or '(none)'}",
        f"Negative: {r.negative_prompt or '(model default)'}",
        f"Model: {model_label(r)}",
        f"Size: {size_text(r)} at {r.fps:g} fps ({clip_seconds(r):.1f} s)",
        f"Steps: {r.steps} · guidance {r.guidance:g} · shift {r.shift} · {r.sampler}",
        f"Seed: {r.seed}",
    ]
    lines += [f"Keyframe: {Path(c.image).name} at {frame_label(c.frame_index)}, strength "
              f"{c.strength:g} ({c.fit})" for c in r.conditioning]
    lines.append(f"State: {job.state.value} · job {duration_text(job_seconds(job))} · "
                 f"id {job.id}")
    if job.state is JobState.FAILED:
        lines.append(f"Error: {error_text(job)}")
    video = (job.result or {}).get("video_path")
    if video:
        lines.append(f"Video: {video}")
    return "\n".join(lines)
