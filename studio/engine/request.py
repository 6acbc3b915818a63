"""The generation request: the whole truth about one video, and its recipe.

A :class:`GenerationRequest` is frozen and validated; ``to_dict``/``from_dict`` give a lossless,
versioned JSON form that every output embeds. Model-dependent checks (valid frame counts and
sizes) live in :meth:`GenerationRequest.check_geometry`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from studio.engine.lora import LORA_MODES
from studio.engine.request_items import (
    FIT_MODES,
    LORA_STRENGTH,
    ConditioningItem,
    LoraItem,
    check_int,
    is_number,
    is_utf8,
    parse_item,
    parse_loras,
    shown,
)
from studio.engine.rf_schedule import explicit_schedule
from studio.engine.shapes import LatentGeometry
from studio.errors import InvalidRequest

__all__ = ["FIT_MODES", "LORA_STRENGTH", "ConditioningItem", "GenerationRequest", "LoraItem"]

REQUEST_VERSION = 1
SAMPLERS = ("euler", "stochastic", "dpm++2m", "unipc")
MAX_SEED = 2**63 - 1
MAX_STEPS = 1000
MAX_LORAS = 16
#: Guidance oscillation options (Open-Sora 2.0): the text and image scales drop to 1 on odd
#: steps after the first ten; "temporal" ramps the image scale over the latent frames.
OSCILLATION = ("text", "image", "temporal")

ShiftMode = float | Literal["auto"]




@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """Everything needed to reproduce a video with a given model.

    Attributes:
        prompt: what the video shows.
        negative_prompt: what to steer away from ("" = the model's default).
        seed: initial-noise seed, 0 ≤ seed < 2⁶³.
        steps: number of sampling steps N (schedule has N + 1 points).
        guidance: classifier-free guidance scale g (1 = no guidance, unconditional pass skipped);
            of a two-expert model, the high-noise expert's.
        guidance_low: a two-expert model's low-noise expert's scale (None = the model's default;
            ignored by models with one DiT).
        guidance_image: the image guidance scale of a model that has one (Open-Sora 2.0
            image-to-video; None = the model's default; ignored by others).
        oscillation: guidance oscillation options, a subset of :data:`OSCILLATION` (None =
            the model's default; ignored by models without oscillating guidance).
        prompt_suffix: text appended to the prompt, as the model's training did (None = the
            model's default, "" = none).
        shift: ``"auto"`` (the model's resolution rule) or a fixed time-shift α > 0.
        timesteps: an explicit schedule, t ∈ (0, 1] strictly decreasing, without the final 0
            (a distilled model's list); ``steps`` then equals its length. None = from ``steps``
            and ``shift``.
        stg: spatio-temporal guidance scale of a model that has it (LTX-Video; None = the
            model's default, 0 = off; ignored by others).
        stg_rescale: r in LTX-Video's v ← v·(r·σ(v_c)/σ(v) + 1 − r), pulling the guided
            velocity's spread towards the prompt pass's; as in the original, 0 and 1 both leave
            v as it is (None = the model's default).
        reference_noise: noise added to fully pinned reference positions before each step,
            times t² (LTX-Video's image_cond_noise_scale; None = the model's default).
        width, height: pixels; multiples of the model's size multiple.
        frames: pixel frames; 1 + r·k for the model's temporal factor r.
        fps: playback rate of the output.
        sampler: ``"euler"`` (deterministic), ``"stochastic"`` (re-noise each step),
            ``"dpm++2m"`` (second-order multistep, deterministic) or ``"unipc"`` (Wan's
            predictor-corrector multistep, deterministic).
        conditioning: reference frames pinned into the video.
        model: the model set's id ("" = the configured default).
        step_cache: step-caching threshold in [0, 1]: the predicted relative error a skipped
            denoiser forward may add up to (0 = every forward runs; see
            :mod:`studio.engine.step_cache`).
        loras: LoRAs applied to the denoiser, in order.
        lora_mode: ``"merge"`` (into the weights), ``"on-the-fly"`` (around each block's
            forward) or ``"auto"`` (merge unless the denoiser's blocks are offloaded); see
            :mod:`studio.engine.lora`.
    """

    prompt: str
    negative_prompt: str = ""
    seed: int = 0
    steps: int = 30
    guidance: float = 5.0
    guidance_low: float | None = None
    guidance_image: float | None = None
    oscillation: tuple[str, ...] | None = None
    prompt_suffix: str | None = None
    shift: ShiftMode = "auto"
    timesteps: tuple[float, ...] | None = None
    stg: float | None = None
    stg_rescale: float | None = None
    reference_noise: float | None = None
    width: int = 128
    height: int = 128
    frames: int = 17
    fps: float = 8.0
    sampler: str = "euler"
    conditioning: tuple[ConditioningItem, ...] = field(default_factory=tuple)
    model: str = ""
    step_cache: float = 0.0
    loras: tuple[LoraItem, ...] = field(default_factory=tuple)
    lora_mode: str = "auto"

    def __post_init__(self) -> None:
        for name in ("conditioning", "loras", "oscillation", "timesteps"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))

    def validate(self) -> GenerationRequest:
        """Check every model-independent field; raise :class:`InvalidRequest` naming the field."""
        for name in ("prompt", "negative_prompt"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise InvalidRequest(name, f"{value!r} is not text", "use text (it may be empty)")
            if not is_utf8(value):
                raise InvalidRequest(name, "contains bytes that are not valid UTF-8 text",
                                     "type it again, or save the file it came from as UTF-8")
        check_int("seed", self.seed, 0, MAX_SEED)
        check_int("steps", self.steps, 1, MAX_STEPS)
        for name in ("guidance", "guidance_low", "guidance_image"):
            value = getattr(self, name)
            if (value is not None or name == "guidance") and (
                    not is_number(value) or not 0.0 <= value <= 50.0):
                raise InvalidRequest(name, f"{shown(value)} is not allowed", "use 0…50")
        if self.shift != "auto" and (
            not is_number(self.shift) or not 0.0 < float(self.shift) <= 100.0
        ):
            raise InvalidRequest(
                "shift", f"{shown(self.shift)} is not allowed",
                'use "auto" or a number in (0, 100]',
            )
        check_int("width", self.width, 1, 8192)
        check_int("height", self.height, 1, 8192)
        check_int("frames", self.frames, 1, 4097)
        if not is_number(self.fps) or not 1.0 <= self.fps <= 240.0:
            raise InvalidRequest("fps", f"{shown(self.fps)} is not allowed", "use 1…240")
        if self.sampler not in SAMPLERS:
            raise InvalidRequest(
                "sampler", f"{self.sampler!r} is unknown", f"use one of {', '.join(SAMPLERS)}"
            )
        for item in self.conditioning:
            if not isinstance(item, ConditioningItem):
                raise InvalidRequest(
                    "conditioning",
                    f"{item!r} is not a conditioning item",
                    "give each reference frame an image, frame index and strength",
                )
            item.validate(self.frames)
        if not is_number(self.step_cache) or not 0.0 <= self.step_cache <= 1.0:
            raise InvalidRequest("step_cache", f"{shown(self.step_cache)} is not allowed",
                                 "use 0 (off) … 1; 0.01 skips about 2 steps in 5")
        self._validate_loras()
        self._validate_model_options()
        if not isinstance(self.model, str) or not is_utf8(self.model):
            raise InvalidRequest(
                "model", f"{self.model!r} is not a model id", 'use a model id or "" for the default'
            )
        return self

    def _validate_model_options(self) -> None:
        self._validate_timesteps()
        for name, high in (("stg", 50.0), ("stg_rescale", 1.0), ("reference_noise", 1.0)):
            value = getattr(self, name)
            if value is not None and (not is_number(value) or not 0.0 <= value <= high):
                raise InvalidRequest(name, f"{shown(value)} is not allowed",
                                     f"use 0…{high:g}, or leave it to the model")
        if self.oscillation is not None and (
                not isinstance(self.oscillation, tuple)
                or any(o not in OSCILLATION for o in self.oscillation)):
            raise InvalidRequest("oscillation", f"{shown(self.oscillation)} is not allowed",
                                 f"use a list of {', '.join(OSCILLATION)} (or none)")
        if self.prompt_suffix is not None and (not isinstance(self.prompt_suffix, str)
                                               or not is_utf8(self.prompt_suffix)):
            raise InvalidRequest("prompt_suffix", f"{shown(self.prompt_suffix)} is not text",
                                 'use text, "" for none')

    def _validate_timesteps(self) -> None:
        times = self.timesteps
        if times is None:
            return
        if not isinstance(times, tuple) or not all(is_number(t) for t in times):
            raise InvalidRequest("timesteps", f"{shown(times)} is not a list of times",
                                 "give times in (0, 1], e.g. 1, 0.99, 0.9, 0.7")
        explicit_schedule(list(times))
        if len(times) != self.steps:
            raise InvalidRequest("steps", f"{self.steps} steps with {len(times)} timesteps",
                                 "set steps to the number of timesteps")

    def _validate_loras(self) -> None:
        if len(self.loras) > MAX_LORAS:
            raise InvalidRequest("loras", f"{len(self.loras)} LoRAs", f"use at most {MAX_LORAS}")
        for item in self.loras:
            if not isinstance(item, LoraItem):
                raise InvalidRequest("loras", f"{item!r} is not a LoRA",
                                     "give each LoRA a path and a strength")
            item.validate()
        if self.lora_mode not in LORA_MODES:
            raise InvalidRequest("lora_mode", f"{shown(self.lora_mode)} is unknown",
                                 f"use one of {', '.join(LORA_MODES)}")

    def check_geometry(self, geometry: LatentGeometry) -> None:
        """Model-dependent checks: frames = 1 + r·k, sizes multiples of s·p."""
        geometry.check_video_size(self.frames, self.height, self.width)

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps

    def with_changes(self, **changes: Any) -> GenerationRequest:
        return replace(self, **changes)

    # --- serialisation -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"version": REQUEST_VERSION}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("conditioning", "loras"):
                value = [{g.name: getattr(c, g.name) for g in fields(c)} for c in value]
            data[f.name] = value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationRequest:
        """Parse and validate; unknown keys and wrong types raise :class:`InvalidRequest`."""
        if not isinstance(data, dict):
            raise InvalidRequest("request", f"expected a JSON object, got {type(data).__name__}")
        version = data.get("version", REQUEST_VERSION)
        if type(version) is not int or version != REQUEST_VERSION:
            raise InvalidRequest(
                "version",
                f"{version!r} is not supported",
                f"this studio reads version {REQUEST_VERSION}",
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known - {"version"})
        if unknown:
            raise InvalidRequest(
                "request",
                f"unknown field(s) {', '.join(unknown)}",
                f"known fields: version, {', '.join(f.name for f in fields(cls))}",
            )
        if "prompt" not in data:
            raise InvalidRequest("prompt", "is missing", 'add a "prompt" (it may be empty)')
        values = {k: v for k, v in data.items() if k in known}
        items = values.get("conditioning", [])
        if not isinstance(items, list | tuple):
            raise InvalidRequest("conditioning", f"{items!r} is not a list", "use a list of items")
        values["conditioning"] = tuple(parse_item(item) for item in items)
        values["loras"] = parse_loras(values.get("loras", []))
        for name in ("oscillation", "timesteps"):
            if isinstance(values.get(name), list):
                values[name] = tuple(values[name])
        if isinstance(values.get("shift"), int) and not isinstance(values["shift"], bool):
            values["shift"] = float(values["shift"])
        return cls(**values).validate()

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GenerationRequest:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            problem = f"not valid JSON ({exc.msg} at char {exc.pos})"
            raise InvalidRequest("request", problem) from exc
        except (ValueError, RecursionError) as exc:  # over-long integers, absurd nesting
            raise InvalidRequest("request", f"not a readable request ({exc})") from exc
        return cls.from_dict(data)


