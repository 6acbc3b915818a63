"""App test fixtures: ``make_window`` builds the real window over the tiny analytic model."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PySide6.QtCore import QEvent, QObject, QTimer, Slot
from PySide6.QtWidgets import QApplication

from studio.app.gc_guard import GuiThreadCollector
from studio.app.main_window import MainWindow
from studio.errors import CheckpointError
from studio.service.catalog import ModelCache
from studio.service.generation import GenerationService
from studio.service.job_queue import JobQueue
from studio.service.model_info import ModelRow, model_rows
from studio.service.settings import Settings

from .tiny_family import tiny_model

log = logging.getLogger("tests.app")

MEASUREMENTS: list[str] = []
"""Lines printed after the run (``pytest_terminal_summary``), whatever the capture mode."""


def pytest_terminal_summary(terminalreporter) -> None:
    if MEASUREMENTS:
        terminalreporter.section("Flow Studio app measurements")
        for line in MEASUREMENTS:
            terminalreporter.line(line)


TINY_ROW = ModelRow(id="tiny", name="Tiny analytic model", family="tiny", variant="analytic",
                    size_bytes=0, precision="F32", complete=True, problems=())
BROKEN_ROW = ModelRow(id="/models/wan-broken", name="wan-broken", family="wan",
                      variant="t2v-1.3b", size_bytes=2_840_000_000, precision="BF16",
                      complete=False, problems=("no VAE found", "text encoder width 2048 ≠ 4096"))


@dataclass(frozen=True)
class TinySet:
    """The catalogue entry the cache's finder hands out (the registry's ModelSet, in small)."""

    id: str = "tiny"
    family: str = "tiny"
    variant: str = "analytic"
    complete: bool = True
    problems: tuple[str, ...] = ()

    def all_files(self) -> list[Path]:
        return []


@dataclass
class Outcome:
    """How a job ended: "finished", "failed" or "cancelled", and the signal's payload."""

    kind: str = ""
    job_id: str = ""
    payload: object = None
    progress_steps: list[int] = field(default_factory=list)


def run_job(qtbot, window: MainWindow, trigger: Callable[[], None] | None = None,
            timeout_ms: int = 60_000) -> Outcome:
    """Arm the waits, trigger a job (default: ``window.generate``) and wait until it ended."""
    c = window.controller
    outcome = Outcome()

    def ended(kind: str):
        return lambda job_id, payload=None: (setattr(outcome, "kind", kind),
                                             setattr(outcome, "job_id", job_id),
                                             setattr(outcome, "payload", payload))

    c.job_finished.connect(ended("finished"))
    c.job_failed.connect(ended("failed"))
    c.job_cancelled.connect(ended("cancelled"))
    c.progress.connect(lambda p: outcome.progress_steps.append(p.step))
    with qtbot.waitSignal(c.busy_changed, check_params_cb=lambda busy: not busy,
                          timeout=timeout_ms):
        (trigger or window.generate)()
    return outcome


class StallMeter(QObject):
    """Measures the longest gap between ticks of a 10 ms timer on the GUI thread."""

    def __init__(self) -> None:
        super().__init__()
        self.ticks = 0
        self.longest_gap_s = 0.0
        self._last = 0.0
        self._timer = QTimer(self)
        self._timer.setInterval(10)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    @Slot()
    def _tick(self) -> None:
        now = time.perf_counter()
        self.longest_gap_s = max(self.longest_gap_s, now - self._last)
        self._last = now
        self.ticks += 1


@pytest.fixture
def make_window(qtbot, tmp_path: Path) -> Iterator[Callable[..., MainWindow]]:
    """Factory: ``make_window(step_delay_s=0.0, rows=(TINY_ROW,), load=True)``.

    Builds the window over a fresh STUDIO_HOME with the tiny analytic model injected into the
    model cache, shows it, and (``load``) waits for the model. On teardown the window is closed,
    the worker thread must have ended and no top-level widget may be left visible.
    """
    windows: list[MainWindow] = []
    collector = GuiThreadCollector()
    collector.start()

    def factory(step_delay_s: float = 0.0, rows: tuple[ModelRow, ...] = (TINY_ROW,),
                load: bool = True, settings: Settings | None = None) -> MainWindow:
        """``settings`` given: the real catalogue and loaders over those settings."""
        model = tiny_model(step_delay_s=step_delay_s)

        def finder(_settings: Settings, model_id: str) -> TinySet:
            if model_id not in ("", "tiny"):
                raise CheckpointError(f"no model set was found in {model_id}",
                                      "point to a folder with a Wan checkpoint")
            return TinySet()

        if settings is None:
            settings = Settings(output_dir=str(tmp_path / "outputs"), default_model="tiny")
            cache = ModelCache(settings, finder=finder,
                               loader=lambda _set, _device, _cancel, **_kwargs: model)
            catalog = lambda _s: list(rows)  # noqa: E731
        else:
            cache, catalog = ModelCache(settings), model_rows
        service = GenerationService(settings, cache)
        window = MainWindow(settings, service, JobQueue(), catalog=catalog)
        window.test_model = model  # the tests reach the tiny model's parts through this
        windows.append(window)
        window.show()
        qtbot.waitExposed(window)
        if load:
            with qtbot.waitSignal(window.controller.model_loaded, timeout=20_000):
                window.start()
        return window

    yield factory
    for window in windows:
        window.close()
        assert window.controller.stopped, "the worker thread is still running"
        window.deleteLater()
    qtbot.wait(1)
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)
    collector.stop()
    leaked = [w for w in QApplication.topLevelWidgets() if w.isVisible()]
    assert not leaked, f"top-level widgets left open: {leaked}"
