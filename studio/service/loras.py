"""LoRAs for a job: reports before Generate, hashing, refusals, and applying them.

A request names its LoRAs by path and strength. Before a job samples, each file is hashed (a
recipe's hash must match the file, so a reproduction uses the very same LoRA), read, and
matched against the model's denoiser; a refused LoRA stops the job before any loading with the
report's reason. The patch is then merged by the model cache or applied on the fly around the
sampling (:mod:`studio.engine.lora`); the recipe records which.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.engine.lora import (
    MERGE,
    ON_THE_FLY,
    DenoiserPatch,
    parts_on_the_fly,
    patch_fingerprint,
)
from studio.engine.model import FewStepPreset, LoadedModel
from studio.engine.request import GenerationRequest, LoraItem
from studio.errors import CheckpointError, StudioError
from studio.models.family import ModelSet
from studio.models.lora_file import read_lora
from studio.models.lora_match import LoraReport, MatchedLora, match_lora
from studio.models.registry import family
from studio.safe_files import require_regular_file
from studio.service.catalog import find_model
from studio.service.hashing import sha256_file
from studio.service.lora_apply import check_patch, denoiser_blocks, denoiser_modules
from studio.service.settings import Settings


@dataclass(slots=True)
class PreparedLoras:
    """A job's LoRAs, checked and ready to apply.

    Attributes:
        request: the request with every LoRA's sha256 filled in.
        patch: all their deltas with strengths, per denoiser part (fingerprint = files and
            strengths).
        reports: one per LoRA, in order.
    """

    request: GenerationRequest
    patch: DenoiserPatch
    reports: list[LoraReport] = field(default_factory=list)

    def record(self, applied: str) -> list[dict[str, Any]]:
        """What the recipe keeps about each LoRA (beside the request's path/strength/hash)."""
        return [{"file": item.path, "sha256": item.sha256, "strength": item.strength,
                 "applied": applied, "modules": report.matched,
                 "not_matched": len(report.unmatched), "few_step": report.few_step,
                 "applies_to": report.applies_to or "the denoiser"}
                for item, report in zip(self.request.loras, self.reports, strict=True)]


@dataclass(frozen=True, slots=True)
class LoraCheck:
    """A LoRA as the GUI shows it: its report (None when unreadable), the few-step settings it
    brings, and why it cannot be used ("" when it can)."""

    path: str
    report: LoraReport | None
    preset: FewStepPreset | None = None
    problem: str = ""

    @property
    def usable(self) -> bool:
        return not self.problem


def check_lora(settings: Settings, model_id: str, path: str) -> LoraCheck:
    """The report of ``path`` against the model ``model_id``; errors become ``problem``."""
    try:
        model_set = find_model(settings, model_id)
        report = lora_report(model_set, Path(path).expanduser())
    except StudioError as exc:
        return LoraCheck(path, None, problem=exc.message)
    return LoraCheck(path, report, few_step_preset(model_set, report), report.problem)


def lora_report(model_set: ModelSet, path: Path) -> LoraReport:
    """The compatibility report of the LoRA at ``path`` for ``model_set`` (no model loaded)."""
    return _matched(model_set, path).report


def few_step_preset(model_set: ModelSet, report: LoraReport) -> FewStepPreset | None:
    """The settings offered for a step-distillation LoRA (None when ``report`` is not one)."""
    return family(model_set.family).few_step_preset(model_set) if report.few_step else None


def prepare_loras(request: GenerationRequest, model_set: ModelSet) -> PreparedLoras | None:
    """Hash, read and match the request's LoRAs; None when it has none.

    Raises:
        CheckpointError: a file is missing, differs from the recipe's hash, or is refused.
    """
    if not request.loras:
        return None
    items, patch, reports = [], DenoiserPatch(), []
    for item in request.loras:
        path = Path(item.path).expanduser()
        digest = _checked_hash(path, item)
        matched = _matched(model_set, path)
        if matched.report.problem:
            raise CheckpointError(f"the LoRA {path} cannot be used: {matched.report.problem}",
                                  "remove it from the job, or load the model it was made for")
        for part in matched.parts:
            for delta in matched.deltas:
                patch.part(part).add(delta, float(item.strength))
        items.append(LoraItem(str(path), item.strength, digest))
        reports.append(matched.report)
    patch.fingerprint = patch_fingerprint([(i.sha256, i.strength) for i in items])
    return PreparedLoras(request.with_changes(loras=tuple(items)), patch, reports)


@contextmanager
def loras_applied(model: LoadedModel, loras: PreparedLoras | None, merged: str
                  ) -> Iterator[str]:
    """Apply ``loras`` around sampling unless the cache merged them (``merged`` = the merged
    patch's fingerprint); yields the mode used ("" without LoRAs)."""
    if loras is None:
        yield ""
        return
    if merged == loras.patch.fingerprint:
        yield MERGE
        return
    patch = loras.patch.moved(model.device)  # small factors: copied to the device once
    check_patch(model, patch)
    with parts_on_the_fly(denoiser_modules(model, patch), denoiser_blocks(model, patch), patch):
        yield ON_THE_FLY


def _checked_hash(path: Path, item: LoraItem) -> str:
    try:
        require_regular_file(path)
    except OSError as exc:
        raise CheckpointError(f"the LoRA {path} cannot be read ({exc})",
                              "check the path, or remove it from the job") from exc
    digest = sha256_file(path)
    if item.sha256 and item.sha256 != digest:
        raise CheckpointError(
            f"the LoRA {path} is not the file the recipe was made with (sha256 "
            f"{digest[:12]}…, the recipe has {item.sha256[:12]}…)",
            "put the original file at that path, or remove the LoRA's sha256 to use this one")
    return digest


def _matched(model_set: ModelSet, path: Path) -> MatchedLora:
    owner = family(model_set.family)
    targets = owner.lora_targets(model_set)
    if not targets:
        raise CheckpointError(f"{owner.title} models take no LoRAs",
                              "use a LoRA with a model family that has a DiT (Wan, demo)")
    lora = read_lora(path)
    model = model_set.name or f"{owner.title} {model_set.variant}"
    matched = match_lora(lora, targets, model, owner.lora_module_name)
    matched.parts, matched.report.applies_to = owner.lora_parts(model_set, path.name)
    return matched
