"""The result player: play/pause, a frame scrubber and a frame counter. An image dropped on a
shown frame becomes a keyframe at that frame (``image_dropped``).

Videos are decoded off the GUI thread (:func:`decode_video_images` runs in the task pool and
builds the QImages there); the player only swaps pixmaps on a timer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QToolButton, QVBoxLayout, QWidget

from studio.media.video import read_video
from studio.service.reference import IMAGE_SUFFIXES

from .frame_canvas import FrameCanvas
from .images import frames_to_qimages
from .reference_drop import local_paths


@dataclass(frozen=True, slots=True)
class DecodedVideo:
    """A decoded video ready to show: one QImage per frame, its frame rate and file."""

    path: Path
    images: tuple[QImage, ...]
    fps: float


def decode_video_images(path: Path) -> DecodedVideo:
    """Decode ``path`` to QImages (run in a background task; raises MediaError)."""
    frames, fps, _ = read_video(path)
    return DecodedVideo(Path(path), tuple(frames_to_qimages(frames)), fps)


class Player(QWidget):
    """Plays a :class:`DecodedVideo` in a loop.

    Signals:
        frame_changed(int): the shown frame index changed.
        image_dropped(str, int): an image file was dropped on the shown frame (path, frame).
    """

    frame_changed = Signal(int)
    image_dropped = Signal(str, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("player")
        self.canvas = FrameCanvas(self, "No video yet")
        self.play_button = QToolButton(self)
        self.play_button.setObjectName("play")
        self.play_button.setText("Play")
        self.play_button.setCheckable(True)
        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setObjectName("scrubber")
        self.counter = QLabel("0 / 0", self)
        self.counter.setObjectName("frame-counter")
        self.export_button = QToolButton(self)
        self.export_button.setObjectName("export")
        controls = QHBoxLayout()
        controls.addWidget(self.play_button)
        controls.addWidget(self.slider, 1)
        controls.addWidget(self.counter)
        controls.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas, 1)
        layout.addLayout(controls)
        self._video: DecodedVideo | None = None
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._advance)
        self.play_button.toggled.connect(self._on_play_toggled)
        self.slider.valueChanged.connect(self._on_slider)
        self._set_enabled(False)
        self.setAcceptDrops(True)

    @property
    def video(self) -> DecodedVideo | None:
        return self._video

    @property
    def frame_index(self) -> int:
        return self.slider.value()

    @property
    def frame_count(self) -> int:
        return len(self._video.images) if self._video else 0

    @property
    def is_playing(self) -> bool:
        return self._timer.isActive()

    def set_video(self, video: DecodedVideo, autoplay: bool = True) -> None:
        self.pause()
        self._video = video
        self.slider.setRange(0, max(0, len(video.images) - 1))
        self._timer.setInterval(int(1000 / max(1.0, video.fps)))
        self._set_enabled(bool(video.images))
        self.slider.setValue(0)
        self._show(0)
        if autoplay and len(video.images) > 1:
            self.play()

    def clear(self, message: str = "No video yet") -> None:
        self.pause()
        self._video = None
        self.slider.setRange(0, 0)
        self.canvas.set_image(None)
        self.canvas.set_message(message)
        self.counter.setText("0 / 0")
        self._set_enabled(False)

    def play(self) -> None:
        if self.frame_count > 1:
            self.play_button.setChecked(True)

    def pause(self) -> None:
        self.play_button.setChecked(False)

    def seek(self, index: int) -> None:
        self.slider.setValue(index)

    @Slot(bool)
    def _on_play_toggled(self, playing: bool) -> None:
        self.play_button.setText("Pause" if playing else "Play")
        if playing and self.frame_count > 1:
            self._timer.start()
        else:
            self._timer.stop()

    @Slot()
    def _advance(self) -> None:
        if self.frame_count:
            self.slider.setValue((self.slider.value() + 1) % self.frame_count)

    @Slot(int)
    def _on_slider(self, index: int) -> None:
        self._show(index)

    def _show(self, index: int) -> None:
        if not self._video or not self._video.images:
            return
        index = max(0, min(index, len(self._video.images) - 1))
        self.canvas.set_image(self._video.images[index])
        self.counter.setText(f"{index + 1} / {len(self._video.images)}")
        self.frame_changed.emit(index)

    def _dropped_images(self, event: QDragEnterEvent | QDropEvent) -> list[str]:
        """The image files a drag carries, while a frame is shown (recipes, LoRAs and drops on
        an empty player go on to the window)."""
        if not self.frame_count:
            return []
        paths = local_paths(event.mimeData())
        return [str(p) for p in paths if p.suffix.lower() in IMAGE_SUFFIXES]

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._dropped_images(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        images = self._dropped_images(event)
        if not images:
            event.ignore()
            return
        event.acceptProposedAction()
        self.pause()
        for path in images:
            self.image_dropped.emit(path, self.frame_index)

    def _set_enabled(self, enabled: bool) -> None:
        self.play_button.setEnabled(enabled)
        self.slider.setEnabled(enabled)
