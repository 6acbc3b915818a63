"""The settings dialog: output folder, device, preview cadence, sampling checkpoints, and the
UMT5 tokenizer folder Wan sets made of ComfyUI files need (they come without one).

Model folders are edited in the model manager. The dialog edits a copy of the frozen
:class:`~studio.service.settings.Settings`; the window saves and applies it when accepted.
"""

from __future__ import annotations

from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from studio.service.settings import DEVICES, Settings, umt5_tokenizer_problem

_TOKENIZER_WHY = ("Wan's text encoder reads prompts through the google/umt5-xxl tokenizer "
                  "(tokenizer.json / spiece.model). ComfyUI's Wan files come without it: choose "
                  "that folder once and every Wan set that lacks one uses it.")


class SettingsDialog(QDialog):
    """Edits the domain settings; :meth:`settings` gives the edited copy."""

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("settings-dialog")
        self.setWindowTitle("Settings")
        self._original = settings
        self.output_dir = QLineEdit(settings.output_dir, self)
        self.output_dir.setPlaceholderText(str(settings.outputs))
        browse = QPushButton("Choose…", self)
        browse.clicked.connect(self._choose_output)
        self.device = QComboBox(self)
        self.device.addItems(list(DEVICES))
        self.device.setCurrentText(settings.device)
        self.device.setToolTip("auto: the CUDA GPU when there is one, otherwise the CPU")
        self.preview_every = QSpinBox(self)
        self.preview_every.setRange(1, 1000)
        self.preview_every.setValue(settings.preview_every)
        self.preview_every.setSuffix(" step(s)")
        self.checkpoint_every = QSpinBox(self)
        self.checkpoint_every.setRange(0, 1000)
        self.checkpoint_every.setValue(settings.checkpoint_every)
        self.checkpoint_every.setSpecialValueText("never")
        self.checkpoint_every.setSuffix(" step(s)")
        self.checkpoint_every.setToolTip("save the sampler state so a killed job resumes there")
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.output_dir, 1)
        folder_row.addWidget(browse)
        tokenizer_row = self._tokenizer_row(settings)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Output folder", folder_row)
        form.addRow("Device", self.device)
        form.addRow("Live preview every", self.preview_every)
        form.addRow("Sampling checkpoint every", self.checkpoint_every)
        form.addRow("UMT5 tokenizer", tokenizer_row)
        form.addRow("", self.tokenizer_problem)
        form.addRow(buttons)

    def _tokenizer_row(self, settings: Settings) -> QHBoxLayout:
        """The tokenizer folder field, its chooser, and the line that says what is wrong."""
        self.umt5_tokenizer = QLineEdit(settings.umt5_tokenizer, self)
        self.umt5_tokenizer.setPlaceholderText("google/umt5-xxl folder (for ComfyUI's Wan files)")
        self.umt5_tokenizer.setToolTip(_TOKENIZER_WHY)
        choose = QPushButton("Choose…", self)
        choose.setToolTip(_TOKENIZER_WHY)
        choose.clicked.connect(self._choose_tokenizer)
        self.tokenizer_problem = QLabel("", self)
        self.tokenizer_problem.setWordWrap(True)
        self.tokenizer_problem.setVisible(False)
        row = QHBoxLayout()
        row.addWidget(self.umt5_tokenizer, 1)
        row.addWidget(choose)
        return row

    def settings(self) -> Settings:
        """The settings as edited (model folders and default model unchanged)."""
        return self._original.with_changes(
            output_dir=self.output_dir.text().strip(),
            device=self.device.currentText(),
            preview_every=self.preview_every.value(),
            checkpoint_every=self.checkpoint_every.value(),
            umt5_tokenizer=self.umt5_tokenizer.text().strip(),
        )

    @Slot()
    def accept(self) -> None:
        """Close with the edits, unless the tokenizer folder is not one (then say why)."""
        folder = self.umt5_tokenizer.text().strip()
        problem = umt5_tokenizer_problem(folder) if folder else ""
        self.tokenizer_problem.setText(problem)
        self.tokenizer_problem.setVisible(bool(problem))
        if not problem:
            super().accept()

    @Slot()
    def _choose_output(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Output folder", self.output_dir.text())
        if folder:
            self.output_dir.setText(folder)

    @Slot()
    def _choose_tokenizer(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "google/umt5-xxl tokenizer folder",
                                                  self.umt5_tokenizer.text())  # fmt: skip
        if folder:
            self.umt5_tokenizer.setText(folder)
