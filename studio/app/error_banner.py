"""An inline banner for problems found while typing, with one-click fixes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget


@dataclass(frozen=True, slots=True)
class Fix:
    """A button offered beside a problem: ``label`` applies ``apply()``."""

    label: str
    apply: Callable[[], None]


@dataclass(frozen=True, slots=True)
class Problem:
    text: str
    fixes: tuple[Fix, ...] = ()


class ErrorBanner(QFrame):
    """Hidden when there is nothing to say; otherwise one line per problem plus its fixes."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("error-banner")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(8, 6, 8, 6)
        self._layout.setSpacing(4)
        self._problems: tuple[Problem, ...] = ()
        self.hide()

    @property
    def problems(self) -> tuple[Problem, ...]:
        return self._problems

    def text(self) -> str:
        """All problem lines joined by newlines ("" when hidden)."""
        return "\n".join(p.text for p in self._problems)

    def show_problems(self, problems: Sequence[Problem]) -> None:
        problems = tuple(problems)
        if problems == self._problems:
            return
        self._problems = problems
        self._clear()
        for problem in problems:
            self._layout.addWidget(self._row(problem))
        self.setVisible(bool(problems))

    def _row(self, problem: Problem) -> QWidget:
        row = QWidget(self)
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        label = QLabel(problem.text, row)
        label.setObjectName("error-banner-text")
        label.setWordWrap(True)
        layout.addWidget(label, 1)
        for fix in problem.fixes:
            button = QPushButton(fix.label, row)
            button.setObjectName("error-banner-fix")
            button.clicked.connect(lambda _checked=False, apply=fix.apply: apply())
            layout.addWidget(button)
        return row

    def _clear(self) -> None:
        while self._layout.count():
            item = self._layout.takeAt(0)
            widget = item.widget()
            if widget is not None:
                widget.hide()
                widget.deleteLater()
