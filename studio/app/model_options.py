"""The prompt panel's fields for a model's own options: image guidance, guidance oscillation and
the prompt suffix (Open-Sora 2.0).

Each field shows only for a model whose defaults have that option, set to the default; for other
models (Wan, the demo) it is hidden and the request leaves the field None — the model's default —
so their requests are unchanged. Like the low-noise guidance field, the rows live in the prompt
panel's form.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, QSignalBlocker, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QWidget,
)

from studio.engine.request import OSCILLATION, GenerationRequest
from studio.service.model_info import ModelInfo


class ModelOptions(QObject):
    """The image-guidance, oscillation and prompt-suffix rows of the prompt panel.

    Signals:
        changed(): the image guidance or the oscillation changed.
    """

    changed = Signal()

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self._info: ModelInfo | None = None
        self.guidance_image = QDoubleSpinBox(parent)
        self.guidance_image.setObjectName("guidance-image")
        self.guidance_image.setRange(0.0, 50.0)
        self.guidance_image.setSingleStep(0.5)
        self.guidance_image.setToolTip("How strongly the video follows the reference image; "
                                       "used only when a reference image is set (image-to-video)")
        self.guidance_image_label = QLabel("Image guidance", parent)
        self.oscillate = {name: QCheckBox(name, parent) for name in OSCILLATION}
        self.oscillate_row = QWidget(parent)
        row = QHBoxLayout(self.oscillate_row)
        row.setContentsMargins(0, 0, 0, 0)
        for name, box in self.oscillate.items():
            box.setObjectName(f"oscillate-{name}")
            row.addWidget(box)
        row.addStretch(1)
        self.oscillate_row.setToolTip("Guidance oscillation the model was tuned with: text and "
                                      "image guidance drop to 1 on odd steps after the first ten; "
                                      "temporal ramps the image guidance over the frames")
        self.oscillate_label = QLabel("Oscillate", parent)
        self.prompt_suffix = QLineEdit(parent)
        self.prompt_suffix.setObjectName("prompt-suffix")
        self.prompt_suffix.setPlaceholderText("(none)")
        self.prompt_suffix.setToolTip("Text the model's training appended to every prompt; it "
                                      "is appended to yours. Empty = none.")
        self.prompt_suffix_label = QLabel("Prompt suffix", parent)
        self.guidance_image.valueChanged.connect(self.changed)
        for box in self.oscillate.values():
            box.toggled.connect(self.changed)
        self._show(None)

    def add_rows(self, form: QFormLayout) -> None:
        form.addRow(self.guidance_image_label, self.guidance_image)
        form.addRow(self.oscillate_label, self.oscillate_row)
        form.addRow(self.prompt_suffix_label, self.prompt_suffix)

    def set_model(self, info: ModelInfo) -> None:
        """Show the rows the model has, set to its defaults; hide the others."""
        self._show(info)
        self._set(info.guidance_image, info.oscillation, info.prompt_suffix)

    def set_request(self, request: GenerationRequest) -> None:
        """Restore a recipe's options (its None fields: the model's defaults)."""
        info = self._info
        if info is None:
            return
        self._set(info.guidance_image if request.guidance_image is None
                  else request.guidance_image,
                  info.oscillation if request.oscillation is None else request.oscillation,
                  info.prompt_suffix if request.prompt_suffix is None else request.prompt_suffix)

    def request_fields(self) -> dict[str, Any]:
        """The request's guidance_image / oscillation / prompt_suffix: None where the model has
        no such option."""
        info = self._info
        has = self._has(info)
        return {
            "guidance_image": round(self.guidance_image.value(), 4) if has[0] else None,
            "oscillation": tuple(n for n, box in self.oscillate.items() if box.isChecked())
            if has[1] else None,
            "prompt_suffix": self.prompt_suffix.text() if has[2] else None,
        }

    @staticmethod
    def _has(info: ModelInfo | None) -> tuple[bool, bool, bool]:
        """Whether the model has image guidance, oscillation, a prompt suffix."""
        if info is None:
            return False, False, False
        return info.guidance_image is not None, bool(info.oscillation), bool(info.prompt_suffix)

    def _show(self, info: ModelInfo | None) -> None:
        self._info = info
        rows = ((self.guidance_image_label, self.guidance_image),
                (self.oscillate_label, self.oscillate_row),
                (self.prompt_suffix_label, self.prompt_suffix))
        for shown, widgets in zip(self._has(info), rows, strict=True):
            for widget in widgets:
                widget.setVisible(shown)

    def _set(self, guidance_image: float | None, oscillation: tuple[str, ...],
             prompt_suffix: str) -> None:
        with QSignalBlocker(self.guidance_image):
            self.guidance_image.setValue(guidance_image or 0.0)
        for name, box in self.oscillate.items():
            with QSignalBlocker(box):
                box.setChecked(name in oscillation)
        self.prompt_suffix.setText(prompt_suffix)
        self.changed.emit()
