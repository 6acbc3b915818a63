"""The prompt field's help with a model's words: example prompts, and marks on unknown words.

:class:`PromptExamples` is the "Examples" menu beside the Prompt label and the hint text that
shows one example at a time. :class:`PromptWords` underlines, for a model with a closed
vocabulary (:attr:`ModelInfo.vocabulary`), every word of the prompt the model does not know and
explains it in a tooltip; it never blocks Generate — a prompt with unknown words still runs.
"""

from __future__ import annotations

import re

from PySide6.QtCore import QEvent, QObject, QPoint, QTimer, Signal, Slot
from PySide6.QtGui import (
    QAction,
    QColor,
    QHelpEvent,
    QSyntaxHighlighter,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
)
from PySide6.QtWidgets import QMenu, QPlainTextEdit, QToolButton, QToolTip, QWidget

from studio.service.model_info import ModelInfo

#: A word is a run of letters (any script); digits and punctuation separate words, so
#: "snow-white" is two words — the rule the demo's vocabulary is listed by.
WORD = re.compile(r"[^\W\d_]+")
EMPTY_HINT = "Describe the video… (Ctrl+Enter generates)"
HINT_PERIOD_MS = 5000  # how long each example stays in the empty field
MARK_COLOUR = QColor(220, 50, 50)


def _utf16(text: str, index: int) -> int:
    """Qt positions count UTF-16 units: a character outside the BMP (an emoji) counts two."""
    return len(text[:index].encode("utf-16-le")) // 2


def unknown_words(text: str, vocabulary: frozenset[str]) -> list[tuple[int, int, str]]:
    """``(start, length, word)`` of each word of ``text`` not in ``vocabulary`` (compared in
    lower case); start and length in Qt's UTF-16 units."""
    found = []
    for match in WORD.finditer(text):
        if match.group().lower() not in vocabulary:
            start = _utf16(text, match.start())
            found.append((start, _utf16(text, match.end()) - start, match.group()))
    return found


class UnknownWordHighlighter(QSyntaxHighlighter):
    """Wavy red underlines under the words a closed-vocabulary model does not know."""

    def __init__(self, document: QTextDocument) -> None:
        super().__init__(document)
        self.vocabulary: frozenset[str] | None = None
        self.mark = QTextCharFormat()
        self.mark.setUnderlineStyle(QTextCharFormat.UnderlineStyle.WaveUnderline)
        self.mark.setUnderlineColor(MARK_COLOUR)

    def set_vocabulary(self, vocabulary: frozenset[str] | None) -> None:
        """Mark against ``vocabulary`` from now on (None: mark nothing) and redo every block."""
        self.vocabulary = vocabulary
        self.rehighlight()

    def highlightBlock(self, text: str) -> None:  # noqa: N802 (Qt's name)
        if self.vocabulary is None:
            return
        for start, length, _word in unknown_words(text, self.vocabulary):
            self.setFormat(start, length, self.mark)


class PromptWords(QObject):
    """Marks a prompt editor's unknown words and shows, over one, what the model knows."""

    def __init__(self, editor: QPlainTextEdit) -> None:
        super().__init__(editor)
        self._editor = editor
        self._info: ModelInfo | None = None
        self.highlighter = UnknownWordHighlighter(editor.document())
        editor.viewport().installEventFilter(self)

    def set_model(self, info: ModelInfo) -> None:
        """Follow the loaded model: its vocabulary's marks, or none for an open vocabulary."""
        self._info = info
        self.highlighter.set_vocabulary(info.vocabulary)

    def tooltip_at(self, pos: QPoint) -> str:
        """The explanation for the unknown word under ``pos`` (viewport pixels); "" elsewhere."""
        info, vocabulary = self._info, self.highlighter.vocabulary
        if info is None or vocabulary is None:
            return ""
        block = self._editor.cursorForPosition(pos).block()
        for start, length, word in unknown_words(block.text(), vocabulary):
            if self._covers(block.position() + start, length, pos):
                known = info.prompt_guide or f"{info.name} knows: {', '.join(sorted(vocabulary))}."
                return f"{info.name} does not know “{word}” (Generate still runs).\n{known}"
        return ""

    def _covers(self, position: int, length: int, pos: QPoint) -> bool:
        """Whether the text from ``position`` (document units) over ``length`` lies under
        ``pos``: between the cursor rectangles at its two ends, on their line."""
        cursor = QTextCursor(self._editor.document())
        cursor.setPosition(position)
        first = self._editor.cursorRect(cursor)
        cursor.setPosition(position + length)
        last = self._editor.cursorRect(cursor)
        return (first.top() == last.top() and first.left() <= pos.x() <= last.right()
                and first.top() <= pos.y() <= first.bottom())

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        if event.type() != QEvent.Type.ToolTip or not isinstance(event, QHelpEvent):
            return False
        text = self.tooltip_at(event.pos())
        if text:
            QToolTip.showText(event.globalPos(), text, self._editor.viewport())
        else:
            QToolTip.hideText()
        return True


class PromptExamples(QToolButton):
    """The "Examples" menu: choosing one replaces the prompt (one Ctrl+Z brings the old text
    back). While the prompt is empty its hint text shows the examples in turn.

    Signals:
        chosen(str): an example was put into the prompt.
    """

    chosen = Signal(str)

    def __init__(self, editor: QPlainTextEdit, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("prompt-examples")
        self.setText("Examples")
        self.setToolTip("Prompts this model does well")
        self.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.setMenu(QMenu(self))
        self.menu().triggered.connect(self._on_triggered)
        self._editor = editor
        self._examples: tuple[str, ...] = ()
        self._shown = 0  # the example in the hint text
        self.hint_timer = QTimer(self)
        self.hint_timer.setInterval(HINT_PERIOD_MS)
        self.hint_timer.timeout.connect(self.next_hint)
        editor.textChanged.connect(self._on_text_changed)
        self._show_hint()
        self.hide()

    def set_model(self, info: ModelInfo) -> None:
        """Offer ``info``'s examples (the button is hidden for a model without any)."""
        self._examples, self._shown = tuple(info.prompt_examples), 0
        self.menu().clear()
        for example in self._examples:
            self.menu().addAction(example).setData(example)  # the text may gain a "&" mnemonic
        self.setVisible(bool(self._examples))
        self._show_hint()
        self._on_text_changed()

    def choose(self, example: str) -> None:
        """Replace the prompt with ``example`` as one undoable edit."""
        cursor = QTextCursor(self._editor.document())
        cursor.beginEditBlock()
        cursor.select(QTextCursor.SelectionType.Document)
        cursor.insertText(example)
        cursor.endEditBlock()
        self._editor.setTextCursor(cursor)
        self.chosen.emit(example)

    @Slot()
    def next_hint(self) -> None:
        """Show the next example in the empty prompt field."""
        if self._examples:
            self._shown = (self._shown + 1) % len(self._examples)
            self._show_hint()

    def _show_hint(self) -> None:
        self._editor.setPlaceholderText(
            f"e.g. {self._examples[self._shown]}   (Ctrl+Enter generates)"
            if self._examples else EMPTY_HINT)

    @Slot(QAction)
    def _on_triggered(self, action: QAction) -> None:
        self.choose(str(action.data()))

    @Slot()
    def _on_text_changed(self) -> None:
        """Cycle the hint text only while it can be seen: the field empty, several examples."""
        cycling = len(self._examples) > 1 and self._editor.document().isEmpty()
        if cycling and not self.hint_timer.isActive():
            self.hint_timer.start()
        elif not cycling:
            self.hint_timer.stop()
