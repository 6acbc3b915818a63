"""The LoRA list in the models panel: files with strengths, each one's report before Generate.

Adding a LoRA (button or drop) checks it against the loaded model in the background
(:func:`studio.service.loras.check_lora`); the report of the selected row is shown under the
list. A refused LoRA stays listed, marked with its reason, and is left out of jobs. When a
step-distillation LoRA is in the list, ``preset_offered`` carries its few-step settings for
the prompt panel (None when there is none).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.engine.request import LORA_MODES, LORA_STRENGTH, LoraItem
from studio.service.loras import LoraCheck

from .tasks import TaskRunner

Checker = Callable[[str, str], LoraCheck]
"""``checker(model_id, path)`` → the LoRA's check (runs in the task pool)."""

_FILE, _STRENGTH, _STATUS = range(3)


class LoraPanel(QWidget):
    """LoRA rows (file, strength, status), add / remove, the mode, the selected report.

    Signals:
        preset_offered(FewStepPreset | None): the few-step settings of the listed LoRAs.
    """

    preset_offered = Signal(object)

    def __init__(self, tasks: TaskRunner, checker: Checker, parent: QWidget | None = None
                 ) -> None:
        super().__init__(parent)
        self.setObjectName("lora-panel")
        self._tasks = tasks
        self._checker = checker
        self._model_id = ""
        self._checks: dict[str, LoraCheck] = {}
        self._hashes: dict[str, str] = {}  # a recipe's file hashes, checked when the job runs
        self._build()

    def _build(self) -> None:
        self.table = QTableWidget(0, 3, self)
        self.table.setObjectName("lora-table")
        self.table.setHorizontalHeaderLabels(["LoRA", "Strength", "Status"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setMaximumHeight(120)
        self.add_button = QPushButton("Add LoRA…", self)
        self.remove_button = QPushButton("Remove", self)
        self.mode = QComboBox(self)
        self.mode.setObjectName("lora-mode")
        self.mode.addItems(list(LORA_MODES))
        self.mode.setToolTip("merge: into the weights (fastest); on-the-fly: around each block "
                             "(works with offloaded blocks); auto: merge when the weights stay "
                             "on the device")
        self.report = QLabel(self)
        self.report.setObjectName("lora-report")
        self.report.setWordWrap(True)
        self.report.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        row = QHBoxLayout()
        for widget in (self.add_button, self.remove_button, QLabel("Mode", self), self.mode):
            row.addWidget(widget)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table)
        layout.addLayout(row)
        layout.addWidget(self.report)
        self.add_button.clicked.connect(self._on_add)
        self.remove_button.clicked.connect(self._on_remove)
        self.table.itemSelectionChanged.connect(self._show_report)

    # --- public API -------------------------------------------------------------------------

    def set_model(self, model_id: str) -> None:
        """Check every listed LoRA again against the model now loaded."""
        self._model_id = model_id
        for path in self.paths():
            self._check(path)

    def add(self, path: str, strength: float = 1.0) -> None:
        """List ``path`` (once) and check it."""
        if path in self.paths():
            return
        row = self.table.rowCount()
        self.table.insertRow(row)
        name = QTableWidgetItem(Path(path).name)
        name.setData(Qt.ItemDataRole.UserRole, path)
        name.setToolTip(path)
        self.table.setItem(row, _FILE, name)
        self.table.setCellWidget(row, _STRENGTH, self._strength_box(strength))
        self.table.setItem(row, _STATUS, QTableWidgetItem("checking…"))
        self.table.selectRow(row)
        self._check(path)

    def set_items(self, items: tuple[LoraItem, ...], mode: str) -> None:
        """Show a request's LoRAs (from a recipe)."""
        self.table.setRowCount(0)
        self._checks.clear()
        self._hashes = {item.path: item.sha256 for item in items if item.sha256}
        for item in items:
            self.add(item.path, item.strength)
        self.mode.setCurrentText(mode)

    def items(self) -> tuple[LoraItem, ...]:
        """The usable LoRAs with their strengths, in list order (refused ones left out)."""
        out = []
        for row, path in enumerate(self.paths()):
            check = self._checks.get(path)
            if check is not None and check.usable:
                out.append(LoraItem(path, self._strength(row), self._hashes.get(path, "")))
        return tuple(out)

    def lora_mode(self) -> str:
        return self.mode.currentText()

    def paths(self) -> list[str]:
        return [self.table.item(r, _FILE).data(Qt.ItemDataRole.UserRole)
                for r in range(self.table.rowCount())]

    def check_of(self, path: str) -> LoraCheck | None:
        return self._checks.get(path)

    # --- reactions --------------------------------------------------------------------------

    def _check(self, path: str) -> None:
        checker, model_id = self._checker, self._model_id
        self._tasks.submit(lambda: checker(model_id, path), self._on_checked)

    def _on_checked(self, check: LoraCheck) -> None:
        if check.path not in self.paths():
            return  # removed meanwhile
        self._checks[check.path] = check
        row = self.paths().index(check.path)
        status = "ready" if check.usable else f"refused: {check.problem}"
        if check.usable and check.report is not None and check.report.unmatched:
            status = f"ready ({len(check.report.unmatched)} modules not in this model)"
        self.table.item(row, _STATUS).setText(status)
        self.table.item(row, _STATUS).setToolTip(status)
        self._show_report()
        self._offer_preset()

    @Slot()
    def _show_report(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        check = self._checks.get(self.paths()[rows[0].row()]) if rows else None
        if check is None:
            self.report.setText("" if not rows else "checking…")
            return
        lines = check.report.lines() if check.report is not None else []
        self.report.setText("\n".join(lines) or f"refused: {check.problem}")

    def _offer_preset(self) -> None:
        presets = [c.preset for p in self.paths() if (c := self._checks.get(p)) and c.usable
                   and c.preset is not None]
        self.preset_offered.emit(presets[0] if presets else None)

    @Slot()
    def _on_add(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Add a LoRA", "",
                                              "LoRA files (*.safetensors *.pt *.pth *.bin)")
        if path:
            self.add(path)

    @Slot()
    def _on_remove(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows:
            path = self.paths()[rows[0].row()]
            self.table.removeRow(rows[0].row())
            self._checks.pop(path, None)
            self._show_report()
            self._offer_preset()

    def _strength_box(self, value: float) -> QDoubleSpinBox:
        box = QDoubleSpinBox(self.table)
        box.setObjectName("lora-strength")
        box.setRange(-LORA_STRENGTH, LORA_STRENGTH)
        box.setSingleStep(0.05)
        box.setDecimals(2)
        box.setValue(value)
        return box

    def _strength(self, row: int) -> float:
        box = self.table.cellWidget(row, _STRENGTH)
        return float(box.value()) if isinstance(box, QDoubleSpinBox) else 1.0
