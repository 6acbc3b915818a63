"""uint8 RGB arrays → QImage, safe to call on any thread (QPixmaps are made on the GUI thread)."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage


def array_to_qimage(frame: np.ndarray) -> QImage:
    """One uint8 RGB image ``[H, W, 3]`` → a QImage that owns its pixels (``.copy()``)."""
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3, frame.shape
    frame = np.ascontiguousarray(frame)
    height, width, _ = frame.shape
    image = QImage(frame.data, width, height, 3 * width, QImage.Format.Format_RGB888)
    return image.copy()


def frames_to_qimages(frames: np.ndarray) -> list[QImage]:
    """uint8 frames ``[T, H, W, 3]`` → one owning QImage per frame."""
    assert frames.ndim == 4, frames.shape
    return [array_to_qimage(frame) for frame in frames]


def qimage_to_array(image: QImage) -> np.ndarray:
    """A QImage → uint8 RGB ``[H, W, 3]`` (a copy); used by tests and paste handling."""
    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    width, height, stride = rgb.width(), rgb.height(), rgb.bytesPerLine()
    data = np.frombuffer(rgb.constBits(), np.uint8, count=stride * height).reshape(height, stride)
    return data[:, : 3 * width].reshape(height, width, 3).copy()
