"""The live preview: x̂₀ of every latent frame at the newest step, playing as a loop."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Slot
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from .frame_canvas import FrameCanvas

IDLE_MESSAGE = "Press Generate (Ctrl+Enter) — the video forms here step by step"


class PreviewView(QWidget):
    """Shows the newest preview of the running job; older or foreign previews are dropped."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("preview-view")
        self.canvas = FrameCanvas(self, IDLE_MESSAGE)
        self.caption = QLabel(self)
        self.caption.setObjectName("preview-caption")
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(self.caption)
        self._job: str | None = None
        self._step = 0
        self._steps = 0
        self._images: list[QImage] = []
        self._frame = 0
        self._timer = QTimer(self)
        self._timer.setInterval(250)
        self._timer.timeout.connect(self._advance)
        self.shown_steps: list[int] = []

    @property
    def job_id(self) -> str | None:
        return self._job

    @property
    def step(self) -> int:
        return self._step

    @property
    def frame_count(self) -> int:
        return len(self._images)

    def start_job(self, job_id: str, steps: int, loop_fps: float) -> None:
        """Forget the last job's frames; previews of ``job_id`` are shown from now on."""
        self._job, self._step, self._steps = job_id, 0, steps
        self._images = []
        self._frame = 0
        self.shown_steps = []
        self._timer.setInterval(int(1000 / max(1.0, min(loop_fps, 24.0))))
        self.canvas.set_image(None)
        self.canvas.set_message("Loading the model and encoding the prompt…")
        self.caption.setText("")

    def set_status(self, text: str) -> None:
        if not self._images:
            self.canvas.set_message(text)

    def stop(self, message: str = "") -> None:
        self._timer.stop()
        if message:
            self.caption.setText(message)

    @Slot(str, int, object)
    def show_preview(self, job_id: str, step: int, images: list[QImage]) -> None:
        """Newest preview wins: anything for another job or an older step is dropped."""
        if job_id != self._job or step <= self._step or not images:
            return
        self._step = step
        self.shown_steps.append(step)
        if len(images) != len(self._images):
            self._frame = 0
        self._images = list(images)
        self._show_frame()
        if len(self._images) > 1 and not self._timer.isActive():
            self._timer.start()

    @Slot()
    def _advance(self) -> None:
        if self._images:
            self._frame = (self._frame + 1) % len(self._images)
            self._show_frame()

    def _show_frame(self) -> None:
        self.canvas.set_image(self._images[self._frame])
        self.caption.setText(f"clean-video estimate at step {self._step}/{self._steps} · "
                             f"latent frame {self._frame + 1}/{len(self._images)}")
