"""Width × height presets, custom sizes and frame count, validated as you type."""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Signal, Slot
from PySide6.QtWidgets import QComboBox, QGridLayout, QLabel, QSpinBox, QWidget

from studio.engine.shapes import LatentGeometry
from studio.service.model_info import ModelInfo, SizeProblem, size_problems

from .error_banner import ErrorBanner, Fix, Problem

CUSTOM = "Custom"


def _spin(maximum: int, suffix: str, name: str, parent: QWidget) -> QSpinBox:
    spin = QSpinBox(parent)
    spin.setObjectName(name)
    spin.setRange(1, maximum)
    spin.setSuffix(suffix)
    spin.setAccelerated(True)
    return spin


class SizeEditor(QWidget):
    """Edits (width, height, frames) for the current model.

    Invalid values are kept as typed (never rounded silently); an inline banner names the rule
    and offers the nearest valid values as buttons.

    Signals:
        changed(): width, height or frames changed.
        validity_changed(bool): the values became valid / invalid.
    """

    changed = Signal()
    validity_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._geometry: LatentGeometry | None = None
        self._fps = 16.0
        self._valid = True
        self.preset = QComboBox(self)
        self.preset.setObjectName("size-preset")
        self.width_spin = _spin(8192, " px", "width", self)
        self.height_spin = _spin(8192, " px", "height", self)
        self.frames_spin = _spin(4097, "", "frames", self)
        self.duration = QLabel(self)
        self.duration.setObjectName("duration")
        self.forecast = QLabel(self)
        self.forecast.setObjectName("memory-forecast")
        self.forecast.setToolTip("forecast peak memory of a run with these settings")
        self.forecast.hide()
        self.banner = ErrorBanner(self)
        self._layout_widgets()
        self.preset.activated.connect(self._on_preset)
        for spin in (self.width_spin, self.height_spin, self.frames_spin):
            spin.valueChanged.connect(self._on_value)

    def _layout_widgets(self) -> None:
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(QLabel("Size", self), 0, 0)
        grid.addWidget(self.preset, 0, 1, 1, 3)
        grid.addWidget(QLabel("W × H", self), 1, 0)
        grid.addWidget(self.width_spin, 1, 1)
        grid.addWidget(QLabel("×", self), 1, 2)
        grid.addWidget(self.height_spin, 1, 3)
        grid.addWidget(QLabel("Frames", self), 2, 0)
        grid.addWidget(self.frames_spin, 2, 1)
        grid.addWidget(self.duration, 2, 2, 1, 2)
        grid.addWidget(self.forecast, 3, 0, 1, 4)
        grid.addWidget(self.banner, 4, 0, 1, 4)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)

    # --- public API -------------------------------------------------------------------------

    def set_model(self, info: ModelInfo) -> None:
        """Presets, steps and fps of a newly loaded model; values go to its defaults."""
        self._geometry = info.geometry
        self._fps = info.fps
        with QSignalBlocker(self.preset):
            self.preset.clear()
            for width, height in info.sizes:
                self.preset.addItem(f"{width} × {height}", f"{width}x{height}")
            self.preset.addItem(CUSTOM, "")
        self.width_spin.setSingleStep(info.geometry.size_multiple)
        self.height_spin.setSingleStep(info.geometry.size_multiple)
        self.frames_spin.setSingleStep(info.geometry.temporal_factor)
        width, height = info.sizes[0]
        self.set_values(width, height, info.frames)

    def set_values(self, width: int, height: int, frames: int) -> None:
        for spin, value in ((self.width_spin, width), (self.height_spin, height),
                            (self.frames_spin, frames)):
            with QSignalBlocker(spin):
                spin.setValue(value)
        self._on_value()

    def set_forecast(self, text: str) -> None:
        """Show the memory forecast for the values on screen ("" hides it)."""
        self.forecast.setText(f"Estimated peak: {text}" if text else "")
        self.forecast.setVisible(bool(text))

    def set_fps(self, fps: float) -> None:
        self._fps = fps
        self._update_duration()

    def values(self) -> tuple[int, int, int]:
        """(width, height, frames) as shown."""
        return self.width_spin.value(), self.height_spin.value(), self.frames_spin.value()

    def problems(self) -> list[SizeProblem]:
        if self._geometry is None:
            return []
        return size_problems(self._geometry, *self.values())

    def is_valid(self) -> bool:
        return self._geometry is not None and not self.problems()

    # --- reactions --------------------------------------------------------------------------

    @Slot(int)
    def _on_preset(self, index: int) -> None:
        size = self.preset.itemData(index)
        if not size:
            return
        width, height = (int(v) for v in str(size).split("x"))
        self.set_values(width, height, self.frames_spin.value())

    @Slot()
    def _on_value(self) -> None:
        self._sync_preset()
        self._update_duration()
        problems = self.problems()
        self.banner.show_problems([self._banner_line(p) for p in problems])
        valid = self._geometry is not None and not problems
        if valid != self._valid:
            self._valid = valid
            self.validity_changed.emit(valid)
        self.changed.emit()

    def _banner_line(self, problem: SizeProblem) -> Problem:
        spin = {"width": self.width_spin, "height": self.height_spin,
                "frames": self.frames_spin}[problem.field]
        fixes = tuple(Fix(f"Use {value}", lambda v=value, s=spin: s.setValue(v))
                      for value in problem.choices)
        return Problem(problem.message, fixes)

    def _sync_preset(self) -> None:
        index = self.preset.findData(f"{self.width_spin.value()}x{self.height_spin.value()}")
        with QSignalBlocker(self.preset):
            self.preset.setCurrentIndex(index if index >= 0 else self.preset.count() - 1)

    def _update_duration(self) -> None:
        seconds = self.frames_spin.value() / self._fps if self._fps > 0 else 0.0
        self.duration.setText(f"= {seconds:.2f} s at {self._fps:g} fps")
