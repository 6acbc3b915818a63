"""The model manager: every model set found, its folders, and load / unload with memory use."""

from __future__ import annotations

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QPushButton,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from studio.service.model_info import ModelInfo, ModelRow
from studio.service.process_memory import MemoryUsage

from .qt_models import ModelTableModel


class ModelsPanel(QWidget):
    """Lists model sets with their problems; asks for loads, unloads and folder changes.

    Signals:
        load_requested(model_id), unload_requested(), folders_changed(tuple[str, ...]),
        rescan_requested().
    """

    load_requested = Signal(str)
    unload_requested = Signal()
    folders_changed = Signal(tuple)
    rescan_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("models-panel")
        self.model = ModelTableModel(self)
        self._build()
        self._connect()
        self._folders: tuple[str, ...] = ()

    def _build(self) -> None:
        self.table = QTableView(self)
        self.table.setObjectName("model-table")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.details = QLabel(self)
        self.details.setObjectName("model-details")
        self.details.setWordWrap(True)
        self.details.hide()
        self.load_button = QPushButton("Load", self)
        self.unload_button = QPushButton("Unload", self)
        self.loaded_label = QLabel("No model loaded", self)
        self.loaded_label.setObjectName("loaded-model")
        self.loaded_label.setWordWrap(True)
        self.memory_label = QLabel(self)
        self.memory_label.setObjectName("memory")
        self.folder_list = QListWidget(self)
        self.folder_list.setObjectName("model-folders")
        self.folder_list.setMaximumHeight(80)
        self.add_folder_button = QPushButton("Add folder…", self)
        self.remove_folder_button = QPushButton("Remove", self)
        self.rescan_button = QPushButton("Rescan", self)
        self.status = QLabel(self)
        self.status.setObjectName("models-status")
        self.status.setWordWrap(True)
        load_row = QHBoxLayout()
        for widget in (self.load_button, self.unload_button):
            load_row.addWidget(widget)
        folder_row = QHBoxLayout()
        for widget in (self.add_folder_button, self.remove_folder_button, self.rescan_button):
            folder_row.addWidget(widget)
        sets = QWidget(self)
        layout = QVBoxLayout(sets)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.details)
        layout.addLayout(load_row)
        layout.addWidget(self.loaded_label)
        layout.addWidget(self.memory_label)
        layout.addWidget(QLabel("Model folders", self))
        layout.addWidget(self.folder_list)
        layout.addLayout(folder_row)
        layout.addWidget(self.status)
        self.tabs = QTabWidget(self)  # tabs: more sections add no height to the side column
        self.tabs.setObjectName("models-tabs")
        self.tabs.addTab(sets, "Model sets")
        QVBoxLayout(self).addWidget(self.tabs)

    def _connect(self) -> None:
        self.load_button.clicked.connect(self._on_load)
        self.table.doubleClicked.connect(self._on_load)
        self.unload_button.clicked.connect(self.unload_requested)
        self.table.selectionModel().selectionChanged.connect(self._show_details)
        self.add_folder_button.clicked.connect(self._on_add_folder)
        self.remove_folder_button.clicked.connect(self._on_remove_folder)
        self.rescan_button.clicked.connect(self.rescan_requested)

    # --- public API -------------------------------------------------------------------------

    @property
    def folders(self) -> tuple[str, ...]:
        return self._folders

    def set_rows(self, rows: list[ModelRow]) -> None:
        selected = self.selected_id()
        self.model.set_rows(rows)
        self.status.setText(f"{len(rows)} model set(s) found" if rows else
                            "No model sets found — add a folder with model checkpoints")
        if selected:
            self.select(selected)

    def set_folders(self, folders: tuple[str, ...]) -> None:
        self._folders = tuple(folders)
        self.folder_list.clear()
        self.folder_list.addItems(list(self._folders))

    def set_scanning(self) -> None:
        self.status.setText("Scanning model folders…")

    def set_loading(self, model_id: str) -> None:
        self.loaded_label.setText(f"Loading {model_id}…")

    def set_loaded(self, info: ModelInfo | None, memory: MemoryUsage) -> None:
        if info is None:
            self.loaded_label.setText("No model loaded")
        else:
            self.loaded_label.setText(
                f"Loaded: {info.name} ({info.family} {info.variant}) on {info.device}, "
                f"{info.precision}")
            self.select(info.id)
        self.memory_label.setText(memory.describe())

    def add_section(self, title: str, widget: QWidget) -> None:
        """Another tab beside the model sets (the LoRA list)."""
        self.tabs.addTab(widget, title)

    def set_error(self, text: str) -> None:
        self.status.setText(text)

    def selected_id(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        return self.model.row_at(rows[0].row()).id if rows else None

    def select(self, model_id: str) -> None:
        row = self.model.find(model_id)
        if row >= 0:
            self.table.selectRow(row)

    # --- reactions --------------------------------------------------------------------------

    @Slot()
    def _on_load(self) -> None:
        model_id = self.selected_id()
        if model_id is None:
            self.status.setText("Select a model set to load")
            return
        row = self.model.row_at(self.model.find(model_id))
        if not row.usable:
            self.status.setText(f"{row.name} cannot be loaded: {row.status()}")
            return
        self.load_requested.emit(model_id)

    @Slot()
    def _show_details(self) -> None:
        """Problems and notes of the selected set, in full, under the table."""
        model_id = self.selected_id()
        row = self.model.row_at(self.model.find(model_id)) if model_id else None
        lines = []
        if row is not None:
            lines = [f"• {p}" for p in row.problems] + [f"note: {n}" for n in row.notes]
            if not row.complete and not row.problems:
                lines.insert(0, "• the set is incomplete")
        self.details.setText("\n".join(lines))
        self.details.setProperty("problem", bool(row is not None and not row.usable))
        self.details.style().unpolish(self.details)
        self.details.style().polish(self.details)
        self.details.setVisible(bool(lines))

    @Slot()
    def _on_add_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a model folder")
        if folder and folder not in self._folders:
            self.set_folders((*self._folders, folder))
            self.folders_changed.emit(self._folders)

    @Slot()
    def _on_remove_folder(self) -> None:
        item = self.folder_list.currentItem()
        if item is not None:
            self.set_folders(tuple(f for f in self._folders if f != item.text()))
            self.folders_changed.emit(self._folders)
