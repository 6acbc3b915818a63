"""What the main window does as a job runs: preview, progress, schedule mark, result, errors.

A mixin of :class:`~studio.app.main_window.MainWindow` (it uses the window's views, its task
runner and error reporter); the window connects the controller's job signals to these slots.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Slot

from studio.errors import StudioError
from studio.service.generation import JobResult, ProgressEvent
from studio.service.schedule_chart import chart_for

from .player import DecodedVideo, decode_video_images
from .worker import JobFailure

log = logging.getLogger(__name__)


class JobEventsMixin:
    """The main window's slots for the controller's job signals."""

    @Slot(str)
    def _on_job_started(self, job_id: str) -> None:
        request = self.controller.queue.get(job_id).request
        geometry = self._info.geometry if self._info else None
        loop_fps = request.fps / (geometry.temporal_factor if geometry else 1)
        self.preview_view.start_job(job_id, request.steps, loop_fps)
        self.stack.setCurrentWidget(self.preview_view)
        self.job_status.job_started(job_id, request.steps)
        if geometry is not None:
            try:
                self.schedule_view.set_chart(chart_for(self._info, request))
            except StudioError:
                log.debug("job %s does not fit the loaded model's geometry", job_id)
        self.schedule_view.set_current_step(0)

    @Slot(str, str)
    def _on_stage(self, job_id: str, stage: str) -> None:
        self.preview_view.set_status(self.job_status.stage.text())

    @Slot(object)
    def _on_progress(self, progress: ProgressEvent) -> None:
        self.job_status.progress(progress)
        chart = self.schedule_view.chart
        if chart is not None and progress.step <= chart.steps:
            self.schedule_view.set_current_step(progress.step)

    @Slot(str, object)
    def _on_job_finished(self, job_id: str, result: JobResult) -> None:
        skipped = (f" · {result.forwards} forwards, {result.skipped_forwards} skipped"
                   if result.skipped_forwards else "")
        self.job_status.ended(f"Finished in {result.seconds:.1f} s · {result.video_path.name}"
                              f"{skipped}")
        self._job_ended()
        path = Path(result.video_path)
        self.tasks.submit(lambda: decode_video_images(path), self._show_video)

    @Slot(str, object)
    def _on_job_failed(self, job_id: str, failure: JobFailure) -> None:
        self.job_status.ended(f"Failed: {failure.message}")
        self._job_ended("Failed")
        self.reporter.report(failure)

    @Slot(str)
    def _on_job_cancelled(self, job_id: str) -> None:
        self.job_status.ended("Cancelled — no video was written")
        self._job_ended("Cancelled")

    def _job_ended(self, caption: str = "") -> None:
        self.preview_view.stop(caption)
        self.schedule_view.set_current_step(None)
        self._update_actions()
        self._schedule_timer.start()

    @Slot(str)
    def _play(self, path: str) -> None:
        """Decode ``path`` in the task pool, then play it (a job picked in the history)."""
        self.tasks.submit(lambda: decode_video_images(Path(path)), self._show_video)

    @Slot(str)
    def _on_job_deleted(self, _job_id: str) -> None:
        """A job deleted from the history takes its video along: stop showing it."""
        if self.shown_video is not None and not self.shown_video.exists():
            self.shown_video = None
            self.player.clear("The video was deleted")
            self._update_actions()

    def _show_video(self, video: DecodedVideo) -> None:
        self.player.set_video(video)
        self.shown_video = Path(video.path)
        self._update_actions()
        self.stack.setCurrentWidget(self.player)
        self.result_shown.emit(str(video.path))
