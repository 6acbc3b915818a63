"""Draw Flow Studio's icons: ``resources/icons/flow-studio.svg`` with a 256 px PNG rendered from
it, and the small arrow glyphs the style sheet uses for spin boxes and combo boxes.

The mark is the product's own picture: a shifted rectified-flow schedule (t = 1 → 0 over the
steps, time-shift α = 3) running from noise (scattered dots) into a play button.

    python packaging/make_icon.py            # rewrites both files
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ICONS = ROOT / "resources" / "icons"
SIZE = 256
SHIFT = 3.0
STEPS = 24


def shifted(t: float, alpha: float = SHIFT) -> float:
    """The SD3-style time shift α·t / (1 + (α − 1)·t)."""
    return alpha * t / (1.0 + (alpha - 1.0) * t)


def curve_points(left: float, top: float, width: float, height: float) -> list[tuple[float, float]]:
    """Schedule points (step → x, t → y) inside the given box."""
    points = []
    for i in range(STEPS + 1):
        t = shifted(1.0 - i / STEPS)
        points.append((left + width * i / STEPS, top + height * (1.0 - t)))
    return points


def noise_dots(count: int = 26, seed: int = 7) -> list[tuple[float, float, float]]:
    rng = random.Random(seed)
    return [(rng.uniform(40, 118), rng.uniform(150, 214), rng.uniform(3.0, 6.5))
            for _ in range(count)]


def make_svg() -> str:
    path = " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}"
                    for i, (x, y) in enumerate(curve_points(44, 44, 168, 150)))
    dots = "\n".join(
        f'  <circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="#4fc3f7" '
        f'fill-opacity="{0.25 + 0.5 * (x - 40) / 78:.2f}"/>' for x, y, r in noise_dots())
    header = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{SIZE}" height="{SIZE}" '
              'viewBox="0 0 256 256">')
    stroke = 'stroke-linecap="round" stroke-linejoin="round"'
    return f"""{header}
  <defs>
    <linearGradient id="bg" x1="0" y1="0" x2="1" y2="1">
      <stop offset="0" stop-color="#2a2e36"/>
      <stop offset="1" stop-color="#121316"/>
    </linearGradient>
    <linearGradient id="flow" x1="0" y1="0" x2="1" y2="0">
      <stop offset="0" stop-color="#4fc3f7"/>
      <stop offset="1" stop-color="#ffb74d"/>
    </linearGradient>
  </defs>
  <rect x="8" y="8" width="240" height="240" rx="52" fill="url(#bg)"/>
{dots}
  <path d="{path}" fill="none" stroke="url(#flow)" stroke-width="13" {stroke}/>
  <path d="M150,150 L150,214 L206,182 Z" fill="#f1f3f5" stroke="#f1f3f5" stroke-width="6" {stroke}/>
</svg>
"""


ARROW_COLOUR = "#aeb4bd"


def make_arrow(direction: str) -> str:
    """A 10 × 10 chevron pointing "up" or "down"."""
    points = "1,7 5,3 9,7" if direction == "up" else "1,3 5,7 9,3"
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10" viewBox="0 0 10 10">'
            f'<polyline points="{points}" fill="none" stroke="{ARROW_COLOUR}" stroke-width="1.6" '
            f'stroke-linecap="round" stroke-linejoin="round"/></svg>\n')


def render_png(svg_path: Path, png_path: Path, size: int = SIZE) -> None:
    """Render the SVG with QtSvg (offscreen, no display needed)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    QSvgRenderer(str(svg_path)).render(painter)
    painter.end()
    if not image.save(str(png_path), "PNG"):
        raise OSError(f"could not write {png_path}")
    del app


def main() -> int:
    ICONS.mkdir(parents=True, exist_ok=True)
    svg = ICONS / "flow-studio.svg"
    svg.write_text(make_svg(), encoding="utf-8")
    render_png(svg, ICONS / "flow-studio.png")
    for direction in ("up", "down"):
        (ICONS / f"arrow-{direction}.svg").write_text(make_arrow(direction), encoding="utf-8")
    print(f"wrote {svg}, {svg.with_suffix('.png')} and the arrow glyphs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
