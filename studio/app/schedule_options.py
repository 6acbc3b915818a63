"""The prompt panel's fields for sampling options only some models have: spatio-temporal guidance
(STG) and its rescale, noise on pinned reference frames, and an explicit list of timesteps
(LTX-Video; a distilled checkpoint's list).

Like :mod:`studio.app.model_options`, each row shows only for a model whose defaults have that
option, set to the default; other models' requests leave the fields None.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, QSignalBlocker, Signal
from PySide6.QtWidgets import QDoubleSpinBox, QFormLayout, QLabel, QLineEdit, QWidget

from studio.engine.request import GenerationRequest
from studio.service.model_info import ModelInfo


def parse_timesteps(text: str) -> tuple[float, ...] | None:
    """``"1, 0.99, 0.9"`` → the times (None for empty or unreadable text; the request's own
    check explains what is wrong with a readable list)."""
    parts = [p for p in text.replace(";", ",").replace(" ", ",").split(",") if p]
    try:
        return tuple(float(p) for p in parts) or None
    except ValueError:
        return None


_TIMESTEPS_TIP = ("An explicit schedule, from 1 (noise) down, without the final 0; the number of "
                  "steps follows it. Empty = from steps.")


def format_timesteps(times: tuple[float, ...] | None) -> str:
    return ", ".join(f"{t:g}" for t in times) if times else ""


class ScheduleOptions(QObject):
    """The STG, STG-rescale, reference-noise and timesteps rows of the prompt panel.

    Signals:
        changed(): a field changed.
    """

    changed = Signal()

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self._info: ModelInfo | None = None
        self._explicit = False  # a restored request brought timesteps the model has no list of
        self.stg = self._spin(parent, "stg", 50.0, 0.5, "Spatio-temporal guidance: steers away "
                              "from a pass with some blocks' self-attention skipped (0 = off)")
        self.stg_rescale = self._spin(parent, "stg-rescale", 1.0, 0.05, "Pulls the guided "
                                      "velocity's spread towards the prompt pass's: r in "
                                      "v·(r·σ(v_c)/σ(v) + 1 − r); 0 and 1 leave it as it is, "
                                      "as in LTX-Video")
        self.reference_noise = self._spin(parent, "reference-noise", 1.0, 0.05, "Noise put on "
                                          "fully pinned reference frames before each step, "
                                          "times t²: keeps motion going around them (0 = none)")
        self.timesteps = QLineEdit(parent)
        self.timesteps.setObjectName("timesteps")
        self.timesteps.setPlaceholderText("(from steps)")
        self.timesteps.setToolTip(_TIMESTEPS_TIP)
        self.timesteps.textChanged.connect(self._on_timesteps_text)
        self._labels = [QLabel(text, parent) for text in
                        ("STG", "STG rescale", "Reference noise", "Timesteps")]
        self._show(None)

    def _spin(self, parent: QWidget, name: str, high: float, step: float,
              tip: str) -> QDoubleSpinBox:
        spin = QDoubleSpinBox(parent)
        spin.setObjectName(name)
        spin.setRange(0.0, high)
        spin.setSingleStep(step)
        spin.setDecimals(3)
        spin.setToolTip(tip)
        spin.valueChanged.connect(self.changed)
        return spin

    def _fields(self) -> tuple[QWidget, ...]:
        return self.stg, self.stg_rescale, self.reference_noise, self.timesteps

    def add_rows(self, form: QFormLayout) -> None:
        for label, field in zip(self._labels, self._fields(), strict=True):
            form.addRow(label, field)

    def set_model(self, info: ModelInfo) -> None:
        """Show the rows the model has, set to its defaults; hide the others."""
        self._explicit = False
        self._show(info)
        self._set(info.stg, info.stg_rescale, info.reference_noise, info.timesteps)

    def set_request(self, request: GenerationRequest) -> None:
        """Restore a recipe's options (its None fields: the model's defaults)."""
        info = self._info
        if info is None:
            return
        if request.timesteps is not None and info.timesteps is None:
            self._explicit = True  # keep the recipe's schedule: show the row that holds it
            self._show(info)
        self._set(info.stg if request.stg is None else request.stg,
                  info.stg_rescale if request.stg_rescale is None else request.stg_rescale,
                  info.reference_noise if request.reference_noise is None
                  else request.reference_noise, request.timesteps)

    def request_fields(self) -> dict[str, Any]:
        """The request's stg / stg_rescale / reference_noise / timesteps: None where the model
        has no such option (or the timesteps field is empty)."""
        has = self._has(self._info)
        return {
            "stg": round(self.stg.value(), 4) if has[0] else None,
            "stg_rescale": round(self.stg_rescale.value(), 4) if has[1] else None,
            "reference_noise": round(self.reference_noise.value(), 4) if has[2] else None,
            "timesteps": parse_timesteps(self.timesteps.text()) if has[3] else None,
        }

    def is_valid(self) -> bool:
        """False while the timesteps field holds text that is not a list of numbers."""
        text = self.timesteps.text().strip()
        return not (not self.timesteps.isHidden() and text
                    and parse_timesteps(text) is None)

    def _on_timesteps_text(self) -> None:
        self.timesteps.setStyleSheet("" if self.is_valid() else "border: 1px solid #d9534f;")
        self.timesteps.setToolTip(_TIMESTEPS_TIP if self.is_valid() else
                                  "Not a list of numbers: write times like 1, 0.9, 0.7, 0.4")
        self.changed.emit()

    def _has(self, info: ModelInfo | None) -> tuple[bool, bool, bool, bool]:
        if info is None:
            return False, False, False, False
        return (info.stg is not None, info.stg_rescale is not None, info.reference_noise > 0,
                info.timesteps is not None or self._explicit)

    def _show(self, info: ModelInfo | None) -> None:
        self._info = info
        for shown, label, field in zip(self._has(info), self._labels, self._fields(),
                                       strict=True):
            label.setVisible(shown)
            field.setVisible(shown)

    def _set(self, stg: float | None, rescale: float | None, noise: float,
             timesteps: tuple[float, ...] | None) -> None:
        for spin, value in ((self.stg, stg), (self.stg_rescale, rescale),
                            (self.reference_noise, noise)):
            with QSignalBlocker(spin):
                spin.setValue(value or 0.0)
        with QSignalBlocker(self.timesteps):
            self.timesteps.setText(format_timesteps(timesteps))
        self.changed.emit()
