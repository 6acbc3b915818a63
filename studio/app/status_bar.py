"""The job status strip in the status bar: stage, a progress bar, step i/N, it/s and ETA."""

from __future__ import annotations

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QWidget

from studio.service.generation import ProgressEvent

STAGE_TEXT = {
    "loading": "Loading the model…",
    "encoding": "Encoding the prompt…",
    "sampling": "Sampling…",
    "decoding": "Decoding the video…",
    "exporting": "Writing the MP4…",
}


def format_eta(seconds: float) -> str:
    seconds = max(0, round(seconds))
    minutes, secs = divmod(seconds, 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


class JobStatus(QWidget):
    """Shows what the running job is doing; idle text otherwise."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.stage = QLabel("Ready", self)
        self.stage.setObjectName("job-stage")
        self.bar = QProgressBar(self)
        self.bar.setObjectName("job-progress")
        self.bar.setFixedWidth(220)
        self.bar.setTextVisible(True)
        self.bar.setFormat("%v / %m")
        self.detail = QLabel(self)
        self.detail.setObjectName("job-detail")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)
        layout.addWidget(self.stage)
        layout.addWidget(self.bar)
        layout.addWidget(self.detail)
        self.bar.hide()

    @Slot(str, int)
    def job_started(self, job_id: str, steps: int) -> None:
        self.stage.setText(f"Job {job_id[:6]} started")
        self.bar.setRange(0, max(1, steps))
        self.bar.setValue(0)
        self.bar.show()
        self.detail.setText("")

    @Slot(str, str)
    def stage_changed(self, job_id: str, stage: str) -> None:
        self.stage.setText(STAGE_TEXT.get(stage, stage))

    @Slot(object)
    def progress(self, p: ProgressEvent) -> None:
        self.bar.setRange(0, p.steps)
        self.bar.setValue(p.step)
        self.detail.setText(f"step {p.step}/{p.steps} · {p.it_per_s:.2f} it/s · "
                            f"ETA {format_eta(p.eta_s)}")

    def ended(self, text: str) -> None:
        self.stage.setText(text)
        self.bar.hide()
        self.detail.setText("")
