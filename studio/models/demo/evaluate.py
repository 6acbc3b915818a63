"""Evaluate the demo model on held-out prompts: colour, direction, first frame, stability.

Text-to-video: every held-out prompt is generated through the engine's pipeline and the clip is
measured with :mod:`studio.models.demo.analysis` (shape colour, centroid motion, area variation).
Image-to-video: for a few prompts the first frame of the matching procedural clip is given as a
reference (``ConditioningItem(frame_index=0, strength=1)``) and output frame 0 is compared with it
(PSNR, dB).
"""

from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np

from studio.engine.model import LoadedModel
from studio.engine.pipeline import generate
from studio.engine.request import ConditioningItem, GenerationRequest
from studio.models.demo.analysis import analyse_clip, psnr
from studio.models.demo.data import Example, evaluation_examples, render

log = logging.getLogger(__name__)

TARGETS = {"colour": 0.90, "direction": 0.80, "first_frame_psnr": 30.0, "area_cv": 0.30}
"""Targets on 50 held-out prompts: accuracies (fractions), PSNR (dB), mean area variation."""


@dataclass(frozen=True, slots=True)
class PromptResult:
    """One generated clip and what was measured in it."""

    prompt: str
    image: bool
    want_colour: str
    want_direction: str
    got_colour: str
    got_direction: str
    area_cv: float
    first_frame_psnr: float | None

    @property
    def colour_ok(self) -> bool:
        return self.got_colour == self.want_colour

    @property
    def direction_ok(self) -> bool:
        return self.got_direction == self.want_direction


@dataclass(frozen=True, slots=True)
class EvalReport:
    """Aggregated metrics over the prompts (text-to-video and image-to-video runs together).

    Attributes:
        colour_accuracy / direction_accuracy: fractions of clips with the asked colour/direction.
        first_frame_psnr: mean PSNR (dB) of output frame 0 vs the reference, image runs only.
        area_cv: mean coefficient of variation of the shape's area (clips without a shape in
            every frame count as 1.0).
        steps, guidance, seed: the generation settings used.
        results: per-clip results.
    """

    colour_accuracy: float
    direction_accuracy: float
    first_frame_psnr: float
    area_cv: float
    steps: int
    guidance: float
    seed: int
    results: tuple[PromptResult, ...]

    def passed(self) -> dict[str, bool]:
        """Whether each target in :data:`TARGETS` is met."""
        return {
            "colour": self.colour_accuracy >= TARGETS["colour"],
            "direction": self.direction_accuracy >= TARGETS["direction"],
            "first_frame_psnr": self.first_frame_psnr >= TARGETS["first_frame_psnr"],
            "area_cv": self.area_cv <= TARGETS["area_cv"],
        }

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["results"] = [asdict(r) for r in self.results]
        data["passed"] = self.passed()
        return _finite(data)


