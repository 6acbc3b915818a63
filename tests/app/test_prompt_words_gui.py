"""The prompt panel's help with a model's words: the Examples menu and hint text, and the wavy
marks (with their tooltip) under words a closed-vocabulary model does not know — which never
block Generate, and vanish for a model with an open vocabulary."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import QEvent, QPoint
from PySide6.QtGui import QHelpEvent, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QToolButton, QToolTip

from studio.app.prompt_words import EMPTY_HINT, MARK_COLOUR, unknown_words
from studio.models.demo.vocabulary import PROMPT_EXAMPLES, VOCABULARY, prompt_guide, words

UNKNOWN = "a purple hexagon sliding diagonally over a sunset background"
UNKNOWN_WORDS = ["hexagon", "diagonally", "sunset"]


def _demo_like(window):
    return replace(window._info, id="demo-like", name="Demo (shapes)", prompt_guide=prompt_guide(),
                   prompt_examples=PROMPT_EXAMPLES, vocabulary=VOCABULARY)


def _marked(panel) -> list[str]:
    """The text under each wavy-underlined range of the prompt's blocks, in order."""
    doc, marked = panel.prompt.document(), []
    block = doc.begin()
    while block.isValid():
        for rng in block.layout().formats():
            fmt = rng.format
            assert fmt.underlineStyle() == QTextCharFormat.UnderlineStyle.WaveUnderline
            assert fmt.underlineColor() == MARK_COLOUR
            marked.append(block.text()[rng.start:rng.start + rng.length])
        block = block.next()
    return marked


def _centre_of(panel, word: str) -> QPoint:
    """Viewport pixels at the middle of ``word``'s first occurrence in the prompt."""
    start = panel.prompt.toPlainText().index(word)
    cursor = QTextCursor(panel.prompt.document())
    cursor.setPosition(start)
    left = panel.prompt.cursorRect(cursor)
    cursor.setPosition(start + len(word))
    right = panel.prompt.cursorRect(cursor)
    return QPoint((left.left() + right.right()) // 2, left.center().y())


def test_the_examples_menu_fills_the_prompt_and_undo_restores_it(make_window, qtbot) -> None:
    window = make_window()
    panel = window.prompt_panel
    button = panel.findChild(QToolButton, "prompt-examples")
    assert button is panel.examples and button.isHidden()  # the tiny model has no examples
    assert panel.prompt.placeholderText() == EMPTY_HINT
    panel.set_model(_demo_like(window))
    assert not button.isHidden()
    actions = button.menu().actions()
    assert [a.text() for a in actions] == list(PROMPT_EXAMPLES)
    panel.prompt.setPlainText("my own words")
    with qtbot.waitSignal(button.chosen):
        actions[2].trigger()
    assert panel.prompt.toPlainText() == PROMPT_EXAMPLES[2]
    assert panel.request().prompt == PROMPT_EXAMPLES[2]
    panel.prompt.undo()
    assert panel.prompt.toPlainText() == "my own words"
    panel.set_model(replace(window._info, id="open-vocabulary"))
    assert button.isHidden() and not button.menu().actions()


def test_the_hint_shows_the_examples_in_turn_while_the_field_is_empty(make_window) -> None:
    window = make_window()
    panel = window.prompt_panel
    panel.set_model(_demo_like(window))
    timer = panel.examples.hint_timer
    assert panel.prompt.placeholderText().startswith(f"e.g. {PROMPT_EXAMPLES[0]} ")
    assert timer.isActive()
    timer.timeout.emit()
    assert panel.prompt.placeholderText().startswith(f"e.g. {PROMPT_EXAMPLES[1]} ")
    panel.prompt.setPlainText("a red dot")
    assert not timer.isActive()  # no cycling behind text
    panel.prompt.clear()
    assert timer.isActive()
    panel.set_model(replace(window._info, id="open-vocabulary"))
    assert panel.prompt.placeholderText() == EMPTY_HINT and not timer.isActive()


def test_exactly_the_unknown_words_are_marked_and_explained(make_window, qtbot) -> None:
    window = make_window()
    panel = window.prompt_panel
    panel.set_model(_demo_like(window))
    qtbot.keyClicks(panel.prompt, UNKNOWN)
    assert _marked(panel) == UNKNOWN_WORDS
    panel.prompt.setPlainText("A Purple triangle, sliding DOWN; on a yellow background!\n"
                              "2 green squares")
    assert _marked(panel) == ["squares"]  # case, punctuation and numbers are not words
    assert window.generate_action.isEnabled()  # marks never block Generate
    panel.prompt.setPlainText(UNKNOWN)
    tip = panel.words.tooltip_at(_centre_of(panel, "hexagon"))
    assert tip.startswith("Demo (shapes) does not know “hexagon”") and prompt_guide() in tip
    assert panel.words.tooltip_at(_centre_of(panel, "purple")) == ""
    viewport = panel.prompt.viewport()
    point = _centre_of(panel, "sunset")
    event = QHelpEvent(QEvent.Type.ToolTip, point, viewport.mapToGlobal(point))
    assert panel.words.eventFilter(viewport, event)
    assert "“sunset”" in QToolTip.text()
    QToolTip.hideText()


def test_an_open_vocabulary_model_shows_no_marks(make_window) -> None:
    window = make_window()
    panel = window.prompt_panel
    panel.prompt.setPlainText(UNKNOWN)
    assert window._info.vocabulary is None and _marked(panel) == []
    panel.set_model(_demo_like(window))
    assert _marked(panel) == UNKNOWN_WORDS
    panel.set_model(replace(window._info, id="wan-like", prompt_examples=("a cat",)))
    assert _marked(panel) == [] and panel.words.tooltip_at(_centre_of(panel, "hexagon")) == ""


def test_word_ranges_count_utf16_units() -> None:
    vocabulary = frozenset({"a", "red", "dot"})
    text = "🎬 a red 🔴 dot hexagon"
    (start, length, word), = unknown_words(text, vocabulary)
    assert word == "hexagon" and length == 7
    assert start == len(text.encode("utf-16-le")) // 2 - 7  # each emoji counts two units
    # the panel splits words as the demo's vocabulary was listed: each entry is one word
    assert all(unknown_words(w, frozenset()) == [(0, len(w), w)] for w in VOCABULARY)
    assert [w for _, _, w in unknown_words(UNKNOWN + " snow-white", frozenset())] == words(
        UNKNOWN + " snow-white")
