"""Logging set-up: a rotating file under ``STUDIO_HOME/logs`` and stderr."""

from __future__ import annotations

import logging
import logging.handlers
import sys

from studio.paths import studio_home

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class QuietFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log file that, when it cannot be written (a full disk), says so once on
    stderr instead of printing a traceback for every record — which would bury the error the
    user needs to see."""

    failed = False

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        if not self.failed:
            self.failed = True
            sys.stderr.write(f"note: the log file {self.baseFilename} cannot be written "
                             "(disk full?); logging to it stops\n")


def setup_logging(level: int = logging.INFO, to_file: bool = True) -> None:
    """Configure the root logger once; later calls only change the level."""
    root = logging.getLogger()
    root.setLevel(level)
    if getattr(setup_logging, "_done", False):
        return
    stderr = logging.StreamHandler()
    stderr.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(stderr)
    if to_file:
        log_dir = studio_home() / "logs"
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
        except OSError:
            setup_logging._done = True  # type: ignore[attr-defined]
            return
        try:
            handler = QuietFileHandler(
                log_dir / "studio.log", maxBytes=2_000_000, backupCount=3, encoding="utf-8"
            )
        except OSError:  # a full disk or a read-only home: log to stderr only
            handler = None
        if handler is not None:
            handler.setFormatter(logging.Formatter(_FORMAT))
            root.addHandler(handler)
    setup_logging._done = True  # type: ignore[attr-defined]
