"""Run Python's cyclic garbage collector on the GUI thread only.

Python collects cycles in whichever thread happens to allocate when a threshold is crossed. If a
cycle holds a Qt object (a closed window, a panel and its lambdas), a collection on the worker or
a pool thread runs that object's C++ destructor off the GUI thread, which can crash the process.
:class:`GuiThreadCollector` turns automatic collection off and collects from a GUI-thread timer
instead, when the allocation counters say a collection is due (the same thresholds Python uses).
"""

from __future__ import annotations

import gc
import logging

from PySide6.QtCore import QObject, QTimer, Slot

log = logging.getLogger(__name__)


class GuiThreadCollector(QObject):
    """While started, cyclic GC runs only here, every ``interval_ms`` when due."""

    def __init__(self, parent: QObject | None = None, interval_ms: int = 500) -> None:
        super().__init__(parent)
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.collect_if_due)
        self._was_enabled = gc.isenabled()
        self.collections = 0

    def start(self) -> None:
        self._was_enabled = gc.isenabled()
        gc.disable()
        self._timer.start()

    def stop(self) -> None:
        """Collect once more here, then give collection back to Python."""
        self._timer.stop()
        gc.collect()
        if self._was_enabled:
            gc.enable()

    @Slot()
    def collect_if_due(self) -> None:
        counts = gc.get_count()
        thresholds = gc.get_threshold()
        for generation in (2, 1, 0):
            if thresholds[generation] and counts[generation] > thresholds[generation]:
                found = gc.collect(generation)
                self.collections += 1
                log.debug("gc generation %d on the GUI thread: %d objects", generation, found)
                return
