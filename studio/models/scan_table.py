"""Model sets as text: sizes in decimal units, a row per set, and the ``studio models scan``
table."""

from __future__ import annotations

from collections.abc import Iterable

from studio.models.family import ModelSet


def format_size(size: int) -> str:
    """Bytes in decimal units: "508 MB", "5.7 GB"."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if value >= 100 or unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def set_row(model_set: ModelSet) -> dict[str, str]:
    """Display strings: id, name, family, variant, files, layout, dtype, size, complete,
    problems."""
    return {
        "id": model_set.id,
        "name": model_set.name or model_set.id,
        "family": model_set.family,
        "variant": model_set.variant,
        "files": "; ".join(f"{c.role}: {c.display(model_set.id)}" for c in model_set.components),
        "layout": ", ".join(dict.fromkeys(c.layout for c in model_set.components if c.layout)),
        "dtype": model_set.dtype,
        "size": format_size(model_set.size),
        "complete": "yes" if model_set.complete else "no",
        "problems": "; ".join(model_set.problems),
    }


_COLUMNS = ("FAMILY", "VARIANT", "ROLE / FILES", "LAYOUT", "DTYPE", "SIZE", "COMPLETE",
            "PROBLEMS")  # fmt: skip


def format_scan_table(sets: Iterable[ModelSet]) -> str:
    """A plain-text table for ``studio models scan``: one line per set, one per part, then its
    problems and notes in full."""
    rows: list[tuple[str, ...]] = []
    details: dict[int, list[str]] = {}
    for model_set in sets:
        count = len(model_set.problems)
        rows.append((model_set.family, model_set.variant, model_set.id, "", model_set.dtype,
                     format_size(model_set.size), "yes" if model_set.complete else "no",
                     f"{count}" if count else "-"))  # fmt: skip
        owners: dict[object, str] = {}
        for c in model_set.components:
            owner = next((owners[f] for f in c.files if f in owners), None)
            size = f"in {owner}'s file" if owner and not c.size else format_size(c.size)
            owners.update({f: c.role for f in c.files if f not in owners})
            rows.append(("", "", f"  {c.role}: {c.display(model_set.id)}", c.layout, c.dtype,
                         size, "", ""))  # fmt: skip
        details[len(rows) - 1] = [f"    problem: {p}" for p in model_set.problems] + [
            f"    note: {n}" for n in model_set.notes
        ]
    if not rows:
        return "no model sets found"
    widths = [max(len(row[i]) for row in (*rows, _COLUMNS)) for i in range(len(_COLUMNS))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(_COLUMNS, widths, strict=True)).rstrip()]
    for i, row in enumerate(rows):
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        lines.extend(details.get(i, []))
    return "\n".join(lines)
