"""The history gallery's item model: ended jobs with their thumbnails and captions."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QColor, QImage

from studio.errors import MediaError
from studio.service.job_queue import Job, JobState
from studio.service.thumbnails import THUMBNAIL_EDGE, ensure_thumbnail

from .job_text import error_text, history_caption

ID_ROLE = Qt.ItemDataRole.UserRole
FAILED = QColor("#ef9a9a")
_Index = QModelIndex | QPersistentModelIndex


def saved_latent(job: Job) -> Path | None:
    """The job's saved final latent, if the file exists ("decode again" needs it)."""
    recorded = (job.result or {}).get("latent_path")
    for candidate in (recorded, job.files.latent):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def load_thumbnail(job: Job) -> QImage:
    """The job's thumbnail as a QImage, made from its video first if missing (task pool only)."""
    result = job.result or {}
    path = ensure_thumbnail(job.folder, result.get("video_path"), result.get("frames"))
    image = QImage(str(path))
    if image.isNull():
        raise MediaError(f"the thumbnail {path} could not be read", "delete it to have it remade")
    return image


def plain_tile(colour: QColor) -> QImage:
    """A plain tile for jobs without a thumbnail (failed, cancelled, or the video is gone)."""
    image = QImage(THUMBNAIL_EDGE, THUMBNAIL_EDGE * 3 // 4, QImage.Format.Format_RGB32)
    image.fill(colour.darker(300))
    return image


class HistoryModel(QAbstractListModel):
    """Rows of ended jobs, newest first.

    Roles: display (caption), decoration (thumbnail QImage, or a dark tile), tooltip (prompt and
    error), foreground (red for failed jobs), ``ID_ROLE`` (job id).
    """

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._jobs: list[Job] = []
        self._thumbnails: dict[str, QImage | None] = {}  # None: tried, there is none
        self._tile = plain_tile(QColor("#607d8b"))
        self._failed_tile = plain_tile(FAILED)

    def set_jobs(self, jobs: list[Job]) -> None:
        self.beginResetModel()
        self._jobs = list(jobs)
        ids = {j.id for j in jobs}
        self._thumbnails = {k: v for k, v in self._thumbnails.items() if k in ids}
        self.endResetModel()

    def jobs(self) -> list[Job]:
        return list(self._jobs)

    def job_at(self, row: int) -> Job:
        return self._jobs[row]

    def row_of(self, job_id: str) -> int:
        return next((i for i, j in enumerate(self._jobs) if j.id == job_id), -1)

    def thumbnail(self, job_id: str) -> QImage | None:
        return self._thumbnails.get(job_id)

    def needs_thumbnail(self, job_id: str) -> bool:
        """A finished job whose thumbnail was not loaded (or tried) yet."""
        row = self.row_of(job_id)
        return (row >= 0 and self._jobs[row].state is JobState.FINISHED
                and job_id not in self._thumbnails)

    def set_thumbnail(self, job_id: str, image: QImage | None) -> None:
        self._thumbnails[job_id] = image
        row = self.row_of(job_id)
        if row >= 0:
            self.dataChanged.emit(self.index(row), self.index(row),
                                  [Qt.ItemDataRole.DecorationRole])

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt signature
        return 0 if parent.isValid() else len(self._jobs)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        job = self._jobs[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return history_caption(job)
        if role == Qt.ItemDataRole.DecorationRole:
            image = self._thumbnails.get(job.id)
            if image is not None:
                return image
            return self._failed_tile if job.state is JobState.FAILED else self._tile
        if role == Qt.ItemDataRole.ToolTipRole:
            return "\n".join(x for x in (job.request.prompt, error_text(job)) if x)
        if role == Qt.ItemDataRole.ForegroundRole and job.state is JobState.FAILED:
            return QBrush(FAILED)
        if role == ID_ROLE:
            return job.id
        return None
