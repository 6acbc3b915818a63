"""Qt item models over plain service data (napari-style adapters; the data stays Qt-free)."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QColor

from studio.service.model_info import ModelRow

PROBLEM = QColor("#ef9a9a")
ID_ROLE = Qt.ItemDataRole.UserRole
_Index = QModelIndex | QPersistentModelIndex


def format_bytes(size: int) -> str:
    """1536 → "1.5 KiB"; sizes in binary units."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def short_status(row: ModelRow) -> str:
    """"ready", "incomplete" or "N problem(s)" (the full text is in the tooltip and details)."""
    if row.problems:
        count = len(row.problems)
        return f"{count} problem{'s' if count > 1 else ''}"
    return "ready" if row.complete else "incomplete"


class ModelTableModel(QAbstractTableModel):
    """Rows of :class:`ModelRow`; ``ID_ROLE`` gives a row's model id."""

    HEADERS = ("Model", "Status", "Family · variant", "Size", "Precision")

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._rows: list[ModelRow] = []

    def set_rows(self, rows: Sequence[ModelRow]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def row_at(self, index: int) -> ModelRow:
        return self._rows[index]

    def find(self, model_id: str) -> int:
        """Row number of ``model_id`` (−1 when absent)."""
        return next((i for i, r in enumerate(self._rows) if r.id == model_id), -1)

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt signature
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.HEADERS[section]
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(row, index.column())
        if role == Qt.ItemDataRole.ToolTipRole:
            return "\n".join(x for x in (row.id, row.files, row.status(), *row.notes) if x)
        if role == Qt.ItemDataRole.ForegroundRole and not row.usable:
            return QBrush(PROBLEM)
        if role == ID_ROLE:
            return row.id
        return None

    @staticmethod
    def _text(row: ModelRow, column: int) -> str:
        return (row.name, short_status(row), f"{row.family} · {row.variant}",
                format_bytes(row.size_bytes), row.precision)[column]
