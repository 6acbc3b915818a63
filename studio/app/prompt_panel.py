"""The request editor: prompt, negative prompt, seed, steps, guidance, shift, sampler, size, and
a model's own options (:mod:`studio.app.model_options`).

It turns what is on screen into a :class:`~studio.engine.request.GenerationRequest` and back
(recipes dropped onto the window restore it). It does no maths: the schedule plot and the
computed auto shift are fed back by the window.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from PySide6.QtCore import QRegularExpression, QSignalBlocker, Signal, Slot
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from studio.engine.request import MAX_STEPS, SAMPLERS, ConditioningItem, GenerationRequest
from studio.service.model_info import ModelInfo

from .model_options import ModelOptions
from .prompt_words import PromptExamples, PromptWords
from .schedule_options import ScheduleOptions
from .size_editor import SizeEditor

if TYPE_CHECKING:
    from studio.engine.model import FewStepPreset

SEED_DIGITS = 18  # any 18-digit number is below 2**63


def new_seed() -> int:
    """A fresh random seed (32 bits keeps it short enough to read and type)."""
    return secrets.randbelow(2**32)


class PromptPanel(QWidget):
    """Edits one request for the current model.

    Signals:
        changed(): a field that affects the schedule or the request changed.
        validity_changed(bool): the size fields or the timesteps became valid / invalid.
    """

    changed = Signal()
    validity_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._info: ModelInfo | None = None
        self._fps = 16.0
        self._build()
        self._connect()

    def _build(self) -> None:
        self.prompt = QPlainTextEdit(self)
        self.prompt.setObjectName("prompt")
        self.examples = PromptExamples(self.prompt, self)  # also the empty field's hint
        self.words = PromptWords(self.prompt)  # marks words a closed vocabulary lacks
        self.guide = QLabel(self)  # a closed-vocabulary model's words; hidden for others
        self.guide.setObjectName("prompt-guide")
        self.guide.setWordWrap(True)
        self.guide.hide()
        self.negative = QPlainTextEdit(self)
        self.negative.setObjectName("negative-prompt")
        self.negative.setMaximumHeight(64)
        self.seed = QLineEdit(str(new_seed()), self)
        self.seed.setObjectName("seed")
        self.seed.setValidator(QRegularExpressionValidator(
            QRegularExpression(rf"\d{{1,{SEED_DIGITS}}}"), self.seed))
        self.seed_lock = QCheckBox("Lock", self)
        self.seed_lock.setObjectName("seed-lock")
        self.seed_lock.setToolTip("Keep this seed; unlocked, every Generate draws a new one")
        self.new_seed_button = QPushButton("New", self)
        self.new_seed_button.setObjectName("new-seed")
        self.steps = QSpinBox(self)
        self.steps.setObjectName("steps")
        self.steps.setRange(1, MAX_STEPS)
        self.guidance = QDoubleSpinBox(self)
        self.guidance.setObjectName("guidance")
        self.guidance.setRange(0.0, 50.0)
        self.guidance.setSingleStep(0.5)
        self.guidance_low = QDoubleSpinBox(self)  # a two-expert model's low-noise expert
        self.guidance_low.setObjectName("guidance-low")
        self.guidance_low.setRange(0.0, 50.0)
        self.guidance_low.setSingleStep(0.5)
        self.guidance_low.setToolTip("Guidance of the low-noise expert (the steps below the "
                                     "purple line in the schedule); Guidance is the "
                                     "high-noise expert's")
        self.guidance_low_label = QLabel("Guidance, low noise", self)
        self.guidance_low.hide()
        self.guidance_low_label.hide()
        self.shift_auto = QCheckBox("Auto", self)
        self.shift_auto.setObjectName("shift-auto")
        self.shift = QDoubleSpinBox(self)
        self.shift.setObjectName("shift")
        self.shift.setRange(0.01, 100.0)
        self.shift.setDecimals(3)
        self.shift.setSingleStep(0.5)
        self.shift_label = QLabel(self)
        self.shift_label.setObjectName("shift-value")
        self.sampler = QComboBox(self)
        self.sampler.setObjectName("sampler")
        self.sampler.addItems(list(SAMPLERS))
        self.step_cache = QDoubleSpinBox(self)
        self.step_cache.setObjectName("step-cache")
        self.step_cache.setRange(0.0, 0.5)
        self.step_cache.setDecimals(2)
        self.step_cache.setSingleStep(0.01)
        self.step_cache.setSpecialValueText("off")
        self.step_cache.setToolTip("Skip denoiser forwards the last one predicts: the error the "
                                   "skips may add up to (0.01 skips about 2 steps in 5; off "
                                   "runs every step). Needs a calibrated model.")
        self.few_step = QPushButton(self)  # shown while a distillation LoRA is listed
        self.few_step.setObjectName("few-step")
        self.few_step.hide()
        self._preset: FewStepPreset | None = None
        self.options = ModelOptions(self)  # image guidance, oscillation, prompt suffix
        self.schedule_options = ScheduleOptions(self)  # STG, reference noise, timesteps
        self.size = SizeEditor(self)
        self._lay_out()

    def _lay_out(self) -> None:
        seed_row = QHBoxLayout()
        for widget in (self.seed, self.seed_lock, self.new_seed_button):
            seed_row.addWidget(widget)
        shift_row = QHBoxLayout()
        for widget in (self.shift_auto, self.shift, self.shift_label):
            shift_row.addWidget(widget)
        form = QFormLayout()
        form.addRow("Seed", seed_row)
        form.addRow("Steps", self.steps)
        form.addRow("Guidance", self.guidance)
        form.addRow(self.guidance_low_label, self.guidance_low)
        self.options.add_rows(form)
        form.addRow("Shift α", shift_row)
        self.schedule_options.add_rows(form)
        form.addRow("Sampler", self.sampler)
        form.addRow("Step cache", self.step_cache)
        form.addRow("", self.few_step)
        prompt_row = QHBoxLayout()
        prompt_row.addWidget(QLabel("Prompt", self))
        prompt_row.addStretch(1)
        prompt_row.addWidget(self.examples)
        layout = QVBoxLayout(self)
        layout.addLayout(prompt_row)
        layout.addWidget(self.prompt, 3)
        layout.addWidget(self.guide)
        layout.addWidget(QLabel("Negative prompt", self))
        layout.addWidget(self.negative, 1)
        layout.addLayout(form)
        layout.addWidget(self.size)
        self.button_row = QHBoxLayout()
        layout.addLayout(self.button_row)

    def _connect(self) -> None:
        self.new_seed_button.clicked.connect(self._on_new_seed)
        self.few_step.clicked.connect(self.apply_preset)
        self.shift_auto.toggled.connect(self._on_shift_mode)
        for spin in (self.steps, self.guidance, self.guidance_low, self.shift, self.step_cache):
            spin.valueChanged.connect(self._emit_changed)
        self.sampler.currentIndexChanged.connect(self._emit_changed)
        self.options.changed.connect(self._emit_changed)
        self.schedule_options.changed.connect(self._on_schedule_options)
        self.size.changed.connect(self._emit_changed)
        self.size.validity_changed.connect(self.validity_changed)

    # --- public API -------------------------------------------------------------------------

    @property
    def model_info(self) -> ModelInfo | None:
        return self._info

    def set_model(self, info: ModelInfo) -> None:
        """Adopt a newly loaded model's defaults (the prompt text is kept)."""
        self.words.set_model(info)
        if self._info is not None and self._info.id == info.id:
            self._info = info
            return  # the same model again: the options on screen are kept
        self._info = info
        self.examples.set_model(info)
        self.guide.setText(info.prompt_guide)
        self.guide.setVisible(bool(info.prompt_guide))
        self.negative.setPlaceholderText(info.negative_prompt or "(none)")
        self._fps = info.fps
        self.size.set_model(info)
        self.set_fields(steps=info.steps, guidance=info.guidance, shift=info.shift)
        with QSignalBlocker(self.sampler):
            self.sampler.setCurrentText(info.sampler)
        self._show_guidance_low(info.guidance_low)
        self.options.set_model(info)
        self.schedule_options.set_model(info)

    def _show_guidance_low(self, value: float | None) -> None:
        """The low-noise guidance field, for two-expert models only."""
        for widget in (self.guidance_low, self.guidance_low_label):
            widget.setVisible(value is not None)
        if value is not None:
            with QSignalBlocker(self.guidance_low):
                self.guidance_low.setValue(value)

    def set_fields(self, *, steps: int, guidance: float, shift: float | str) -> None:
        with QSignalBlocker(self.steps), QSignalBlocker(self.guidance), \
                QSignalBlocker(self.shift), QSignalBlocker(self.shift_auto):
            self.steps.setValue(steps)
            self.guidance.setValue(guidance)
            self.shift_auto.setChecked(shift == "auto")
            if shift != "auto":
                self.shift.setValue(float(shift))
            self.shift.setEnabled(shift != "auto")
        self._emit_changed()

    def offer_preset(self, preset: FewStepPreset | None) -> None:
        """Offer a step-distillation LoRA's settings as one button (hidden for None)."""
        self._preset = preset
        if preset is not None:
            self.few_step.setText(f"Use few-step settings: {preset.label}")
            self.few_step.setToolTip("A listed LoRA is a step-distillation LoRA made for "
                                     "these settings")
        self.few_step.setVisible(preset is not None)

    @Slot()
    def apply_preset(self) -> None:
        """Set steps, guidance, shift and sampler to the offered few-step settings."""
        if self._preset is None:
            return
        self.sampler.setCurrentText(self._preset.sampler)
        self.set_fields(steps=self._preset.steps, guidance=self._preset.guidance,
                        shift=self._preset.shift)

    def set_request(self, request: GenerationRequest) -> None:
        """Show a request (from a recipe): every field, the seed locked."""
        self.prompt.setPlainText(request.prompt)
        self.negative.setPlainText(request.negative_prompt)
        self.seed.setText(str(request.seed))
        self.seed_lock.setChecked(True)
        with QSignalBlocker(self.sampler), QSignalBlocker(self.step_cache):
            self.sampler.setCurrentText(request.sampler)
            self.step_cache.setValue(request.step_cache)
        self._fps = request.fps
        self.size.set_fps(request.fps)
        self.size.set_values(request.width, request.height, request.frames)
        self.set_fields(steps=request.steps, guidance=request.guidance, shift=request.shift)
        if request.guidance_low is not None and self._info is not None \
                and self._info.guidance_low is not None:
            self._show_guidance_low(request.guidance_low)
        self.options.set_request(request)
        self.schedule_options.set_request(request)

    def prepare_seed(self) -> None:
        """Before a run: draw a new seed unless the seed is locked."""
        if not self.seed_lock.isChecked():
            self.seed.setText(str(new_seed()))

    def seed_value(self) -> int:
        return int(self.seed.text() or 0)

    def show_shift(self, alpha: float | None) -> None:
        """Show the α the schedule uses (the computed one in auto mode)."""
        if alpha is None:
            self.shift_label.setText("")
        elif self.shift_auto.isChecked():
            self.shift_label.setText(f"= {alpha:.3f}")
            with QSignalBlocker(self.shift):
                self.shift.setValue(alpha)
        else:
            self.shift_label.setText("fixed")

    def is_valid(self) -> bool:
        return self._info is not None and self.size.is_valid() and \
            self.schedule_options.is_valid()

    def request(self, conditioning: tuple[ConditioningItem, ...] = ()) -> GenerationRequest:
        """The request on screen (not validated; see :meth:`is_valid`)."""
        assert self._info is not None, "no model loaded"
        width, height, frames = self.size.values()
        return GenerationRequest(
            prompt=self.prompt.toPlainText().strip(),
            negative_prompt=self.negative.toPlainText().strip(),
            seed=self.seed_value(),
            steps=self.steps.value(),
            guidance=round(self.guidance.value(), 4),
            guidance_low=round(self.guidance_low.value(), 4)
            if self._info.guidance_low is not None else None,
            shift="auto" if self.shift_auto.isChecked() else round(self.shift.value(), 4),
            width=width, height=height, frames=frames, fps=self._fps,
            sampler=self.sampler.currentText(),
            conditioning=tuple(conditioning),
            model=self._info.id,
            step_cache=round(self.step_cache.value(), 4),
            **self.options.request_fields(),
            **self.schedule_options.request_fields(),
        )

    # --- reactions --------------------------------------------------------------------------

    @Slot()
    def _on_new_seed(self) -> None:
        self.seed.setText(str(new_seed()))

    @Slot()
    def _on_schedule_options(self) -> None:
        """Explicit timesteps set the number of steps (and the steps field waits for them)."""
        times = self.schedule_options.request_fields()["timesteps"]
        self.steps.setEnabled(times is None)
        if times is not None:
            with QSignalBlocker(self.steps):
                self.steps.setValue(len(times))
        self.validity_changed.emit(self.size.is_valid() and self.schedule_options.is_valid())
        self._emit_changed()

    @Slot(bool)
    def _on_shift_mode(self, auto: bool) -> None:
        self.shift.setEnabled(not auto)
        self._emit_changed()

    @Slot()
    def _emit_changed(self) -> None:
        self.changed.emit()