def _finite(value: Any) -> Any:
    """Replace non-finite floats by None so the dict is valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def evaluate_demo(
    model: LoadedModel,
    n_prompts: int = 50,
    *,
    steps: int | None = None,
    guidance: float | None = None,
    seed: int = 0,
    n_image: int = 10,
) -> EvalReport:
    """Generate ``n_prompts`` held-out prompts (text only) and ``n_image`` with a first frame.

    Generation goes through :func:`studio.engine.pipeline.generate` with the model's defaults for
    shift, size, frames and fps; ``steps`` and ``guidance`` default to the model's too.
    """
    steps = steps or model.defaults.steps
    guidance = model.defaults.guidance if guidance is None else guidance
    examples = evaluation_examples(max(n_prompts, n_image))
    results = []
    with tempfile.TemporaryDirectory(prefix="demo-eval-") as tmp:
        for i, example in enumerate(examples[:n_prompts]):
            results.append(_run(model, example, steps, guidance, seed + i, None))
        for i, example in enumerate(examples[:n_image]):
            reference = Path(tmp) / f"ref{i}.png"
            iio.imwrite(reference, render(example.spec)[0])
            results.append(_run(model, example, steps, guidance, seed + i, reference))
    return summarise(results, steps, guidance, seed)


def _run(
    model: LoadedModel,
    example: Example,
    steps: int,
    guidance: float,
    seed: int,
    reference: Path | None,
) -> PromptResult:
    conditioning = (ConditioningItem(str(reference), 0, 1.0),) if reference else ()
    request = GenerationRequest(
        prompt=example.caption,
        seed=seed,
        steps=steps,
        guidance=guidance,
        shift=model.defaults.shift,
        width=model.defaults.sizes[0][0],
        height=model.defaults.sizes[0][1],
        frames=model.defaults.frames,
        fps=model.defaults.fps,
        conditioning=conditioning,
        model=model.id,
    )
    video = generate(model, request).video
    assert video is not None
    found = analyse_clip(video)
    frame_psnr = psnr(video[0], iio.imread(reference)) if reference else None
    log.debug("%s → %s %s", example.caption, found.colour, found.direction)
    return PromptResult(
        prompt=example.caption,
        image=reference is not None,
        want_colour=example.spec.colour,
        want_direction=example.spec.direction,
        got_colour=found.colour,
        got_direction=found.direction,
        area_cv=found.area_cv,
        first_frame_psnr=frame_psnr,
    )


def summarise(results: list[PromptResult], steps: int, guidance: float, seed: int) -> EvalReport:
    """Aggregate per-clip results into an :class:`EvalReport`."""
    n = max(len(results), 1)
    psnrs = [r.first_frame_psnr for r in results if r.first_frame_psnr is not None]
    return EvalReport(
        colour_accuracy=sum(r.colour_ok for r in results) / n,
        direction_accuracy=sum(r.direction_ok for r in results) / n,
        first_frame_psnr=float(np.mean(np.minimum(psnrs, 99.0))) if psnrs else float("nan"),
        area_cv=float(np.mean([min(r.area_cv, 1.0) for r in results])) if results else 1.0,
        steps=steps,
        guidance=guidance,
        seed=seed,
        results=tuple(results),
    )


def format_report(report: EvalReport) -> str:
    """A plain-text table: one line per clip, then the metrics against their targets."""
    lines = [f"{'prompt':<70} {'i2v':>3} {'colour':>14} {'direction':>14} {'area cv':>7}"]
    for r in report.results:
        colour = f"{r.got_colour or '-'}{'' if r.colour_ok else '≠' + r.want_colour}"
        direction = f"{r.got_direction or '-'}{'' if r.direction_ok else '≠' + r.want_direction}"
        lines.append(
            f"{r.prompt[:70]:<70} {'yes' if r.image else '':>3} {colour:>14} {direction:>14} "
            f"{min(r.area_cv, 9.99):7.3f}"
        )
    passed = report.passed()
    rows = [
        ("colour accuracy", f"{report.colour_accuracy:.1%}",
         f"≥ {TARGETS['colour']:.0%}", "colour"),
        ("direction accuracy", f"{report.direction_accuracy:.1%}",
         f"≥ {TARGETS['direction']:.0%}", "direction"),
        ("first-frame PSNR", f"{report.first_frame_psnr:.1f} dB",
         f"≥ {TARGETS['first_frame_psnr']:.0f} dB", "first_frame_psnr"),
        ("area variation", f"{report.area_cv:.1%}", f"≤ {TARGETS['area_cv']:.0%}", "area_cv"),
    ]  # fmt: skip
    lines.append("")
    lines.append(f"steps {report.steps}, guidance {report.guidance}, seed {report.seed}")
    for name, value, target, key in rows:
        lines.append(
            f"{name:<20} {value:>10}  target {target:<8} {'ok' if passed[key] else 'MISSED'}"
        )
    return "\n".join(lines)
