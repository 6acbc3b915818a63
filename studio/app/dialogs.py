"""Error dialogs and the excepthooks that route uncaught exceptions into them.

Every failure a person sees is a :class:`~studio.app.worker.JobFailure`: a window-modal
QMessageBox with the message, the hint as informative text and the traceback under
"Show Details...". Dialogs are opened with ``open()`` (never ``exec()``), so nothing blocks the
event loop and tests can look at them. Uncaught exceptions on any thread reach the GUI thread
through a queued signal; the app keeps running.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import QMessageBox, QWidget

from .worker import JobFailure, describe_failure

log = logging.getLogger(__name__)


class ErrorReporter(QObject):
    """Shows failures as dialogs; safe to call :meth:`report_threadsafe` from any thread.

    Signals:
        reported(JobFailure): a dialog was opened (tests listen to this).
    """

    reported = Signal(object)
    _incoming = Signal(object)

    def __init__(self, parent_widget: QWidget | None = None) -> None:
        super().__init__(parent_widget)
        self._parent_widget = parent_widget
        self.history: list[JobFailure] = []
        self.dialogs: list[QMessageBox] = []
        self._incoming.connect(self.report)

    def report_threadsafe(self, failure: JobFailure) -> None:
        """Queue ``failure`` for the GUI thread (emitting a signal is thread-safe)."""
        self._incoming.emit(failure)

    @Slot(object)
    def report(self, failure: JobFailure) -> None:
        """Open a dialog for ``failure`` (GUI thread)."""
        self.history.append(failure)
        box = QMessageBox(QMessageBox.Icon.Warning, failure.title, failure.message,
                          QMessageBox.StandardButton.Ok, self._parent_widget)
        box.setObjectName("error-dialog")
        if failure.hint:
            box.setInformativeText(failure.hint)
        if failure.details:
            box.setDetailedText(failure.details)
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(self._forget)
        self.dialogs.append(box)
        box.open()
        self.reported.emit(failure)

    @Slot()
    def _forget(self) -> None:
        sender = self.sender()
        self.dialogs = [d for d in self.dialogs if d is not sender]

    def close_all(self) -> None:
        for box in list(self.dialogs):
            box.close()
        self.dialogs.clear()


def install_excepthooks(reporter: ErrorReporter) -> Callable[[], None]:
    """Route ``sys.excepthook`` and ``threading.excepthook`` to the log and ``reporter``.

    Returns a function that puts the previous hooks back.
    """
    previous_sys, previous_thread = sys.excepthook, threading.excepthook

    def on_exception(exc_type, exc, tb) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            previous_sys(exc_type, exc, tb)
            return
        log.error("uncaught exception", exc_info=(exc_type, exc, tb))
        reporter.report_threadsafe(describe_failure(exc.with_traceback(tb)))

    def on_thread_exception(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is None or issubclass(args.exc_type, SystemExit):
            return
        log.error("uncaught exception in thread %s", getattr(args.thread, "name", "?"),
                  exc_info=(args.exc_type, args.exc_value, args.exc_traceback))
        reporter.report_threadsafe(describe_failure(args.exc_value))

    sys.excepthook = on_exception
    threading.excepthook = on_thread_exception

    def restore() -> None:
        sys.excepthook = previous_sys
        threading.excepthook = previous_thread

    return restore
