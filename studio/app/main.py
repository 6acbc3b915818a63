"""The desktop app's composition root: QApplication, style, icon, excepthooks, the window.

``studio`` with no arguments calls :func:`run_app`; ``studio --smoke-test`` opens an offscreen
window in a temporary STUDIO_HOME, runs a 1-step demo job, exports it and exits 0 (used
against the frozen build).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QEvent
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from studio import __version__
from studio.logs import setup_logging
from studio.paths import resources_dir
from studio.service.generation import GenerationService
from studio.service.job_queue import JobQueue
from studio.service.settings import load_settings

from .dialogs import install_excepthooks
from .gc_guard import GuiThreadCollector
from .main_window import MainWindow
from .platform_check import check_xcb_libraries, format_message

log = logging.getLogger(__name__)

APP_ID = "io.github.flowstudio.FlowStudio"


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="studio", description="Flow Studio desktop app")
    parser.add_argument("--smoke-test", action="store_true",
                        help="offscreen: run a 1-step demo job, export it, exit 0 on success")
    parser.add_argument("--smoke-timeout", type=float, default=600.0,
                        help="seconds before the smoke test gives up (exit 2)")
    return parser.parse_known_args(argv)


def configure_application(app: QApplication) -> None:
    """Names, icon and style sheet (missing resources are logged, never fatal)."""
    app.setApplicationName("Flow Studio")
    app.setOrganizationName("Flow Studio")
    app.setApplicationVersion(__version__)
    app.setDesktopFileName(APP_ID)
    try:
        resources = resources_dir()
    except FileNotFoundError as exc:
        log.warning("%s", exc)
        return
    icon = resources / "icons" / "flow-studio.png"
    if icon.is_file():
        app.setWindowIcon(QIcon(str(icon)))
    style = resources / "style.qss"
    if style.is_file():
        icons = (resources / "icons").as_posix()
        app.setStyleSheet(style.read_text(encoding="utf-8").replace("%ICONS%", icons))


def build_window() -> MainWindow:
    """The window over the user's settings, a fresh service and the persistent queue."""
    settings = load_settings()
    return MainWindow(settings, GenerationService(settings), JobQueue())


def run_app(argv: list[str]) -> int:
    """Run the desktop app; returns the process exit code."""
    args, qt_args = parse_args(list(argv))
    smoke_home = None
    if args.smoke_test:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        if "STUDIO_HOME" not in os.environ:
            smoke_home = tempfile.mkdtemp(prefix="flow-studio-smoke-")
            os.environ["STUDIO_HOME"] = smoke_home
    setup_logging()
    # Qt aborts the process when its platform plugin cannot load, naming one library at best;
    # checking first lets the user see every missing library and the command that installs them.
    missing = check_xcb_libraries()
    if missing is not None:
        log.error("Qt's xcb platform plugin cannot load; missing %s", ", ".join(missing.sonames))
        sys.stderr.write(format_message(missing) + "\n")
        if smoke_home is not None:
            shutil.rmtree(smoke_home, ignore_errors=True)
        return 3
    app = QApplication.instance() or QApplication([sys.argv[0], *qt_args])
    configure_application(app)
    collector = GuiThreadCollector(app)
    collector.start()
    window = build_window()
    restore_hooks = install_excepthooks(window.reporter)
    try:
        window.show()
        window.start()
        if args.smoke_test:
            from .smoke import SmokeTest

            smoke = SmokeTest(window, Path(os.environ["STUDIO_HOME"]) / "smoke-export.mp4",
                              args.smoke_timeout)
            smoke.start()
        code = app.exec()
        if args.smoke_test:
            code = smoke.exit_code
    finally:
        restore_hooks()
        window.close()
        window.deleteLater()
        app.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)
        collector.stop()
        if smoke_home is not None:
            shutil.rmtree(smoke_home, ignore_errors=True)
    log.info("Flow Studio exits with %d", code)
    return code
