"""``studio --smoke-test``: drive the real window through one tiny job and an export.

Steps: wait for the model, set a prompt and 1 step at the smallest preset size, generate,
wait for the result, export it, check the exported MP4 carries the recipe, exit 0. Any error
dialog, failed job or model failure exits 1; running past the timeout exits 2.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal, Slot
from PySide6.QtWidgets import QApplication

from studio.media.video import read_video_metadata
from studio.service.model_info import ModelInfo
from studio.service.process_memory import MemoryUsage

from .main_window import MainWindow
from .worker import JobFailure

log = logging.getLogger(__name__)

SMOKE_PROMPT = "a red circle moving right on a white background"


def _exit_application(code: int) -> None:
    QApplication.instance().exit(code)


class SmokeTest(QObject):
    """Runs once; ``exit_code`` is 0 on success, 1 on failure, 2 on timeout.

    Signals:
        done(int): the exit code, emitted once just before ``exit_app(code)`` is called.
    """

    done = Signal(int)

    def __init__(self, window: MainWindow, export_path: Path, timeout_s: float = 600.0,
                 exit_app: Callable[[int], None] = _exit_application) -> None:
        super().__init__(window)
        self._exit_app = exit_app
        self.window = window
        self.export_path = Path(export_path)
        self.exit_code = 2
        self._started = False
        self._done = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(int(timeout_s * 1000))
        self._timer.timeout.connect(self._on_timeout)

    def start(self) -> None:
        c = self.window.controller
        c.model_loaded.connect(self._on_model_loaded)
        c.model_failed.connect(self._on_failure)
        c.job_failed.connect(self._on_job_failed)
        self.window.result_shown.connect(self._on_result_shown)
        self.window.files.exported.connect(self._on_exported)
        self.window.reporter.reported.connect(self._on_failure)
        self._timer.start()
        log.info("smoke test: waiting for the model")

    @Slot(object, object)
    def _on_model_loaded(self, info: ModelInfo, memory: MemoryUsage) -> None:
        if self._started:
            return
        self._started = True
        panel = self.window.prompt_panel
        panel.prompt.setPlainText(SMOKE_PROMPT)
        panel.steps.setValue(1)
        width, height = min(info.sizes, key=lambda s: s[0] * s[1])
        panel.size.set_values(width, height, info.geometry.pixel_frames(2))
        log.info("smoke test: model %s loaded (%s); generating", info.id, memory.describe())
        self.window.generate()

    @Slot(str)
    def _on_result_shown(self, path: str) -> None:
        log.info("smoke test: result %s shown; exporting", path)
        self.window.export_to(self.export_path)

    @Slot(str)
    def _on_exported(self, path: str) -> None:
        recipe = read_video_metadata(path)
        if not recipe or recipe.get("request", {}).get("steps") != 1:
            log.error("smoke test: %s carries no matching recipe", path)
            self._finish(1)
            return
        log.info("smoke test passed: %s (%d bytes)", path, Path(path).stat().st_size)
        self._finish(0)

    @Slot(str, object)
    def _on_job_failed(self, job_id: str, failure: JobFailure) -> None:
        self._on_failure(failure)

    @Slot(object)
    def _on_failure(self, failure: JobFailure) -> None:
        log.error("smoke test failed: %s: %s (%s)\n%s", failure.title, failure.message,
                  failure.hint, failure.details)
        self._finish(1)

    @Slot()
    def _on_timeout(self) -> None:
        log.error("smoke test timed out")
        self._finish(2)

    def _finish(self, code: int) -> None:
        if self._done:
            return
        self._done = True
        self.exit_code = code
        self._timer.stop()
        self.done.emit(code)
        self._exit_app(code)
