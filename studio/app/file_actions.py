"""Export the finished MP4, and open files: recipes (MP4 / JSON) restore settings, images
and clips (videos without a recipe) become reference frames. Disk and ffmpeg work runs in the
task pool."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Collection
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QWidget

from studio.errors import MediaError
from studio.media.atomic import atomic_path
from studio.service.recipe_check import RecipeCheck, read_checked_recipe
from studio.service.reference import IMAGE_SUFFIXES, is_recipe_video

from .tasks import TaskRunner
from .worker import JobFailure

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov")
RECIPE_SUFFIXES = (*VIDEO_SUFFIXES, ".json")


def copy_video(source: Path, target: Path) -> Path:
    """Copy a finished MP4 (recipe metadata included) to ``target`` atomically."""
    if not Path(source).is_file():
        raise MediaError(f"{source} no longer exists",
                         "generate the video again, or pick it from the outputs folder")
    if Path(source).resolve() == Path(target).resolve():
        return Path(target)
    try:
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
    except OSError as exc:
        raise MediaError(f"could not write {target} ({exc.strerror or exc})",
                         "choose another folder or free some disk space") from exc
    log.info("exported %s → %s", source, target)
    return Path(target)


def is_recipe_file(path: Path) -> bool:
    """A JSON file, or a video carrying a Flow Studio recipe; another video is a clip
    (:func:`~studio.service.reference.is_recipe_video`)."""
    suffix = Path(path).suffix.lower()
    return suffix == ".json" or (suffix in VIDEO_SUFFIXES and is_recipe_video(path))


class FileActions(QObject):
    """Export and open, reporting back through signals.

    Signals:
        exported(path): the MP4 was written.
        request_loaded(GenerationRequest, path): a recipe was read; what it pointed at that is
            not the user's (a model set, a reference image elsewhere) is left out.
        recipe_notes(list[str]): what was left out, in words (emitted before request_loaded).
        failed(JobFailure): export or reading failed (the window shows a dialog).
    """

    exported = Signal(str)
    request_loaded = Signal(object, str)
    recipe_notes = Signal(list)
    failed = Signal(object)

    def __init__(self, tasks: TaskRunner, parent_widget: QWidget,
                 known_models: Callable[[], Collection[str]]) -> None:
        """``known_models()`` lists the ids of the user's model sets (called in the pool)."""
        super().__init__(parent_widget)
        self._tasks = tasks
        self._parent_widget = parent_widget
        self._known_models = known_models

    def ask_export(self, source: Path) -> None:
        """Ask where to save, then export (nothing happens if the dialog is cancelled)."""
        path, _ = QFileDialog.getSaveFileName(self._parent_widget, "Export MP4",
                                              str(Path.home() / Path(source).name),
                                              "MP4 video (*.mp4)")
        if path:
            target = Path(path)
            self.export(source, target if target.suffix else target.with_suffix(".mp4"))

    def ask_open_path(self) -> Path | None:
        """Ask for a recipe (MP4 / JSON), a reference image or a clip; None when cancelled."""
        images = " ".join(f"*{s}" for s in IMAGE_SUFFIXES)
        recipes = " ".join(f"*{s}" for s in RECIPE_SUFFIXES)
        path, _ = QFileDialog.getOpenFileName(self._parent_widget,
                                              "Open a recipe, a reference image or clip", "",
                                              f"Recipes, images, clips ({recipes} {images})")
        return Path(path) if path else None

    def export(self, source: Path, target: Path) -> None:
        self._tasks.submit(lambda: copy_video(source, target),
                           lambda done: self.exported.emit(str(done)), self._failed)

    def read_request(self, path: Path) -> None:
        """Read the recipe carried by an MP4 or a JSON file."""
        known = self._known_models
        self._tasks.submit(lambda: read_checked_recipe(Path(path), known()),
                           lambda check: self._loaded(check, path), self._failed)

    def _loaded(self, check: RecipeCheck, path: Path) -> None:
        notes = check.notes()
        if notes:
            self.recipe_notes.emit(notes)
        self.request_loaded.emit(check.request, str(path))

    def _failed(self, failure: JobFailure) -> None:
        self.failed.emit(failure)
