"""Lay out benchmark results: a plain-text table for the terminal, JSON for files."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.media.atomic import atomic_write_json


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table: a section ("denoiser step"), what was measured, and figures."""

    section: str
    item: str
    time: str = ""
    memory: str = ""
    note: str = ""


def seconds(value: float | None) -> str:
    if value is None:
        return ""
    if value < 1e-3:
        return f"{value * 1e6:.0f} µs"
    if value < 1.0:
        return f"{value * 1e3:.1f} ms"
    return f"{value:.2f} s"


def size(value: int | None) -> str:
    if value is None:
        return ""
    if value >= 2**30:
        return f"{value / 2**30:.2f} GiB"
    return f"{value / 2**20:.1f} MiB"


def ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}×"


def format_table(title: str, rows: Sequence[Row]) -> str:
    """Rows as aligned columns under a title line."""
    header = Row("section", "measured", "time", "memory", "notes")
    cells = [(r.section, r.item, r.time, r.memory, r.note) for r in (header, *rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    lines = [title]
    for n, c in enumerate(cells):
        lines.append("  ".join([c[0].ljust(widths[0]), c[1].ljust(widths[1]),
                                c[2].rjust(widths[2]), c[3].rjust(widths[3]), c[4]]).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths) + "  -----")
    return "\n".join(lines)


def write_json(path: Path, result: dict[str, Any]) -> None:
    """Write the results atomically (temp file beside the target, then rename)."""
    atomic_write_json(path, result)
