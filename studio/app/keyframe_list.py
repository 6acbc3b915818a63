"""One keyframe of the reference panel: its thumbnail, the frame it pins, its strength, remove.

A keyframe is a :class:`~studio.engine.request.ConditioningItem` being edited: an image or a
clip (its first frame shown, with its length) checked by
:func:`studio.service.reference.inspect_reference`, a frame (first, last or a frame number
bounded by the job's frame count), a strength m ∈ [0, 1] (1 = kept exactly; lower values start
denoising at t = 1 − m) and how it is resized (the panel's global fill / fit choice).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFrame,
    QGridLayout,
    QLabel,
    QSpinBox,
    QToolButton,
    QWidget,
)

from studio.engine.request import ConditioningItem
from studio.service.reference import ReferenceImage

FRAME_CHOICES = ("First frame", "Last frame", "Frame…")
FIRST, LAST, NUMBERED = range(3)
THUMBNAIL_SIZE = (72, 48)  # px; the row's preview, aspect kept inside it


def choice_of(frame_index: int) -> int:
    """The frame combo entry for a request's frame index (0 first, −1 last, else numbered)."""
    return FIRST if frame_index == 0 else LAST if frame_index == -1 else NUMBERED


def free_frame(used: list[int], frames: int) -> int:
    """Where a new keyframe goes: the first frame, else the last, else the middle of the widest
    gap between the frames already pinned (−1 counts as ``frames − 1``)."""
    if 0 not in used:
        return 0
    if -1 not in used and frames - 1 not in used:
        return -1
    pinned = sorted({f % frames for f in used} | {0, frames - 1})
    if len(pinned) < 2:  # a one-frame video has nowhere else
        return 0
    low, high = max(zip(pinned, pinned[1:], strict=False), key=lambda pair: pair[1] - pair[0])
    return (low + high) // 2


def clip_start(frame_index: int, clip_frames: int, frames: int, step: int) -> int:
    """Where a clip of ``clip_frames`` placed at ``frame_index`` can start: there, when it fits
    in the video and starts at frame 0 or on a multiple of ``step`` (the model's frames per
    latent frame); else the latest such frame that fits (0 when none does)."""
    start = frame_index % frames
    if start + clip_frames <= frames and (start == 0 or start % step == 0):
        return start
    return max(0, frames - clip_frames) // step * step


def frame_label(frame_index: int) -> str:
    """A frame index in words: "first frame", "last frame" or "frame N"."""
    return ("first frame", "last frame", f"frame {frame_index}")[choice_of(frame_index)]


def kind_label(image: ReferenceImage) -> str:
    """What a row holds, in words: "image", or "clip, 17 frames"."""
    return f"clip, {image.frames} frames" if image.clip else "image"


class KeyframeRow(QFrame):
    """Edits one keyframe.

    Signals:
        changed(): its frame or strength changed.
        remove_requested(object): the remove button was clicked (carries the row).
    """

    changed = Signal()
    remove_requested = Signal(object)

    def __init__(self, image: ReferenceImage, thumbnail: QPixmap, order: int,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("keyframe-row")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.image = image
        self.order = order
        """Position among the panel's rows (a restored recipe keeps its item order)."""
        self.fit = "fill"
        self._thumbnail = thumbnail
        self._build()
        self.frame_choice.currentIndexChanged.connect(self._on_frame_choice)
        self.frame_index.valueChanged.connect(self._emit_changed)
        self.strength.valueChanged.connect(self._emit_changed)
        self.remove_button.clicked.connect(lambda: self.remove_requested.emit(self))

    def _build(self) -> None:
        self.preview = QLabel(self)
        self.preview.setFixedSize(*THUMBNAIL_SIZE)
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setPixmap(self._thumbnail.scaled(
            *THUMBNAIL_SIZE, Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation))
        self.preview.setToolTip(f"{self.image.path}\n{self.image.width} × {self.image.height} px")
        self.kind = QLabel(kind_label(self.image), self)
        self.kind.setObjectName("keyframe-kind")
        self.frame_choice = QComboBox(self)
        self.frame_choice.setObjectName("keyframe-frame")
        self.frame_choice.addItems(list(FRAME_CHOICES))
        self.frame_index = QSpinBox(self)
        self.frame_index.setObjectName("keyframe-frame-index")
        self.frame_index.setEnabled(False)
        self.strength = QDoubleSpinBox(self)
        self.strength.setObjectName("keyframe-strength")
        self.strength.setRange(0.0, 1.0)
        self.strength.setSingleStep(0.05)
        self.strength.setValue(1.0)
        self.strength.setToolTip(
            "1 = kept exactly; lower values start denoising at t = 1 − strength")
        self.remove_button = QToolButton(self)
        self.remove_button.setText("✕")
        self.remove_button.setToolTip("Remove this keyframe")
        grid = QGridLayout(self)
        grid.setContentsMargins(4, 4, 4, 4)
        grid.addWidget(self.preview, 0, 0, 2, 1)
        grid.addWidget(self.frame_choice, 0, 1)
        grid.addWidget(self.frame_index, 0, 2)
        grid.addWidget(QLabel("Strength", self), 1, 1)
        grid.addWidget(self.strength, 1, 2)
        grid.addWidget(self.remove_button, 0, 3)
        grid.addWidget(self.kind, 2, 0)

    @property
    def thumbnail(self) -> QPixmap:
        """The full-size thumbnail (the row shows it scaled into :data:`THUMBNAIL_SIZE`)."""
        return self._thumbnail

    def frame(self) -> int:
        """The request's frame index: 0 first, −1 last, else the spin box's frame number."""
        choice = self.frame_choice.currentIndex()
        return 0 if choice == FIRST else -1 if choice == LAST else self.frame_index.value()

    def set_frame(self, frame_index: int) -> None:
        """Pin ``frame_index`` (a negative number other than −1 counts from the end)."""
        choice = choice_of(frame_index)
        self.frame_choice.setCurrentIndex(choice)
        if choice == NUMBERED:
            self.frame_index.setValue(frame_index % (self.frame_index.maximum() + 1))

    def set_frame_count(self, frames: int) -> None:
        self.frame_index.setRange(0, max(0, frames - 1))

    def set_first_only(self, first_only: bool) -> None:
        """A first-frame-only model: the row is pinned to frame 0."""
        if first_only:
            self.frame_choice.setCurrentIndex(FIRST)
        self.frame_choice.setEnabled(not first_only)

    def item(self) -> ConditioningItem:
        return ConditioningItem(self.image.path, self.frame(), round(self.strength.value(), 4),
                                self.fit)

    @Slot(int)
    def _on_frame_choice(self, choice: int) -> None:
        self.frame_index.setEnabled(choice == NUMBERED)
        self.changed.emit()

    @Slot()
    def _emit_changed(self) -> None:
        self.changed.emit()
