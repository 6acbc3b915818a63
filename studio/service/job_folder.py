"""A job's folder and the files in it: the one place that knows their names.

``STUDIO_HOME/jobs/<job id>/`` holds the job's record (``job.json``), its run lock, the sampling
checkpoint while it samples, the final latent with the recipe in its header, the recipe as JSON
and the history thumbnail. Everything else asks a :class:`JobFolder` for these paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from studio.paths import studio_home


def jobs_root() -> Path:
    """``STUDIO_HOME/jobs`` (created when missing)."""
    path = studio_home() / "jobs"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True, slots=True)
class JobFolder:
    """The folder of one job and the paths of its files (nothing is created until asked)."""

    path: Path

    @classmethod
    def of(cls, job_id: str, root: Path | None = None) -> JobFolder:
        """The folder of ``job_id`` under ``root`` (default: :func:`jobs_root`)."""
        return cls((root if root is not None else jobs_root()) / job_id)

    @property
    def job_id(self) -> str:
        return self.path.name

    def create(self) -> JobFolder:
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    @property
    def record(self) -> Path:
        """The job's state (:class:`~studio.service.job_record.Job`) as JSON."""
        return self.path / "job.json"

    @property
    def run_lock(self) -> Path:
        """Held by the process running the job."""
        return self.path / "run.lock"

    @property
    def checkpoint(self) -> Path:
        """The sampling state saved every k steps, deleted once the final latent is saved."""
        return self.path / "sampling.safetensors"

    @property
    def latent(self) -> Path:
        """The final latent, with the recipe in its header."""
        return self.path / "latent.safetensors"

    @property
    def recipe(self) -> Path:
        """The recipe of the last export, as JSON."""
        return self.path / "recipe.json"

    @property
    def thumbnail(self) -> Path:
        """The history tile."""
        return self.path / "thumbnail.png"
