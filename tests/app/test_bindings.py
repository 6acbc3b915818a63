"""The Qt bindings must not corrupt the interpreter, and a long job must not crash the window.

PySide6 6.12.0 drops a reference to ``None`` on every call of a method that returns void. On
Python 3.11, where ``None`` has an ordinary reference count, the process aborts ("deallocating
None") after some 10^5 such calls — a few minutes of painting the schedule of a running job.
pyproject.toml keeps that release out; these tests fail on any binding with the same fault.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QPointF
from PySide6.QtGui import QImage, QPainter, QPainterPath

from .conftest import run_job


def test_void_qt_calls_keep_none_alive(qapp) -> None:
    path = QPainterPath(QPointF(0, 0))
    image = QImage(8, 8, QImage.Format.Format_RGB32)
    painter = QPainter(image)
    before = sys.getrefcount(None)
    for i in range(2000):
        path.lineTo(QPointF(i, i))
        painter.drawLine(QPointF(0, 0), QPointF(4, 4))
    after = sys.getrefcount(None)
    painter.end()
    assert after >= before - 100, f"None lost {before - after} references in 4,000 void calls"


def test_a_long_job_with_a_painted_schedule_finishes(make_window, qtbot) -> None:
    """300 steps, each redrawing the 300-point schedule: the call count that aborted the app."""
    window = make_window(step_delay_s=0.002)
    window.prompt_panel.prompt.setPlainText("a long run")
    window.prompt_panel.steps.setValue(300)
    outcome = run_job(qtbot, window, timeout_ms=120_000)
    assert outcome.kind == "finished" and outcome.progress_steps[-1] == 300
