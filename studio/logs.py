"""Logging set-up: a rotating file under ``STUDIO_HOME/logs`` and stderr."""

from __future__ import annotations

import logging
import logging.handlers

from studio.paths import studio_home

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


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
        log_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            log_dir / "studio.log", maxBytes=2_000_000, backupCount=3, encoding="utf-8"
        )
        handler.setFormatter(logging.Formatter(_FORMAT))
        root.addHandler(handler)
    setup_logging._done = True  # type: ignore[attr-defined]
