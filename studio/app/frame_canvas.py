"""A widget that paints one image scaled to fit (aspect kept), or a message when empty."""

from __future__ import annotations

from PySide6.QtCore import QRect, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPaintEvent, QPixmap
from PySide6.QtWidgets import QSizePolicy, QWidget

BACKGROUND = QColor("#111214")
TEXT = QColor("#8d939c")


def fit_rect(bounds: QRect, width: int, height: int) -> QRectF:
    """The largest rectangle of aspect ``width:height`` centred in ``bounds``."""
    scale = min(bounds.width() / max(1, width), bounds.height() / max(1, height))
    w, h = width * scale, height * scale
    return QRectF(bounds.x() + (bounds.width() - w) / 2, bounds.y() + (bounds.height() - h) / 2,
                  w, h)


class FrameCanvas(QWidget):
    """Paints the current frame; QPixmaps are made here, on the GUI thread, from QImages."""

    def __init__(self, parent: QWidget | None = None, message: str = "") -> None:
        super().__init__(parent)
        self.setMinimumSize(160, 120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._pixmap: QPixmap | None = None
        self._message = message
        self.smooth = True

    @property
    def has_image(self) -> bool:
        return self._pixmap is not None

    def set_image(self, image: QImage | None) -> None:
        self._pixmap = QPixmap.fromImage(image) if image is not None else None
        self.update()

    def set_message(self, message: str) -> None:
        self._message = message
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), BACKGROUND)
        if self._pixmap is not None:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.smooth)
            target = fit_rect(self.rect(), self._pixmap.width(), self._pixmap.height())
            painter.drawPixmap(target, self._pixmap, QRectF(self._pixmap.rect()))
        elif self._message:
            painter.setPen(TEXT)
            painter.drawText(self.rect().adjusted(12, 12, -12, -12),
                             Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                             self._message)
        painter.end()
