"""Plain-data facts about a loaded model for the desktop app, and size checks as you type.

The GUI thread never touches a :class:`~studio.engine.model.LoadedModel` (it holds tensors).
The worker turns one into a :class:`ModelInfo` — strings, numbers and the model's
:class:`~studio.engine.shapes.LatentGeometry` — which the prompt panel uses for its defaults,
size presets and validation.
"""

from __future__ import annotations

from dataclasses import dataclass

from studio.engine.memory_model import ModelMemory
from studio.engine.model import LoadedModel, ScheduleRule, ShiftRule
from studio.engine.request import GenerationRequest
from studio.engine.shapes import LatentGeometry
from studio.models.family import ModelSet
from studio.models.scan_table import set_row
from studio.service.catalog import list_models
from studio.service.settings import Settings


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What the app needs to know about a loaded model.

    Attributes:
        id, name, family, variant: identity (``id`` is what requests name).
        geometry: pixel ↔ latent arithmetic (valid frame counts and sizes).
        steps, guidance, shift, fps, frames: the model's defaults (shift is a number or "auto").
        sizes: (width, height) presets the model was trained for; the first is the default.
        negative_prompt: the default negative prompt ("" = none).
        supports_image: whether reference frames are meaningful for this model.
        conditioning: the reference modes it takes (``FIRST_FRAME``, ``KEYFRAME``).
        sampler: the sampler its published settings use.
        schedule_rule: what shift "auto" means for a model with its own scheduler (plain data:
            a frozen dataclass; None: the shift rule's time-shifted linear schedule).
        frame_layout: whether later keyframes are sampled as appended latent frames.
        shift_rule: what shift "auto" resolves to (plain data: a frozen dataclass).
        prompt_guide: what a closed-vocabulary model understands ("" for others).
        device: "cpu" or "cuda"; precision: e.g. "float32", "bfloat16".
        memory: what the memory forecast needs (plain numbers; None for families without
            a memory model) — pass the info to :func:`studio.service.forecast.forecast_request`.
        offload: the offload policy the model runs under ("none" without a GPU).
        guidance_low: a two-expert model's default low-noise guidance (None: one DiT).
        expert_boundary: t where a two-expert model switches experts (None: one DiT).
        guidance_image: the default image guidance of a model that has one (None: none).
        oscillation: the guidance oscillation the model was tuned with (() for models
            without oscillating guidance).
        prompt_suffix: what the model's training appended to every prompt ("" = none).
        timesteps: the explicit schedule a distilled model is run with (None: from steps).
        stg / stg_rescale: default spatio-temporal guidance and its rescale (None: the model
            has none).
        reference_noise: default noise on pinned reference positions (0 = none).
        prompt_examples: prompts that show what the model does well (the panel's Examples).
        vocabulary: every word a closed-vocabulary model knows, lower case (None: an open
            vocabulary); the panel marks the other words of a prompt.
    """

    id: str
    name: str
    family: str
    variant: str
    geometry: LatentGeometry
    steps: int
    guidance: float
    shift: float | str
    fps: float
    frames: int
    sizes: tuple[tuple[int, int], ...]
    negative_prompt: str
    supports_image: bool
    device: str
    precision: str
    memory: ModelMemory | None = None
    offload: str = "none"
    shift_rule: ShiftRule | None = None
    prompt_guide: str = ""
    guidance_low: float | None = None
    expert_boundary: float | None = None
    guidance_image: float | None = None
    oscillation: tuple[str, ...] = ()
    prompt_suffix: str = ""
    timesteps: tuple[float, ...] | None = None
    stg: float | None = None
    stg_rescale: float | None = None
    reference_noise: float = 0.0
    conditioning: tuple[str, ...] = ()
    sampler: str = "euler"
    prompt_examples: tuple[str, ...] = ()
    vocabulary: frozenset[str] | None = None
    schedule_rule: ScheduleRule | None = None
    frame_layout: bool = False


def model_info(model: LoadedModel) -> ModelInfo:
    """Copy the plain facts out of a loaded model (call on the thread that loaded it)."""
    d = model.defaults
    return ModelInfo(
        id=model.id,
        name=model.name,
        family=model.family,
        variant=model.variant,
        geometry=model.geometry,
        steps=int(d.steps),
        guidance=float(d.guidance),
        shift=d.shift if d.shift == "auto" else float(d.shift),
        fps=float(d.fps),
        frames=int(d.frames),
        sizes=tuple((int(w), int(h)) for w, h in d.sizes),
        negative_prompt=d.negative_prompt,
        supports_image=bool(model.supports_image),
        device=model.device.type,
        precision=str(model.dtype).removeprefix("torch."),
        memory=model.memory,
        offload=model.offload,
        shift_rule=model.capabilities.shift_rule,
        prompt_guide=model.prompt_guide,
        guidance_low=d.guidance_low if model.experts is not None else None,
        expert_boundary=model.experts.boundary if model.experts is not None else None,
        guidance_image=None if d.guidance_image is None else float(d.guidance_image),
        oscillation=tuple(d.oscillation),
        prompt_suffix=d.prompt_suffix,
        timesteps=None if d.timesteps is None else tuple(float(t) for t in d.timesteps),
        stg=None if d.stg is None else float(d.stg),
        stg_rescale=None if d.stg_rescale is None else float(d.stg_rescale),
        reference_noise=float(d.reference_noise),
        conditioning=tuple(model.capabilities.conditioning),
        sampler=d.sampler,
        schedule_rule=model.schedule_rule,
        frame_layout=model.capabilities.frame_layout,
        prompt_examples=tuple(model.prompt_examples),
        vocabulary=None if model.vocabulary is None else frozenset(model.vocabulary),
    )


def default_request(info: ModelInfo, prompt: str = "") -> GenerationRequest:
    """A request with the model's default settings (not validated: the prompt may be empty).

    A model's own options (image guidance, oscillation, prompt suffix, explicit timesteps,
    STG, reference noise) are filled only for models that have them; others leave them None,
    the model's default. With explicit timesteps, ``steps`` is their count.
    """
    width, height = info.sizes[0]
    steps = len(info.timesteps) if info.timesteps is not None else info.steps
    return GenerationRequest(
        prompt=prompt, steps=steps, guidance=info.guidance, shift=info.shift, width=width,
        height=height, frames=info.frames, fps=info.fps, model=info.id,
        guidance_low=info.guidance_low, guidance_image=info.guidance_image,
        oscillation=info.oscillation or None, prompt_suffix=info.prompt_suffix or None,
        timesteps=info.timesteps, stg=info.stg, stg_rescale=info.stg_rescale,
        reference_noise=info.reference_noise or None, sampler=info.sampler,
    )


@dataclass(frozen=True, slots=True)
class SizeProblem:
    """One invalid size field, with the valid values nearest to what was typed.

    Attributes:
        field: "width", "height" or "frames".
        value: what was typed.
        message: what is wrong, in words.
        choices: the nearest valid values (one or two, ascending).
    """

    field: str
    value: int
    message: str
    choices: tuple[int, ...]


def size_problems(
    geometry: LatentGeometry, width: int, height: int, frames: int
) -> list[SizeProblem]:
    """Every invalid field of (width, height, frames) for a model; empty when all are valid.

    Uses the same rules as :meth:`LatentGeometry.check_video_size` (frames = 1 + r·k, sides
    multiples of s·p), but reports each field separately so the editor can offer fixes.
    """
    problems: list[SizeProblem] = []
    m = geometry.size_multiple
    for field, value in (("width", width), ("height", height)):
        if value < m or value % m:
            low, high = geometry.nearest_side(max(value, 1))
            problems.append(SizeProblem(
                field, value, f"{field} {value} px is not valid: use a multiple of {m} px",
                tuple(sorted({low, high})),
            ))
    r = geometry.temporal_factor
    if frames < 1 or (frames - 1) % r:
        low, high = geometry.nearest_frames(max(frames, 1))
        problems.append(SizeProblem(
            "frames", frames, f"{frames} frames is not valid: this model needs 1 + {r}·k frames",
            tuple(sorted({low, high})),
        ))
    return problems


@dataclass(frozen=True, slots=True)
class ModelRow:
    """One catalogue entry as the model manager shows it.

    Attributes:
        id: what requests and ``ModelCache.get`` take.
        name, family, variant: identity.
        size_bytes: total size of the set's files on disk.
        precision: the stored weights' dtype(s), e.g. "bf16", "fp32 / bf16".
        complete: every part (denoiser, VAE, text encoder) is present.
        problems: pairing or file problems, in words (empty when usable).
        files: the parts and their files, in words (for a tooltip).
        notes: things the scan ignored (unrecognised or spare files).
    """

    id: str
    name: str
    family: str
    variant: str
    size_bytes: int
    precision: str
    complete: bool
    problems: tuple[str, ...]
    files: str = ""
    notes: tuple[str, ...] = ()

    @property
    def usable(self) -> bool:
        return self.complete and not self.problems

    def status(self) -> str:
        if self.problems:
            return "problem: " + "; ".join(self.problems)
        return "complete" if self.complete else "incomplete"


def model_row(model_set: ModelSet) -> ModelRow:
    """The manager's row for one registry entry."""
    return ModelRow(
        id=model_set.id, name=model_set.name or model_set.id, family=model_set.family,
        variant=model_set.variant, size_bytes=int(model_set.size), precision=model_set.dtype,
        complete=bool(model_set.complete), problems=tuple(model_set.problems),
        files=set_row(model_set)["files"], notes=tuple(model_set.notes),
    )


def model_rows(settings: Settings) -> list[ModelRow]:
    """Every model set the studio knows (demo first, then the configured folders).

    Reads file headers only; still, call it off the GUI thread for large folders.
    """
    return [model_row(s) for s in list_models(settings)]
