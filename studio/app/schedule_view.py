"""A QPainter plot of the sampling schedule: t against step, for the settings on screen.

The curve is the engine's own schedule (via :mod:`studio.service.schedule_chart`). Dashed
orange lines mark where each soft keyframe starts denoising (t = 1 − strength) and every
keyframe is listed (its frame, strength and first step); a purple
line marks where a two-expert model hands over to its low-noise expert; during a run the current
step is highlighted; hovering shows the step and its t.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QMouseEvent, QPainter, QPainterPath, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from studio.service.schedule_chart import ConditioningStart, ScheduleChart

from .keyframe_list import frame_label

BACKGROUND = QColor("#1b1d21")
GRID = QColor("#33373e")
TEXT = QColor("#c5cad3")
CURVE = QColor("#4fc3f7")
LINEAR = QColor("#5d636d")
MARKER = QColor("#ffb74d")
CURRENT = QColor("#ef5350")
EXPERT = QColor("#ba68c8")
MARGINS = (46.0, 26.0, 14.0, 30.0)  # left, top, right, bottom
LINE_HEIGHT = 14.0  # px per keyframe line


def start_text(start: ConditioningStart) -> str:
    """A keyframe in words: "last frame · strength 0.5 · starts at step 3 (t < 0.50)"."""
    where = frame_label(start.frame_index)
    if start.step is None:  # m = 1, or 1 − m below every step's t: never denoised
        reach = "" if start.strength >= 1.0 else f"no step reaches t < {start.t_start:.2f}: "
        return f"{where} · strength {start.strength:g} · {reach}kept"
    return (f"{where} · strength {start.strength:g} · starts at step {start.step} "
            f"(t < {start.t_start:.2f})")


class ScheduleView(QWidget):
    """Shows a :class:`ScheduleChart`; ``set_current_step`` highlights a running step."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("schedule-view")
        self.setMouseTracking(True)
        self.setMinimumSize(260, 150)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._chart: ScheduleChart | None = None
        self._message = "Load a model to see the schedule"
        self._current: int | None = None
        self._hover: int | None = None

    # --- public API -------------------------------------------------------------------------

    @property
    def chart(self) -> ScheduleChart | None:
        return self._chart

    @property
    def current_step(self) -> int | None:
        return self._current

    def set_chart(self, chart: ScheduleChart | None, message: str = "") -> None:
        """Show a schedule, or (None) a message such as why there is none."""
        self._chart = chart
        self._message = message
        if chart is None or (self._current is not None and self._current > chart.steps):
            self._current = None
        if chart is None or (self._hover is not None and self._hover > chart.steps):
            self._hover = None
        self.update()

    def set_current_step(self, step: int | None) -> None:
        """Highlight schedule point ``step`` (0 … N; None clears)."""
        self._current = step
        self.update()

    def hover_text(self) -> str:
        """"step i · t = …" for the point under the mouse ("" when none)."""
        if self._chart is None or self._hover is None:
            return ""
        return f"step {self._hover} · t = {self._chart.ts[self._hover]:.4f}"

    def keyframe_lines(self) -> list[str]:
        """One line per keyframe, in request order: its frame, strength and the step it starts
        being denoised at (or that it is kept)."""
        return [start_text(start) for start in self._chart.starts] if self._chart else []

    def title(self) -> str:
        p = self._chart
        if p is None:
            return self._message
        mode = "auto" if p.auto else "fixed"
        return f"{p.steps} steps · shift α = {p.shift:.3f} ({mode})"

    # --- geometry ---------------------------------------------------------------------------

    def _plot_rect(self) -> QRectF:
        left, top, right, bottom = MARGINS
        return QRectF(left, top, max(1.0, self.width() - left - right),
                      max(1.0, self.height() - top - bottom))

    def _point(self, rect: QRectF, step: float, t: float) -> QPointF:
        steps = max(1, self._chart.steps if self._chart else 1)
        return QPointF(rect.left() + rect.width() * step / steps, rect.bottom() - rect.height() * t)

    def step_at(self, x: float) -> int | None:
        """The schedule point nearest to widget x (None without a schedule)."""
        if self._chart is None:
            return None
        rect = self._plot_rect()
        fraction = (x - rect.left()) / rect.width()
        return max(0, min(self._chart.steps, round(fraction * self._chart.steps)))

    # --- events -----------------------------------------------------------------------------

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        hover = self.step_at(event.position().x())
        if hover != self._hover:
            self._hover = hover
            self.setToolTip(self.hover_text())
            self.update()

    def leaveEvent(self, event) -> None:
        self._hover = None
        self.update()
        super().leaveEvent(event)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), BACKGROUND)
        font = QFont(painter.font())
        font.setPointSizeF(max(7.0, font.pointSizeF() * 0.9))
        painter.setFont(font)
        rect = self._plot_rect()
        self._draw_axes(painter, rect)
        painter.setPen(TEXT)
        painter.drawText(QRectF(rect.left(), 4, rect.width(), 18),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, self.title())
        if self._chart is not None:
            self._draw_linear(painter, rect)
            self._draw_starts(painter, rect)
            self._draw_experts(painter, rect)
            self._draw_curve(painter, rect)
            self._draw_step_marks(painter, rect)
        painter.end()

    # --- drawing ----------------------------------------------------------------------------

    def _draw_axes(self, painter: QPainter, rect: QRectF) -> None:
        painter.setPen(QPen(GRID, 1))
        for k in range(5):
            y = rect.bottom() - rect.height() * k / 4
            painter.drawLine(QPointF(rect.left(), y), QPointF(rect.right(), y))
            painter.setPen(TEXT)
            painter.drawText(QRectF(0, y - 8, rect.left() - 6, 16),
                             Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                             f"{k / 4:.2f}")
            painter.setPen(QPen(GRID, 1))
        painter.drawLine(rect.bottomLeft(), rect.topLeft())
        painter.setPen(TEXT)
        label_rect = QRectF(rect.left(), rect.bottom() + 4, rect.width(), 16)
        steps = self._chart.steps if self._chart else 0
        painter.drawText(label_rect, Qt.AlignmentFlag.AlignLeft, "0")
        painter.drawText(label_rect, Qt.AlignmentFlag.AlignHCenter, "step  →   (t: 1 = noise)")
        painter.drawText(label_rect, Qt.AlignmentFlag.AlignRight, str(steps))

    def _draw_linear(self, painter: QPainter, rect: QRectF) -> None:
        pen = QPen(LINEAR, 1, Qt.PenStyle.DotLine)
        painter.setPen(pen)
        steps = self._chart.steps
        painter.drawLine(self._point(rect, 0, 1.0), self._point(rect, steps, 0.0))

    def _draw_curve(self, painter: QPainter, rect: QRectF) -> None:
        ts = self._chart.ts
        path = QPainterPath(self._point(rect, 0, ts[0]))
        for i, t in enumerate(ts[1:], start=1):
            path.lineTo(self._point(rect, i, t))
        painter.setPen(QPen(CURVE, 2))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(path)
        if len(ts) <= 80:
            painter.setBrush(CURVE)
            for i, t in enumerate(ts):
                painter.drawEllipse(self._point(rect, i, t), 2.2, 2.2)

    def _draw_starts(self, painter: QPainter, rect: QRectF) -> None:
        """A dashed pair of lines (t = 1 − m across, the first changing step down) per soft
        keyframe, and the list of every keyframe stacked in the bottom-left corner, which is
        empty: the curve is still high at the first steps."""
        painter.setPen(QPen(MARKER, 1, Qt.PenStyle.DashLine))
        for start in self._chart.starts:
            if start.step is not None:
                y = self._point(rect, 0, start.t_start).y()
                painter.drawLine(QPointF(rect.left(), y), QPointF(rect.right(), y))
                x = self._point(rect, start.step, 0).x()
                painter.drawLine(QPointF(x, rect.top()), QPointF(x, rect.bottom()))
        lines = self.keyframe_lines()
        room = max(1, int((rect.height() - 4) // LINE_HEIGHT))
        if len(lines) > room:  # a short plot: the rest in one line
            lines = [*lines[:room - 1], f"+ {len(lines) - room + 1} more keyframes"]
        painter.setPen(MARKER)
        for k, text in enumerate(reversed(lines)):
            y = rect.bottom() - 2 - LINE_HEIGHT * (k + 1)
            painter.drawText(QRectF(rect.left() + 6, y, rect.width() - 12, LINE_HEIGHT),
                             Qt.AlignmentFlag.AlignLeft, text)

    def _draw_experts(self, painter: QPainter, rect: QRectF) -> None:
        """A two-expert model's hand-over: the boundary t, and the step the low-noise expert
        takes over from."""
        mark = self._chart.experts
        if mark is None:
            return
        y = self._point(rect, 0, mark.boundary).y()
        painter.setPen(QPen(EXPERT, 1, Qt.PenStyle.DashDotLine))
        painter.drawLine(QPointF(rect.left(), y), QPointF(rect.right(), y))
        text = f"t ≥ {mark.boundary:g}: high-noise expert"
        if mark.step is not None:
            x = self._point(rect, mark.step, 0).x()
            painter.drawLine(QPointF(x, rect.top()), QPointF(x, rect.bottom()))
            text += f"; low-noise expert from step {mark.step}"
        painter.setPen(EXPERT)
        painter.drawText(QRectF(rect.left() + 6, y + 2, rect.width() - 12, 14),
                         Qt.AlignmentFlag.AlignRight, text)

    def _draw_step_marks(self, painter: QPainter, rect: QRectF) -> None:
        ts = self._chart.ts
        if self._current is not None:
            point = self._point(rect, self._current, ts[self._current])
            painter.setPen(QPen(CURRENT, 1))
            painter.drawLine(QPointF(point.x(), rect.top()), QPointF(point.x(), rect.bottom()))
            painter.setBrush(CURRENT)
            painter.drawEllipse(point, 5, 5)
        if self._hover is not None:
            point = self._point(rect, self._hover, ts[self._hover])
            painter.setPen(QPen(TEXT, 1, Qt.PenStyle.DotLine))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawEllipse(point, 6, 6)
            painter.setPen(TEXT)
            painter.drawText(QRectF(rect.left(), 4, rect.width(), 18),
                             Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                             self.hover_text())
