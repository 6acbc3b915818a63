"""The reference frame: drop, paste or pick an image; frame index, strength, fit or fill.

Files are checked off the GUI thread with the same reader generation uses
(:func:`studio.service.reference.inspect_reference`); an unsupported file leaves the previous
reference untouched and says why in red under the drop zone.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from PySide6.QtCore import QMargins, QMimeData, QSaveFile, Qt, Signal, Slot
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication, QImage, QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from studio.engine.request import ConditioningItem
from studio.paths import studio_home
from studio.service.reference import IMAGE_SUFFIXES, ReferenceImage, inspect_reference

from .images import array_to_qimage
from .tasks import TaskRunner
from .worker import JobFailure

FRAME_CHOICES = ("First frame", "Last frame", "Frame…")
DROP_TEXT = "Drop an image here\nor paste (Ctrl+V) · Choose…"


def local_paths(mime: QMimeData) -> list[Path]:
    """The local files named by drag-and-drop / clipboard data."""
    if not mime.hasUrls():
        return []
    return [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]


def _load_thumbnail(path: Path) -> tuple[ReferenceImage, QImage]:
    """Background task: validate the image and make its thumbnail QImage."""
    info = inspect_reference(path)
    return info, array_to_qimage(info.thumbnail)


class DropZone(QLabel):
    """Shows the thumbnail (scaled to fit, aspect kept) and accepts dropped files (forwarded as
    ``file_dropped``)."""

    file_dropped = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(DROP_TEXT, parent)
        self.setObjectName("drop-zone")
        self.setAcceptDrops(True)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(160, 110)
        self.setWordWrap(True)
        self._thumbnail = QPixmap()

    @property
    def thumbnail(self) -> QPixmap:
        return self._thumbnail

    def show_thumbnail(self, pixmap: QPixmap) -> None:
        """Show ``pixmap`` (null: the drop hint again)."""
        self._thumbnail = pixmap
        if pixmap.isNull():
            self.setPixmap(QPixmap())
            self.setText(DROP_TEXT)
        else:
            self._rescale()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if not self._thumbnail.isNull():
            self._rescale()

    def _rescale(self) -> None:
        size = self.contentsRect().size().shrunkBy(QMargins(4, 4, 4, 4))
        self.setPixmap(self._thumbnail.scaled(size, Qt.AspectRatioMode.KeepAspectRatio,
                                              Qt.TransformationMode.SmoothTransformation))

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if local_paths(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = local_paths(event.mimeData())
        if paths:
            event.acceptProposedAction()
            self.file_dropped.emit(str(paths[0]))


class ReferencePanel(QWidget):
    """Edits at most one reference frame.

    Signals:
        changed(): the reference, its frame, strength or fit changed (the schedule marks move).
        load_failed(str): a file was refused; the text says why.
    """

    changed = Signal()
    load_failed = Signal(str)

    def __init__(self, tasks: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("reference-panel")
        self._tasks = tasks
        self._image: ReferenceImage | None = None
        self._build()
        self._connect()
        self.set_frame_count(17)

    def _build(self) -> None:
        self.drop_zone = DropZone(self)
        self.choose_button = QPushButton("Choose…", self)
        self.paste_button = QPushButton("Paste", self)
        self.clear_button = QPushButton("Clear", self)
        self.message = QLabel(self)
        self.message.setObjectName("reference-message")
        self.message.setWordWrap(True)
        self.message.hide()
        self.frame_choice = QComboBox(self)
        self.frame_choice.setObjectName("reference-frame")
        self.frame_choice.addItems(list(FRAME_CHOICES))
        self.frame_index = QSpinBox(self)
        self.frame_index.setObjectName("reference-frame-index")
        self.frame_index.setEnabled(False)
        self.strength = QDoubleSpinBox(self)
        self.strength.setObjectName("reference-strength")
        self.strength.setRange(0.0, 1.0)
        self.strength.setSingleStep(0.05)
        self.strength.setValue(1.0)
        self.strength.setToolTip(
            "1 = kept exactly; lower values start denoising at t = 1 − strength")
        self.fill = QRadioButton("Fill (crop)", self)
        self.fit = QRadioButton("Fit (letterbox)", self)
        self.fill.setChecked(True)
        self._fit_group = QButtonGroup(self)
        self._fit_group.addButton(self.fill)
        self._fit_group.addButton(self.fit)
        buttons = QHBoxLayout()
        for button in (self.choose_button, self.paste_button, self.clear_button):
            buttons.addWidget(button)
        frame_row = QHBoxLayout()
        frame_row.addWidget(self.frame_choice, 1)
        frame_row.addWidget(self.frame_index)
        fit_row = QHBoxLayout()
        fit_row.addWidget(self.fill)
        fit_row.addWidget(self.fit)
        form = QFormLayout()
        form.addRow("Frame", frame_row)
        form.addRow("Strength", self.strength)
        form.addRow("Resize", fit_row)
        layout = QVBoxLayout(self)
        layout.addWidget(self.drop_zone, 1)
        layout.addWidget(self.message)
        layout.addLayout(buttons)
        layout.addLayout(form)

    def _connect(self) -> None:
        self.drop_zone.file_dropped.connect(self.load_path)
        self.choose_button.clicked.connect(self._on_choose)
        self.paste_button.clicked.connect(self.paste)
        self.clear_button.clicked.connect(self.clear)
        self.frame_choice.currentIndexChanged.connect(self._on_frame_choice)
        self.frame_index.valueChanged.connect(self._emit_changed)
        self.strength.valueChanged.connect(self._emit_changed)
        self.fill.toggled.connect(self._emit_changed)

    # --- public API -------------------------------------------------------------------------

    @property
    def image(self) -> ReferenceImage | None:
        return self._image

    def items(self) -> tuple[ConditioningItem, ...]:
        """The conditioning items for a request (empty without a reference)."""
        if self._image is None or not self.isEnabled():
            return ()
        choice = self.frame_choice.currentIndex()
        index = 0 if choice == 0 else -1 if choice == 1 else self.frame_index.value()
        return (ConditioningItem(self._image.path, index, round(self.strength.value(), 4),
                                 "fit" if self.fit.isChecked() else "fill"),)

    def set_items(self, items: tuple[ConditioningItem, ...]) -> None:
        """Show the first item of a recipe (or clear when there is none)."""
        if not items:
            self.clear()
            return
        item = items[0]
        choice = 0 if item.frame_index == 0 else 1 if item.frame_index == -1 else 2
        self.frame_choice.setCurrentIndex(choice)
        if choice == 2:
            frames = self.frame_index.maximum() + 1
            self.frame_index.setValue(item.frame_index % frames)
        self.strength.setValue(item.strength)
        (self.fit if item.fit == "fit" else self.fill).setChecked(True)
        self.load_path(item.image)

    def set_frame_count(self, frames: int) -> None:
        self.frame_index.setRange(0, max(0, frames - 1))

    def set_supported(self, supported: bool, model_name: str = "") -> None:
        self.setEnabled(supported)
        self.setToolTip("" if supported else f"{model_name} does not take reference frames")

    @Slot(str)
    def load_path(self, path: str) -> None:
        """Check and show an image file (in the background); refusals appear inline."""
        self._tasks.submit(lambda p=Path(path): _load_thumbnail(p), self._on_loaded,
                           self._on_refused)

    @Slot()
    def paste(self) -> None:
        """Take an image file or bitmap from the clipboard."""
        mime = QGuiApplication.clipboard().mimeData()
        paths = local_paths(mime) if mime is not None else []
        if paths:
            self.load_path(str(paths[0]))
            return
        image = QGuiApplication.clipboard().image()
        if image.isNull():
            self._show_message("The clipboard holds no image or image file.")
            return
        self.load_path(str(save_pasted_image(image)))

    @Slot()
    def clear(self) -> None:
        self._image = None
        self.drop_zone.show_thumbnail(QPixmap())
        self.message.hide()
        self.changed.emit()

    # --- reactions --------------------------------------------------------------------------

    def _on_loaded(self, result: tuple[ReferenceImage, QImage]) -> None:
        info, thumbnail = result
        self._image = info
        self.drop_zone.show_thumbnail(QPixmap.fromImage(thumbnail))
        self.drop_zone.setToolTip(f"{info.path}\n{info.width} × {info.height} px")
        self.message.hide()
        self.changed.emit()

    def _on_refused(self, failure: JobFailure) -> None:
        self._show_message(f"{failure.message} {failure.hint}".strip())
        self.load_failed.emit(self.message.text())

    def _show_message(self, text: str) -> None:
        self.message.setText(text)
        self.message.show()

    @Slot()
    def _on_choose(self) -> None:
        pattern = " ".join(f"*{s}" for s in IMAGE_SUFFIXES)
        path, _ = QFileDialog.getOpenFileName(self, "Reference frame", "",
                                              f"Images ({pattern})")
        if path:
            self.load_path(path)

    @Slot(int)
    def _on_frame_choice(self, choice: int) -> None:
        self.frame_index.setEnabled(choice == 2)
        self.changed.emit()

    @Slot()
    def _emit_changed(self) -> None:
        self.changed.emit()


def save_pasted_image(image: QImage) -> Path:
    """Save a pasted bitmap atomically as PNG under ``STUDIO_HOME/references`` (named by hash)."""
    folder = studio_home() / "references"
    folder.mkdir(parents=True, exist_ok=True)
    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    digest = hashlib.sha256(bytes(rgb.constBits())).hexdigest()[:16]
    path = folder / f"pasted-{digest}.png"
    if not path.exists():
        file = QSaveFile(str(path))
        if file.open(QSaveFile.OpenModeFlag.WriteOnly) and rgb.save(file, "PNG"):
            file.commit()
        else:
            file.cancelWriting()
    return path
