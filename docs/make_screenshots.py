"""Take the README screenshots of the real window, offscreen.

    python docs/make_screenshots.py                 # the demo model, into docs/screenshots/
    python docs/make_screenshots.py --model /models/Wan2.1-T2V-1.3B --out /tmp/shots

Shots: ``main-window.png`` (idle, ready to generate), ``generating.png`` (mid-run with the live
preview and the current step on the schedule), ``reference-frame.png`` (a soft reference frame
and where it starts denoising), ``result.png`` (the finished video in the player). Runs in a
temporary STUDIO_HOME so the user's settings and queue are never touched.
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

    if info.supports_image:
        window.reference_panel.load_path(str(reference_image(out.parent / ".reference.png")))
        wait_for(window.reference_panel.changed, 60)
        window.reference_panel.strength.setValue(0.7)
        shoot(window, out, "reference-frame.png")
        (out.parent / ".reference.png").unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="demo", help="model id (default: the demo model)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--size", default="1360x860", help="window size, WxH")
    args = parser.parse_args(argv)
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
