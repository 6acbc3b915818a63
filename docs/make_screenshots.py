"""Take the README screenshots of the real window, offscreen.

    python docs/make_screenshots.py                 # the demo model, into docs/screenshots/
    python docs/make_screenshots.py --model /models/Wan2.1-T2V-1.3B --out /tmp/shots

Shots: ``main-window.png`` (idle, ready to generate), ``generating.png`` (mid-run with the live
preview and the current step on the schedule), ``reference-frame.png`` (a soft reference frame
and where it starts denoising), ``result.png`` (the finished video in the player),
``history.png`` (the history gallery after three jobs). ``--only history.png`` writes just that
one. Runs in a temporary STUDIO_HOME so the user's settings and queue are never touched.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "a red circle moving right on a white background"
MORE_PROMPTS = ("a blue square moving left on a white background",
                "a green circle moving down on a white background")
ONLY: set[str] = set()
"""Shots to write (empty: all)."""


def wait_for(signal, timeout_s: float, check=None):
    """Run the event loop until ``signal`` fires (and ``check(*args)`` holds); returns its args."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop, caught = QEventLoop(), []

    def on_signal(*args):
        if check is None or check(*args):
            caught.append(args)
            loop.quit()

    signal.connect(on_signal)
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()
    signal.disconnect(on_signal)
    if not caught:
        raise TimeoutError(f"no signal within {timeout_s} s")
    return caught[0]


def settle(ms: int = 150) -> None:
    """Let pending events (debounced redraws, queued signals) run."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def shoot(window, out: Path, name: str) -> None:
    settle()
    if ONLY and name not in ONLY:
        return
    path = out / name
    if not window.grab().save(str(path)):
        raise OSError(f"could not write {path}")
    print(f"wrote {path}")


def reference_image(path: Path) -> Path:
    """A simple reference frame: a red disc on white (what the demo model knows)."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QColor, QImage, QPainter

    image = QImage(256, 256, QImage.Format.Format_RGB888)
    image.fill(QColor("white"))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setBrush(QColor("#d62828"))
    painter.setPen(Qt.PenStyle.NoPen)
    painter.drawEllipse(40, 88, 80, 80)
    painter.end()
    image.save(str(path))
    return path


def shoot_history(window, out: Path) -> None:
    """Two more jobs, then the History tab with the newest selected."""
    from PySide6.QtWidgets import QDockWidget

    for seed, prompt in enumerate(MORE_PROMPTS, start=7):
        window.prompt_panel.prompt.setPlainText(prompt)
        window.prompt_panel.seed.setText(str(seed))
        window.generate()
        wait_for(window.result_shown, 600)
    from PySide6.QtCore import Qt

    dock = window.findChild(QDockWidget, "dock-history")
    dock.raise_()
    window.resizeDocks([dock], [420], Qt.Orientation.Vertical)
    view = window.history_view
    settle(300)
    view.select(view.model.job_at(0).id)
    wait_for(window.result_shown, 60)
    window.player.pause()
    window.player.seek(window.player.frame_count // 2)
    settle(500)
    shoot(window, out, "history.png")
    window.findChild(QDockWidget, "dock-schedule").raise_()


def take_screenshots(window, out: Path, model_id: str, steps: int) -> None:
    """Drive ``window`` (already shown) through the four shots."""
    c = window.controller
    window.start(model_id)
    info, _ = wait_for(c.model_loaded, 600)
    panel = window.prompt_panel
    panel.prompt.setPlainText(PROMPT)
    panel.seed.setText("1234")
    panel.seed_lock.setChecked(True)
    panel.steps.setValue(steps)
    shoot(window, out, "main-window.png")

    window.generate()
    wait_for(c.progress, 600, lambda p: p.step >= max(1, steps // 2))
    shoot(window, out, "generating.png")
    wait_for(window.result_shown, 600)
    window.player.pause()
    window.player.seek(window.player.frame_count // 2)
    shoot(window, out, "result.png")
    shoot_history(window, out)

    if info.supports_image:
        panel = window.reference_panel
        panel.load_path(str(reference_image(out.parent / ".reference.png")))
        wait_for(panel.changed, 60, lambda *_: bool(panel.rows))
        panel.rows[0].strength.setValue(0.7)
        shoot(window, out, "reference-frame.png")
        (out.parent / ".reference.png").unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="demo", help="model id (default: the demo model)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--size", default="1360x860", help="window size, WxH")
    parser.add_argument("--only", action="append", default=[],
                        help="write only this shot (repeatable), e.g. history.png")
    args = parser.parse_args(argv)
    ONLY.update(args.only)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    home = tempfile.mkdtemp(prefix="flow-studio-shots-")
    os.environ["STUDIO_HOME"] = home
    sys.path.insert(0, str(ROOT))
    from PySide6.QtWidgets import QApplication

    from studio.app.main import build_window, configure_application

    app = QApplication.instance() or QApplication(sys.argv[:1])
    configure_application(app)
    args.out.mkdir(parents=True, exist_ok=True)
    window = build_window()
    try:
        width, height = (int(v) for v in args.size.split("x"))
        window.resize(width, height)
        window.show()
        take_screenshots(window, args.out, args.model, args.steps)
    finally:
        window.close()
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
