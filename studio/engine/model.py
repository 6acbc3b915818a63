"""The contract the engine runs: a loaded model's three parts and an explicit description of it.

A model family (``studio/models/<family>/``) loads its files into a :class:`LoadedModel`. The
engine samples, decodes, offloads, compiles and forecasts memory from what this module defines
alone — it never looks inside a family's classes. Conventions: latents are normalised ("model
space"), shapes ``[B, C, T', H', W']``, time t ∈ [0, 1] with 1 = noise
(docs/flow-conventions.md §1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import torch
from torch import nn

from studio.engine.cancel import NEVER, CancelToken
from studio.engine.memory_model import ModelMemory
from studio.engine.schedule import opensora_alpha
from studio.engine.shapes import LatentGeometry
from studio.engine.step_cache import CacheCalibration

#: The parts of every model, by the names offload policies and memory figures use.
TEXT_ENCODER, DIT, VAE = "text_encoder", "dit", "vae"
#: A two-expert denoiser's low-noise expert (its high-noise expert is :data:`DIT`).
DIT_LOW = "dit_low"
#: Conditioning modes: a reference image as the first frame, or as any other frame.
FIRST_FRAME, KEYFRAME = "first-frame", "keyframe"


class TextEncoder(Protocol):
    def encode(self, prompts: Sequence[str]) -> torch.Tensor:
        """Encode prompts to a context ``[B, L, D]`` (fixed L for a family) on the model device."""
        ...


class Denoiser(Protocol):
    def __call__(self, x: torch.Tensor, t_tok: torch.Tensor, context: torch.Tensor,
                 **image: torch.Tensor) -> torch.Tensor:
        """Predict the velocity.

        Args:
            x: noisy latent ``[B, C, T', H', W']`` (model space: normalised latents).
            t_tok: per-position time ``[B, T', H', W']``, t ∈ [0, 1], 1 = noise.
            context: text context ``[B, L, D]``.
            image: ``image_context=`` image features ``[B, N, D_img]``, passed only to models
                that have :attr:`LoadedModel.image_context`.

        Returns:
            v ≈ ε − x₀, ``[B, C, T', H', W']``.
        """
        ...


class VideoVAE(Protocol):
    def encode(self, video: torch.Tensor, cancel: CancelToken = NEVER) -> torch.Tensor:
        """``[B, 3, T, H, W]`` pixels in [−1, 1] → normalised latent ``[B, C, T', H', W']``."""
        ...

    def decode(self, latent: torch.Tensor, cancel: CancelToken = NEVER) -> torch.Tensor:
        """Normalised latent ``[B, C, T', H', W']`` → pixels ``[B, 3, T, H, W]`` in [−1, 1]."""
        ...


class ShiftRule(Protocol):
    def __call__(self, tokens_per_frame: int, latent_frames: int) -> float:
        """The time-shift α that ``shift="auto"`` means for a video of this many tokens."""
        ...


@dataclass(frozen=True, slots=True)
class ResolutionShift:
    """Open-Sora 2.0's automatic shift: α grows with the square root of the token count
    (docs/flow-conventions.md §3). Families whose published code has no automatic rule use it for
    "auto" as well, so "auto" always adapts to the video size."""

    def __call__(self, tokens_per_frame: int, latent_frames: int) -> float:
        return opensora_alpha(tokens_per_frame, latent_frames)


ScheduleRule = Callable[[int, tuple[int, ...]], tuple[float, list[float]]]
"""``rule(steps, latent_shape)`` → (the time shift it amounts to, for display; the N + 1
sampling times from 1 to exactly 0) that ``shift="auto"`` means for a model whose published
scheduler has its own rule (LTX-Video's token-count shift stretched to a terminal time);
``latent_shape`` is the sampled state ``[1, C, T', H', W']``."""


@dataclass(frozen=True, slots=True)
class FrameLayout:
    """Where the latent frames of the sampled state stand in the video, for a model whose
    denoiser positions tokens in seconds (:attr:`Capabilities.frame_layout`).

    Attributes:
        fps: the video's frame rate.
        latent_frames: T', the latent frames of the video grid (the state's first frames).
        appended: the groups of latent frames after the grid, in order, each as (pixel frame
            it starts at, number of latent frames): a reference image after the first frame
            is a group of one, a later clip's first latent frames a group of several, whose
            times run as a clip's own from that frame (LTX-Video's keyframes and clip
            prefixes, which travel as extra tokens).
    """

    fps: float
    latent_frames: int
    appended: tuple[tuple[int, int], ...] = ()

    @property
    def appended_frames(self) -> int:
        """K, the latent frames after the grid (all groups together)."""
        return sum(count for _, count in self.appended)


@dataclass(frozen=True, slots=True)
class FamilyDefaults:
    """What a model is used with unless the user says otherwise.

    ``sizes`` are (width, height) presets the model was trained for; the first is the default.
    """

    steps: int
    guidance: float
    shift: float | Literal["auto"]
    fps: float
    frames: int
    sizes: tuple[tuple[int, int], ...]
    negative_prompt: str = ""
    guidance_low: float | None = None  # a two-expert model's low-noise expert (None: one DiT)
    guidance_image: float | None = None  # image guidance (Open-Sora 2.0 i2v; None: none)
    oscillation: tuple[str, ...] = ()  # guidance oscillation the model was tuned with
    prompt_suffix: str = ""  # text the model's training appended to every prompt
    timesteps: tuple[float, ...] | None = None  # an explicit schedule (distilled models)
    stg: float | None = None  # spatio-temporal guidance scale (None: the model has none)
    stg_rescale: float | None = None  # rescale of the guided velocity (None: none)
    reference_noise: float = 0.0  # noise on pinned reference positions, times t²
    sampler: str = "euler"  # the sampler the model's published settings use


@dataclass(frozen=True, slots=True)
class ExpertSwitch:
    """A denoiser made of two experts switched by time (Wan 2.2 A14B): the high-noise expert
    (part :data:`DIT`) runs while t ≥ ``boundary``, the low-noise one (:data:`DIT_LOW`) below.

    Attributes:
        boundary: t ∈ (0, 1) where the experts switch (1 = noise).
    """

    boundary: float

    def part_for(self, t: float) -> str:
        return DIT if t >= self.boundary else DIT_LOW


@dataclass(frozen=True, slots=True)
class GuidanceInputs:
    """What a model's own guidance rule (:attr:`LoadedModel.guidance_rule`) works from.

    Attributes:
        denoise: the model's denoiser (image inputs not applied: the rule decides how).
        context / uncond: prompt and negative-prompt contexts ``[1, L, D]`` (uncond None when
            no pass needs it).
        channels / features: the job's image input channels and image features (None: none).
        guidance / guidance_image: text and image guidance scales of the request (resolved).
        oscillation: the guidance oscillation options in effect ("text", "image", "temporal").
        schedule: the N + 1 sampling times, t ∈ [0, 1] (1 = noise).
        stg / stg_rescale: spatio-temporal guidance scale (0 = off) and the rescale of the
            guided velocity (0 = none), resolved.
    """

    denoise: Callable[..., torch.Tensor]
    context: torch.Tensor
    uncond: torch.Tensor | None
    channels: torch.Tensor | None
    features: torch.Tensor | None
    guidance: float
    guidance_image: float | None
    oscillation: tuple[str, ...]
    schedule: tuple[float, ...]
    stg: float = 0.0
    stg_rescale: float = 0.0


GuidanceRule = Callable[[GuidanceInputs], Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]
"""``rule(inputs)`` → the guided velocity ``v(x, t_tok)`` the sampler calls, for models whose
guidance is not plain classifier-free guidance (Open-Sora 2.0: text and image scales over a
three-pass batch, oscillating between steps)."""

FinishLatent = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
"""``finish(latent, channels)`` → the sampled latent ``[1, C, T', H', W']`` as the model's
pipeline leaves it (Open-Sora 2.0 writes the reference latents back into their frames)."""

ImageContext = Callable[[Mapping[int, torch.Tensor]], torch.Tensor]
"""``image_context(images)`` → image features ``[1, N, D_img]`` on the model's device that the
denoiser reads beside the text (Wan 2.1 I2V's CLIP tokens); ``images`` as for
:data:`ImageChannels`."""

ImageChannels = Callable[[Mapping[int, torch.Tensor], int, int, int], torch.Tensor]
"""``image_channels(images, frames, height, width)`` → extra denoiser input ``[1, C_y, T', H',
W']`` on the model's device, for models that take reference images as input channels (Wan
I2V): ``images`` maps a pixel frame index to its image ``[1, 3, H, W]`` in [−1, 1]."""


@dataclass(frozen=True, slots=True)
class FewStepPreset:
    """The settings a step-distillation LoRA is made for (offered when one is in use).

    Attributes:
        steps, guidance, shift, sampler: the request fields it sets (guidance 1 = no CFG).
        label: how the GUI and the CLI name it ("4 steps, guidance 1, shift 5, euler").
    """

    steps: int
    guidance: float
    shift: float
    sampler: str

    @property
    def label(self) -> str:
        return (f"{self.steps} steps, guidance {self.guidance:g}, shift {self.shift:g}, "
                f"{self.sampler}")


@dataclass(frozen=True, slots=True)
class PreviewFactors:
    """Linear latent → RGB map: ``rgb = Σ_c x_c·rgb_factors[c] + bias``, result in [−1, 1]."""

    rgb_factors: tuple[tuple[float, float, float], ...]
    bias: tuple[float, float, float]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a model supports.

    Attributes:
        samplers: sampler names (:data:`studio.engine.samplers.SAMPLERS` keys) it is run with.
        conditioning: conditioning modes (:data:`FIRST_FRAME`, :data:`KEYFRAME`); empty for a
            text-only model.
        shift_rule: what ``shift="auto"`` resolves to.
        frame_layout: the denoiser takes ``layout=`` (:class:`FrameLayout`) at every call, and
            reference frames after the first are appended to the state as extra latent frames
            rather than placed in the grid, as is the two-frame prefix of a clip after the
            first frame (LTX-Video). Without it a clip is taken at frame 0 only.
    """

    samplers: tuple[str, ...] = ("euler", "stochastic", "dpm++2m", "unipc")
    conditioning: tuple[str, ...] = (FIRST_FRAME, KEYFRAME)
    shift_rule: ShiftRule = field(default_factory=ResolutionShift)
    frame_layout: bool = False


@dataclass(frozen=True, slots=True)
class AttentionShape:
    """The denoiser's self-attention heads, for choosing fused attention kernels."""

    num_heads: int
    head_dim: int


@dataclass(frozen=True, slots=True)
class ModelModules:
    """The ``nn.Module`` behind each part, for offloading, compiling and counting bytes.

    Attributes:
        parts: part name (:data:`TEXT_ENCODER`, :data:`DIT`, :data:`VAE`) → its module; a part
            with no module (an analytic stand-in) is simply absent.
        blocks: part name → dotted path of its repeated transformer blocks inside that module
            (e.g. ``"blocks"``); block-level offload streams these, compilation compiles them.
        attention: the denoiser's attention shape (None: let the kernels be chosen per call).
    """

    parts: Mapping[str, nn.Module] = field(default_factory=dict)
    blocks: Mapping[str, str] = field(default_factory=dict)
    attention: AttentionShape | None = None

    def block_list(self, part: str) -> list[nn.Module] | None:
        """The repeated blocks of ``part`` in the order they run (None when it has none);
        ``blocks`` may name several lists, comma-separated (Open-Sora 2.0's double- then
        single-stream blocks)."""
        paths = self.blocks.get(part)
        module = self.parts.get(part)
        if paths is None or module is None:
            return None
        return [block for path in paths.split(",") for block in module.get_submodule(path)]


@dataclass(slots=True)
class LoadedModel:
    """A complete, loaded model set ready to generate.

    Attributes:
        id: the catalogue id of the set it was loaded from.
        name: human-readable name.
        family / variant: e.g. ("wan", "t2v-1.3b").
        geometry: latent geometry (channels, temporal and spatial factors, patch).
        defaults: default settings.
        preview: latent → RGB factors for live previews.
        text_encoder, denoiser, vae: the three parts.
        device, dtype: where the denoiser runs and in what precision.
        capabilities: samplers, conditioning modes and the "auto" shift rule.
        modules: the modules behind the parts (offload, compile, memory).
        memory: the memory forecast's inputs (None: no forecast for this model).
        offload: the offload policy the parts run under ("none" = all on the device).
        prompt_guide: what the model understands, in words, for a model with a closed
            vocabulary ("" for open-vocabulary models).
        cache_calibration: how the velocity's magnitude evolves along t, for step caching
            (None: not calibrated; such a model runs every forward).
        experts: the time switch of a two-expert denoiser (None: one DiT). ``denoiser`` then
            routes each call itself; offload keeps the expert a call needs on the device.
        image_channels: how reference images become extra denoiser input channels (None: they
            are pinned into the latent through the conditioning mask instead).
        image_context: how reference images become image features the denoiser takes as
            ``image_context=`` (None: it takes none).
        guidance_rule: the model's own guidance (None: classifier-free guidance).
        finish_latent: what the model's pipeline does to the sampled latent (None: nothing).
        image_required: whether a model with ``image_channels`` refuses a request without a
            reference image (Open-Sora 2.0 also makes video from text alone: False).
        schedule_rule: the schedule ``shift="auto"`` means (None: the time-shifted linear
            schedule with α from ``capabilities.shift_rule``).
        prompt_examples: prompts that show what the model does well (offered in the GUI).
        vocabulary: every word a closed-vocabulary model understands, lower case (None: an
            open vocabulary); the GUI marks the others.
    """

    id: str
    name: str
    family: str
    variant: str
    geometry: LatentGeometry
    defaults: FamilyDefaults
    preview: PreviewFactors
    text_encoder: TextEncoder
    denoiser: Denoiser
    vae: VideoVAE
    device: torch.device
    dtype: torch.dtype
    capabilities: Capabilities = field(default_factory=Capabilities)
    modules: ModelModules = field(default_factory=ModelModules)
    memory: ModelMemory | None = None
    offload: str = "none"
    prompt_guide: str = ""
    cache_calibration: CacheCalibration | None = None
    experts: ExpertSwitch | None = None
    image_channels: ImageChannels | None = None
    image_context: ImageContext | None = None
    guidance_rule: GuidanceRule | None = None
    finish_latent: FinishLatent | None = None
    image_required: bool = True
    schedule_rule: ScheduleRule | None = None
    prompt_examples: tuple[str, ...] = ()
    vocabulary: frozenset[str] | None = None

    @property
    def supports_image(self) -> bool:
        """Whether reference frames are meaningful for this model."""
        return bool(self.capabilities.conditioning)
