"""Wan 2.2 A14B's two experts on disk: which DiT is the high-noise one, which the low-noise one,
and where the experts switch.

Published layouts (docs/families/wan.md §13): the original release keeps them in
``high_noise_model/`` and ``low_noise_model/``; diffusers in ``transformer/`` (high) and
``transformer_2/`` (low) with ``boundary_ratio`` in ``model_index.json``; single-file
repackagings name them ``…high_noise…`` and ``…low_noise…``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from studio.engine.model import DIT_LOW
from studio.media.json_file import read_small_json
from studio.models.family import Component

HIGH, LOW = "high", "low"
#: Folders that hold one expert (``transformer/`` is an expert only beside ``transformer_2/``).
EXPERT_FOLDERS = {"high_noise_model": HIGH, "low_noise_model": LOW, "transformer": HIGH,
                  "transformer_2": LOW}  # fmt: skip


def expert_of(dit: Component) -> str | None:
    """"high", "low" or None (no sign of being an expert) for a DiT component."""
    name = dit.path.name.lower()
    if "low_noise" in name:
        return LOW
    if "high_noise" in name:
        return HIGH
    return EXPERT_FOLDERS.get(dit.path.parent.name)


def claims_expert(dit: Component) -> bool:
    """Whether the DiT's own name or folder says it is one expert of a pair (a diffusers
    ``transformer/`` alone is an ordinary DiT)."""
    return expert_of(dit) is not None and dit.path.parent.name != "transformer"


def expert_pairs(dits: list[Component]) -> tuple[list[tuple[Component, Component]],
                                                 list[Component]]:
    """(high, low) pairs of matching experts, and the DiTs left alone."""
    highs = [d for d in dits if expert_of(d) == HIGH]
    lows = [d for d in dits if expert_of(d) == LOW]
    pairs = []
    for high in highs:
        matching = [d for d in lows if _same_shape(high, d)]
        # Named partner first: a ComfyUI folder may hold the fp16 and the fp8 pair side by side.
        low = next((d for d in matching if _named_partner(high, d)), None) or next(
            iter(matching), None)
        if low is not None:
            lows.remove(low)
            pairs.append((high, low))
    paired = {id(d) for pair in pairs for d in pair}
    return pairs, [d for d in dits if id(d) not in paired]


def as_low_expert(dit: Component) -> Component:
    """The low-noise expert's component (its own role, so a set can hold both DiTs)."""
    return replace(dit, role=DIT_LOW)


def boundary_in(root: Path) -> float | None:
    """``boundary_ratio`` from a diffusers ``model_index.json`` in ``root`` (None: absent or
    not a number in (0, 1))."""
    index = read_small_json(root / "model_index.json") if (root / "model_index.json").is_file() \
        else None
    value = index.get("boundary_ratio") if isinstance(index, dict) else None
    ok = isinstance(value, int | float) and not isinstance(value, bool) and 0.0 < value < 1.0
    return float(value) if ok else None


def _named_partner(high: Component, low: Component) -> bool:
    """Whether ``low``'s file is ``high``'s with ``high_noise`` → ``low_noise`` (same folder)."""
    partner = high.path.name.lower().replace("high_noise", "low_noise", 1)
    return low.path.parent == high.path.parent and low.path.name.lower() == partner


def _same_shape(a: Component, b: Component) -> bool:
    return (a.channels, a.context_dim, a.variant) == (b.channels, b.context_dim, b.variant)
