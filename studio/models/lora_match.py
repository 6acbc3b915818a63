"""Match a LoRA file against a family's denoiser: the compatibility report and the deltas.

The targets are the denoiser's parameters (name → shape, in the family's own layout), read
from the checkpoint's headers before anything is loaded, so the report can be shown before
Generate. Each module named in the file is resolved in this order: as written; through the
family's translation of other layouts (diffusers names for Wan); for kohya files, through the
model's module names with dots written as underscores. A LoRA is **refused** when nothing in it
matches (made for another family) or when a matched module has another shape (made for
another variant of the family); modules that match nothing are reported and skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from studio.engine.lora import WeightDelta
from studio.models.lora_file import LoraFile, ModulePieces

Translate = Callable[[str], "str | None"]
#: Words that mark a step-distillation LoRA in a file name or its metadata (lower case).
DISTILL_WORDS = ("lightx2v", "lightning", "distill", "causvid", "4step", "4-step", "4_step",
                 "8step", "turbo", "lcm")


@dataclass(slots=True)
class KindCount:
    matched: int = 0
    unmatched: int = 0


@dataclass(slots=True)
class LoraReport:
    """What a LoRA changes in one model, shown before Generate.

    Attributes:
        file: the LoRA's file name.
        model: the model it was matched against (name shown to the user).
        format: the key format found (see :mod:`studio.models.lora_file`).
        ranks: the low-rank factors' ranks (empty for full deltas only).
        kinds: module kind ("blocks.N.self_attn.q") → matched / unmatched counts.
        unmatched: module names that match nothing in the model (skipped).
        mismatched: "name: file shape vs model shape" for modules with the wrong shape.
        unsupported: keys of adapter kinds the studio does not apply.
        problem: why the LoRA is refused ("" when it can be used).
        few_step: it looks like a step-distillation LoRA, and why ("" when not).
        applies_to: which part of a two-expert model it changes, in words ("" with one DiT).
    """

    file: str
    model: str
    format: str
    ranks: list[int] = field(default_factory=list)
    kinds: dict[str, KindCount] = field(default_factory=dict)
    unmatched: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    problem: str = ""
    few_step: str = ""
    applies_to: str = ""

    @property
    def matched(self) -> int:
        return sum(k.matched for k in self.kinds.values())

    def lines(self) -> list[str]:
        """The report as text lines (CLI and GUI)."""
        ranks = ", ".join(map(str, self.ranks)) or "-"
        out = [f"{self.file} on {self.model}: {self.format}, rank {ranks}; "
               f"{self.matched} modules matched, {len(self.unmatched)} not"]
        out += [f"  {kind}: {c.matched} matched" + (f", {c.unmatched} not" if c.unmatched else "")
                for kind, c in sorted(self.kinds.items())]
        if self.unmatched:
            out.append(f"  not in this model (skipped): {_few(self.unmatched)}")
        if self.unsupported:
            out.append(f"  other adapter keys (not applied): {_few(self.unsupported)}")
        if self.applies_to:
            out.append(f"  applies to: {self.applies_to}")
        if self.few_step:
            out.append(f"  step-distillation LoRA ({self.few_step}): few-step settings offered")
        if self.problem:
            out.append(f"  REFUSED: {self.problem}")
        return out


@dataclass(slots=True)
class MatchedLora:
    """The report, the deltas, and the denoiser parts they go to (``"dit"``; an A14B's
    ``"dit_low"`` too)."""

    report: LoraReport
    deltas: list[WeightDelta]
    parts: tuple[str, ...] = ("dit",)


def match_lora(lora: LoraFile, targets: Mapping[str, tuple[int, ...]], model: str,
               translate: Translate) -> MatchedLora:
    """Resolve every module of ``lora`` in ``targets`` (parameter name → shape)."""
    report = LoraReport(file=lora.path.name, model=model, format=lora.format, ranks=lora.ranks,
                        unsupported=list(lora.unsupported), few_step=few_step_reason(lora))
    modules = {name.rsplit(".", 1)[0] for name in targets if "." in name}
    underscored = {m.replace(".", "_"): m for m in modules}
    deltas: list[WeightDelta] = []
    for name, pieces in lora.modules.items():
        internal = _resolve(name, lora.kohya, modules, underscored, translate)
        kind = _kind(internal or name)
        count = report.kinds.setdefault(kind, KindCount())
        found = _deltas(internal, pieces, targets, lora.peft_scale) if internal else None
        if found is None:
            count.unmatched += 1
            report.unmatched.append(name)
            continue
        made, wrong = found
        report.mismatched.extend(wrong)
        deltas.extend(made)
        count.matched += 1
    report.problem = _problem(report, len(lora.modules))
    return MatchedLora(report, deltas)


def few_step_reason(lora: LoraFile) -> str:
    """Why ``lora`` looks like a step-distillation LoRA ("" when it does not)."""
    texts = [lora.path.name.lower(), *(v.lower()[:2000] for v in lora.metadata.values())]
    for word in DISTILL_WORDS:
        if any(word in text for text in texts):
            return f"{word!r} in its name or metadata"
    return ""


def _resolve(name: str, kohya: bool, modules: set[str], underscored: Mapping[str, str],
             translate: Translate) -> str | None:
    if kohya:
        return underscored.get(name) or underscored.get(name.replace(".", "_"))
    if name in modules:
        return name
    translated = translate(name)
    return translated if translated in modules else None


def _deltas(module: str, pieces: ModulePieces, targets: Mapping[str, tuple[int, ...]],
            peft_scale: float | None) -> tuple[list[WeightDelta], list[str]] | None:
    """The deltas for one module and the shape mismatches (None: no piece fits a parameter)."""
    made: list[WeightDelta] = []
    wrong: list[str] = []
    for parameter, delta, shape in _candidates(module, pieces, peft_scale):
        if parameter not in targets:
            continue
        expected = targets[parameter]
        if not _fits(shape, expected):
            wrong.append(f"{parameter}: the LoRA has {_dims(shape)}, the model {_dims(expected)}")
        else:
            made.append(delta)
    return (made, wrong) if made or wrong else None


def _candidates(module: str, pieces: ModulePieces, peft_scale: float | None
                ) -> list[tuple[str, WeightDelta, tuple[int, ...]]]:
    """(parameter, delta, the shape the delta implies) for each piece present."""
    out = []
    if pieces.down is not None and pieces.up is not None:
        rank = pieces.down.shape[0]
        scale = pieces.alpha / rank if pieces.alpha is not None else (peft_scale or 1.0)
        shape = (pieces.up.shape[0], *pieces.down.shape[1:])
        out.append((f"{module}.weight", WeightDelta(f"{module}.weight", up=pieces.up,
                                                    down=pieces.down, scale=scale), shape))
    for piece, parameter in (("diff", "weight"), ("diff_b", "bias"), ("diff_m", "modulation")):
        tensor = getattr(pieces, piece)
        if tensor is not None:
            name = f"{module}.{parameter}"
            out.append((name, WeightDelta(name, full=tensor), tuple(tensor.shape)))
    return out


def _fits(shape: tuple[int, ...], expected: tuple[int, ...]) -> bool:
    """Same shape, allowing the singleton axes trainers add or drop (conv kernels, [1, 6, D])."""
    squeeze = [d for d in shape if d != 1]
    return squeeze == [d for d in expected if d != 1]


def _problem(report: LoraReport, total: int) -> str:
    if report.mismatched:
        return (f"made for another variant: {report.mismatched[0]}"
                + (f" (and {len(report.mismatched) - 1} more)" if len(report.mismatched) > 1
                   else ""))
    if report.matched == 0:
        return (f"made for another model: none of its {total} modules exists in "
                f"{report.model} (it names e.g. {_few(report.unmatched, 2)})")
    return ""


def _kind(name: str) -> str:
    """``blocks.7.ffn.0`` → ``blocks.N.ffn.0``: the repeated block's index only."""
    return re.sub(r"\.\d+\.", ".N.", name, count=1)


def _dims(shape: tuple[int, ...]) -> str:
    return "×".join(map(str, shape)) or "a scalar"


def _few(items: list[str], limit: int = 3) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")

