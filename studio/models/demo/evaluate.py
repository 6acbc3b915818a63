"""Evaluate the demo model on held-out prompts: what a person sees in each clip.

Text-to-video: every held-out prompt is generated through the engine's pipeline and the clip is
measured with :mod:`studio.models.demo.analysis`: colour, direction, shape, background, whether
the shape stays whole, and all five together; also the area variation. Image-to-video: for a few
prompts the first frame of the matching procedural clip is given as a reference
(``ConditioningItem(frame_index=0, strength=1)``); output frame 0 is compared with it (PSNR, dB)
and the clip is measured the same way. The VAE's ceiling — the same properties after an encode →
decode of the rendered clips — judges the VAE apart from the DiT (docs/families/demo.md §5).
"""

from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
import torch

from studio.engine.model import LoadedModel
from studio.engine.pipeline import generate
from studio.engine.request import ConditioningItem, GenerationRequest
from studio.media.image import video_to_uint8
from studio.models.demo.analysis import analyse_clip, psnr
from studio.models.demo.data import Example, evaluation_examples, render

log = logging.getLogger(__name__)

TARGETS = {"colour": 0.90, "direction": 0.80, "first_frame_psnr": 30.0, "area_cv": 0.30}
"""Targets on 50 held-out prompts: accuracies (fractions), PSNR (dB), mean area variation."""
PROPERTIES = ("colour", "direction", "shape", "background", "whole", "all five")
"""What a person sees in a clip, scored per clip (docs/families/demo.md §5)."""


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
    want_shape: str = ""
    got_shape: str = ""
    want_background: str = ""
    got_background: str = ""
    whole: bool = False

    @property
    def colour_ok(self) -> bool:
        return self.got_colour == self.want_colour

    @property
    def direction_ok(self) -> bool:
        return self.got_direction == self.want_direction

    def checks(self) -> dict[str, bool]:
        """Each property a person sees, and all five together."""
        five = {"colour": self.colour_ok, "direction": self.direction_ok,
                "shape": self.got_shape == self.want_shape,
                "background": self.got_background == self.want_background, "whole": self.whole}
        return {**five, "all five": all(five.values())}  # fmt: skip


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
    vae_ceiling: dict[str, float] | None = None

    def properties(self, image: bool) -> dict[str, float]:
        """Share of text-to-video (or image-to-video) clips with each property right."""
        chosen = [r.checks() for r in self.results if r.image == image]
        return {name: sum(c[name] for c in chosen) / max(len(chosen), 1)
                for name in PROPERTIES}  # fmt: skip

    def shape_readings(self, image: bool) -> dict[str, dict[str, int]]:
        """For each asked shape, how often each shape was read in text-to-video (or
        image-to-video) clips: ``{asked: {read: count}}``, "none" when no shape was found."""
        table: dict[str, dict[str, int]] = {}
        for r in self.results:
            if r.image == image:
                row, read = table.setdefault(r.want_shape, {}), r.got_shape or "none"
                row[read] = row.get(read, 0) + 1
        return table

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
        data["properties"] = {"text_to_video": self.properties(image=False),
                              "image_to_video": self.properties(image=True)}  # fmt: skip
        data["shape_readings"] = {"text_to_video": self.shape_readings(image=False),
                                  "image_to_video": self.shape_readings(image=True)}  # fmt: skip
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
    report = summarise(results, steps, guidance, seed)
    return replace(report, vae_ceiling=vae_ceiling(model, examples[:n_prompts]))


def vae_ceiling(model: LoadedModel, examples: list[Example]) -> dict[str, float]:
    """Share of rendered clips whose properties survive the VAE's encode → decode."""
    checks = []
    for example in examples:
        pixels = torch.from_numpy(render(example.spec)).float().div(127.5).sub(1.0)
        video = pixels.permute(3, 0, 1, 2)[None].to(model.device)  # [1, 3, T, H, W]
        with torch.inference_mode():
            decoded = model.vae.decode(model.vae.encode(video))
        clip = video_to_uint8(decoded)
        checks.append(_result(example, clip, None, image=False).checks())
    return {name: sum(c[name] for c in checks) / max(len(checks), 1) for name in PROPERTIES}


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
    frame_psnr = psnr(video[0], iio.imread(reference)) if reference else None
    return _result(example, video, frame_psnr, image=reference is not None)


def _result(example: Example, video: np.ndarray, frame_psnr: float | None,
            image: bool) -> PromptResult:
    found = analyse_clip(video)
    log.debug("%s → %s %s %s", example.caption, found.colour, found.shape, found.direction)
    spec = example.spec
    return PromptResult(
        prompt=example.caption, image=image, want_colour=spec.colour,
        want_direction=spec.direction, got_colour=found.colour, got_direction=found.direction,
        area_cv=found.area_cv, first_frame_psnr=frame_psnr, want_shape=spec.shape,
        got_shape=found.shape, want_background=spec.background,
        got_background=found.background, whole=found.whole,
    )  # fmt: skip


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
    return "\n".join([*lines, "", *property_table(report), "", *shape_lines(report)])


def shape_lines(report: EvalReport) -> list[str]:
    """Which shape was read for each asked shape, so that one shape never drawn right (e.g.
    squares coming out with round corners, read as circles) shows instead of hiding in the
    average."""
    lines = []
    for image, kind in ((False, "text-to-video"), (True, "image-to-video")):
        for asked, row in sorted(report.shape_readings(image).items()):
            read = ", ".join(f"{name} {count}" for name, count in sorted(row.items()))
            lines.append(f"{kind}: asked {asked} ({sum(row.values())}), read as {read}")
    return lines


def property_table(report: EvalReport) -> list[str]:
    """What a person sees: each property's share, text-to-video, image-to-video and through the
    VAE alone (its ceiling)."""
    columns = {"text-to-video": report.properties(image=False),
               "image-to-video": report.properties(image=True)}  # fmt: skip
    if report.vae_ceiling is not None:
        columns["VAE round trip"] = report.vae_ceiling
    counts = (sum(not r.image for r in report.results), sum(r.image for r in report.results))
    lines = [f"{'property':<12}" + "".join(f"{name:>16}" for name in columns),
             f"{'(clips)':<12}{counts[0]:>16}{counts[1]:>16}"]  # fmt: skip
    for name in PROPERTIES:
        lines.append(f"{name:<12}" + "".join(f"{c[name]:>16.1%}" for c in columns.values()))
    return lines
