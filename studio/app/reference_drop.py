"""The reference frames (keyframes): drop, paste or pick images or clips (short videos); each
pins a frame (a clip: its first frame and those after) with a strength; one fill-or-fit choice
for all.

Files are checked off the GUI thread with the same reader generation uses
(:func:`studio.service.reference.inspect_reference`); an unsupported file adds nothing, leaves
the keyframes untouched and says why in red under the drop zone. The rows are
:class:`~studio.app.keyframe_list.KeyframeRow`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from PySide6.QtCore import QMimeData, QSaveFile, QSignalBlocker, Qt, Signal, Slot
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication, QImage, QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from studio.engine.model import FIRST_FRAME, KEYFRAME
from studio.engine.request import ConditioningItem
from studio.paths import studio_home
from studio.service.reference import (
    IMAGE_SUFFIXES,
    REFERENCE_SUFFIXES,
    ReferenceImage,
    inspect_reference,
)

from .images import array_to_qimage
from .keyframe_list import KeyframeRow, clip_start, free_frame
from .tasks import TaskRunner
from .worker import JobFailure

DROP_TEXT = "Drop images or clips here to add keyframes\nor paste (Ctrl+V) · Add keyframe…"


def local_paths(mime: QMimeData) -> list[Path]:
    """The local files named by drag-and-drop / clipboard data."""
    if not mime.hasUrls():
        return []
    return [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]


def _load_thumbnail(path: Path) -> tuple[ReferenceImage, QImage]:
    """Background task: validate the image or clip and make its thumbnail QImage."""
    info = inspect_reference(path)
    return info, array_to_qimage(info.thumbnail)


class DropZone(QLabel):
    """The drop target: accepts dropped image files (each forwarded as ``file_dropped``)."""

    file_dropped = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(DROP_TEXT, parent)
        self.setObjectName("drop-zone")
        self.setAcceptDrops(True)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(160, 60)
        self.setWordWrap(True)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if local_paths(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = local_paths(event.mimeData())
        if paths:
            event.acceptProposedAction()
            for path in paths:
                self.file_dropped.emit(str(path))


class ReferencePanel(QWidget):
    """Edits the reference frames (keyframes): each an image at a frame with a strength.

    A model whose only conditioning mode is the first frame keeps one row, pinned to frame 0
    (adding another image replaces it); a model without conditioning disables the panel.

    Signals:
        changed(): a keyframe was added, removed, or its frame, strength or fit changed.
        load_failed(str): a file was refused; the text says why.
    """

    changed = Signal()
    load_failed = Signal(str)

    def __init__(self, tasks: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("reference-panel")
        self._tasks = tasks
        self._rows: list[KeyframeRow] = []
        self._frames = 17
        self._step = 8  # the model's frames per latent frame (set_temporal_factor)
        self._modes: tuple[str, ...] = (FIRST_FRAME, KEYFRAME)
        self._epoch = 0  # bumped by clear / set_items: loads submitted before are dropped
        self._next_order = 0
        self._reserved: dict[int, int] = {}  # order → frame of images still being checked
        self._build()
        self._connect()

    def _build(self) -> None:
        self.drop_zone = DropZone(self)
        self.add_button = QPushButton("Add keyframe…", self)
        self.paste_button = QPushButton("Paste", self)
        self.clear_button = QPushButton("Clear all", self)
        self.message = QLabel(self)
        self.message.setObjectName("reference-message")
        self.message.setWordWrap(True)
        self.message.hide()
        self.rows_box = QWidget(self)
        self.rows_layout = QVBoxLayout(self.rows_box)
        self.rows_layout.setContentsMargins(0, 0, 0, 0)
        self.rows_layout.addStretch(1)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.rows_box)
        self.fill = QRadioButton("Fill (crop)", self)
        self.fit = QRadioButton("Fit (letterbox)", self)
        self.fill.setChecked(True)
        self._fit_group = QButtonGroup(self)
        self._fit_group.addButton(self.fill)
        self._fit_group.addButton(self.fit)
        buttons = QHBoxLayout()
        for button in (self.add_button, self.paste_button, self.clear_button):
            buttons.addWidget(button)
        fit_row = QHBoxLayout()
        fit_row.addWidget(QLabel("Resize", self))
        fit_row.addWidget(self.fill)
        fit_row.addWidget(self.fit)
        layout = QVBoxLayout(self)
        layout.addWidget(self.drop_zone)
        layout.addWidget(self.message)
        layout.addLayout(buttons)
        layout.addWidget(scroll, 1)
        layout.addLayout(fit_row)

    def _connect(self) -> None:
        self.drop_zone.file_dropped.connect(self.load_path)
        self.add_button.clicked.connect(self._on_choose)
        self.paste_button.clicked.connect(self.paste)
        self.clear_button.clicked.connect(self.clear)
        self.fill.toggled.connect(self._on_fit)

    # --- public API -------------------------------------------------------------------------

    @property
    def rows(self) -> tuple[KeyframeRow, ...]:
        """The keyframe rows, top to bottom."""
        return tuple(self._rows)

    @property
    def image(self) -> ReferenceImage | None:
        """The first keyframe's image (None without keyframes)."""
        return self._rows[0].image if self._rows else None

    @property
    def first_only(self) -> bool:
        """Whether the model takes only a first frame (one row, at frame 0)."""
        return KEYFRAME not in self._modes

    def items(self) -> tuple[ConditioningItem, ...]:
        """The conditioning items for a request, one per row (empty when disabled)."""
        if not self.isEnabled():
            return ()
        return tuple(row.item() for row in self._rows)

    def set_items(self, items: tuple[ConditioningItem, ...]) -> None:
        """Show a recipe's items, in order (each row appears once its image is checked)."""
        self._drop_rows()
        if not items:
            self.changed.emit()
            return
        self._set_fit(items[0].fit)
        for item in items[:1] if self.first_only else items:
            self._submit(item.image, item)

    def set_temporal_factor(self, factor: int) -> None:
        """The loaded model's frames per latent frame: where a later clip may start."""
        self._step = max(1, factor)

    def set_frame_count(self, frames: int) -> None:
        """Bound the rows' frame numbers by the job's frame count."""
        self._frames = max(1, frames)
        for row in self._rows:
            row.set_frame_count(self._frames)

    def set_supported(self, supported: bool, model_name: str = "",
                      modes: tuple[str, ...] | None = None) -> None:
        """Follow the model's conditioning modes (:data:`~studio.engine.model.FIRST_FRAME`,
        :data:`~studio.engine.model.KEYFRAME`; None: both when ``supported``)."""
        self._modes = (FIRST_FRAME, KEYFRAME) if modes is None else tuple(modes)
        supported = supported and bool(self._modes)
        self.setEnabled(supported)
        self.setToolTip("" if supported else f"{model_name} does not take reference frames")
        if self.first_only:
            for row in self._rows[1:]:
                self._remove(row)
        for row in self._rows:
            row.set_first_only(self.first_only)

    @Slot(str)
    def load_path(self, path: str) -> None:
        """Check an image file (in the background) and add it as a keyframe at the next free
        frame (a first-frame-only model: replace the one row); refusals appear inline."""
        self._submit(path, None)

    def add_keyframe(self, path: str, frame_index: int) -> None:
        """Check an image file and add it as a keyframe pinning ``frame_index``."""
        self._submit(path, ConditioningItem(path, frame_index, 1.0, self._fit_mode()))

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
        """Remove every keyframe (and forget images still being checked)."""
        self._drop_rows()
        self.changed.emit()

    def remove_row(self, row: KeyframeRow) -> None:
        self._remove(row)
        self.changed.emit()

    # --- rows -------------------------------------------------------------------------------

    def _submit(self, path: str, item: ConditioningItem | None) -> None:
        """Check ``path`` in the background; without ``item``, at full strength with the
        global fit at the next free frame, chosen now so keyframes added together take frames
        in the order they were given, whichever is checked first."""
        epoch, order = self._epoch, self._next_order
        self._next_order += 1
        placed = item is None  # the frame is ours to choose (a clip's once its length is known)
        if item is None:
            used = [r.frame() for r in self._rows] + list(self._reserved.values())
            frame = 0 if self.first_only else free_frame(used, self._frames)
            item = ConditioningItem(path, frame, 1.0, self._fit_mode())
        self._reserved[order] = item.frame_index
        self._tasks.submit(lambda p=Path(path): _load_thumbnail(p),
                           lambda result: self._on_loaded(result, item, epoch, order, placed),
                           lambda failure: self._on_refused(failure, epoch, order))

    def _on_loaded(self, result: tuple[ReferenceImage, QImage], item: ConditioningItem,
                   epoch: int, order: int, placed: bool = False) -> None:
        if epoch != self._epoch:
            return  # cleared or replaced by a recipe while the image was being checked
        self._reserved.pop(order, None)
        info, thumbnail = result
        if placed and info.frames > 1:  # a clip must fit after the frame it starts at
            start = clip_start(item.frame_index, info.frames, self._frames, self._step)
            item = ConditioningItem(item.image, start, item.strength, item.fit)
        if self.first_only:
            for old in list(self._rows):
                self._remove(old)
        row = self._new_row(info, QPixmap.fromImage(thumbnail), item, order)
        position = sum(1 for r in self._rows if r.order < order)
        self._rows.insert(position, row)
        self.rows_layout.insertWidget(position, row)
        self.message.hide()
        self.changed.emit()

    def _new_row(self, info: ReferenceImage, thumbnail: QPixmap, item: ConditioningItem,
                 order: int) -> KeyframeRow:
        """A row for a checked image, with ``item``'s frame, strength and fit."""
        row = KeyframeRow(info, thumbnail, order, self.rows_box)
        row.set_frame_count(self._frames)
        row.set_frame(item.frame_index)
        row.strength.setValue(item.strength)
        row.fit = item.fit
        row.set_first_only(self.first_only)
        row.changed.connect(self.changed)
        row.remove_requested.connect(self.remove_row)
        return row

    def _remove(self, row: KeyframeRow) -> None:
        self._rows.remove(row)
        self.rows_layout.removeWidget(row)
        row.deleteLater()

    def _drop_rows(self) -> None:
        self._epoch += 1
        self._reserved.clear()
        for row in list(self._rows):
            self._remove(row)
        self.message.hide()

    def _fit_mode(self) -> str:
        return "fit" if self.fit.isChecked() else "fill"

    def _set_fit(self, mode: str) -> None:
        """Show ``mode`` on the radio buttons without re-fitting the rows (a recipe's own)."""
        with QSignalBlocker(self.fill):
            (self.fit if mode == "fit" else self.fill).setChecked(True)

    # --- reactions --------------------------------------------------------------------------

    def _on_refused(self, failure: JobFailure, epoch: int, order: int) -> None:
        if epoch != self._epoch:
            return
        self._reserved.pop(order, None)
        self._show_message(f"{failure.message} {failure.hint}".strip())
        self.load_failed.emit(self.message.text())

    def _show_message(self, text: str) -> None:
        self.message.setText(text)
        self.message.show()

    @Slot()
    def _on_choose(self) -> None:
        pattern = " ".join(f"*{s}" for s in REFERENCE_SUFFIXES)
        images = " ".join(f"*{s}" for s in IMAGE_SUFFIXES)
        paths, _ = QFileDialog.getOpenFileNames(self, "Add keyframes", "",
                                                f"Images and clips ({pattern});;Images ({images})")
        for path in paths:
            self.load_path(path)

    @Slot(bool)
    def _on_fit(self, _fill: bool) -> None:
        """The global resize choice applies to every row."""
        for row in self._rows:
            row.fit = self._fit_mode()
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
