"""Forecast the peak RAM and VRAM of a generation before it runs.

The forecast adds up, per stage (text encoding, conditioning, sampling, decoding, export), what
is resident and what the stage allocates, and takes the largest stage. Its inputs are a
:class:`~studio.engine.memory_model.ModelMemory` (weights per part, transformer shape, VAE
working set per pixel; supplied by the model's family) and the request's size:

* **DiT activations** from the token count
  (:func:`~studio.engine.memory_model.dit_activation_bytes`);
* **VAE decode working set** per output pixel of one latent-frame chunk plus the float32 video;
* **text encoder activations** (attention scores and position bias, ``h·L²``);
* on the host, the decoded video's conversion to uint8 for export, and the runtime itself;
  host-side transients are doubled for what the C allocator and oneDNN keep beyond the live
  tensors (:data:`HOST_TRANSIENT_FACTOR`).

Figures on CUDA add the CUDA context and an allocator allowance, which could not be measured on
the machine this was written on (no GPU): see ``docs/benchmarks.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from studio.engine.memory_model import ModelMemory, dit_activation_bytes, text_activation_bytes
from studio.engine.offload import (
    AUTO,
    OffloadPolicy,
    PolicyChoice,
    choose_policy,
    free_device_memory,
)

log = logging.getLogger(__name__)

GIB = 2**30
MIB = 2**20

#: Resident memory of the process before any model is loaded: Python, torch (CPU build),
#: transformers and the studio imported. Measured 370 MiB on Linux x86-64 (torch 2.13 CPU).
RUNTIME_RAM_BYTES = 380 * MIB
#: Extra host memory of a CUDA build once the CUDA context exists (driver, cuBLAS, cuDNN
#: libraries mapped in). Typical published figure, **not measured here** (no GPU).
CUDA_RUNTIME_RAM_BYTES = 1536 * MIB
#: Device memory outside PyTorch's allocator: the CUDA context and library workspaces.
#: Typical figure for an H100 with torch 2.x, **not measured here**.
CUDA_CONTEXT_VRAM_BYTES = 512 * MIB
#: Caching-allocator rounding and fragmentation on top of the live-tensor peak (CUDA only).
VRAM_ALLOCATOR_FACTOR = 1.10
#: Resident host memory per byte of live transient tensors. glibc keeps freed heap memory
#: mapped (its mmap threshold grows to 32 MB after large frees, so tensors below that come from
#: the heap) and oneDNN convolutions allocate buffers of their own: measured on Linux, a stage's
#: RSS rise was 1.6× (text encoding) to 2.0× (VAE decode) its tracked tensor peak.
HOST_TRANSIENT_FACTOR = 2.0


@dataclass(frozen=True, slots=True)
class MemoryForecast:
    """Forecast peak memory of one request.

    Attributes:
        ram_bytes: peak resident memory of the process (host RAM).
        vram_bytes: peak device memory (0 when running on the CPU).
        breakdown: named contributions in bytes (weights per part, activations per stage,
            runtime, video buffers); the peaks are sums of some of them, see ``peak_stage``.
        policy: the offload policy the forecast assumes.
        device: "cpu" or "cuda".
        ram_stage / vram_stage: the stage where each peak occurs.
    """

    ram_bytes: int
    vram_bytes: int
    breakdown: Mapping[str, int] = field(default_factory=dict)
    policy: str = OffloadPolicy.NONE.value
    device: str = "cpu"
    ram_stage: str = ""
    vram_stage: str = ""

    def describe(self) -> str:
        text = f"RAM ≈ {self.ram_bytes / GIB:.1f} GiB"
        if self.device == "cuda":
            text += f" · VRAM ≈ {self.vram_bytes / GIB:.1f} GiB ({self.policy} offload)"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"ram_bytes": self.ram_bytes, "vram_bytes": self.vram_bytes,
                "breakdown": dict(self.breakdown), "policy": self.policy, "device": self.device,
                "ram_stage": self.ram_stage, "vram_stage": self.vram_stage}  # fmt: skip


class ForecastRequest(Protocol):
    """What the forecast reads of a :class:`~studio.engine.request.GenerationRequest`."""

    frames: int
    height: int
    width: int
    guidance: float
    conditioning: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class _Stages:
    """Bytes each stage allocates on the compute device, plus host-side buffers."""

    encode: int
    condition: int
    sample: int
    decode: int
    video: int  # float32 decoded video
    export: int  # host peak while converting the video to uint8


def stage_bytes(memory: ModelMemory, request: ForecastRequest) -> _Stages:
    """What each stage of ``request`` allocates beyond the weights (bytes)."""
    g = memory.geometry
    prompts = 1 if request.guidance == 1.0 else 2  # the prompt and the negative prompt
    # Rows per denoiser call; without CFG a third pass (LTX-Video's STG) may still run beside
    # the conditional one, so only the unconditional row is dropped.
    batch = memory.guidance_rows - 1 if request.guidance == 1.0 else memory.guidance_rows
    shape = g.latent_shape(request.frames, request.height, request.width)
    latent = 4 * shape[1] * shape[2] * shape[3] * shape[4]
    tokens = g.latent_frames(request.frames) * g.tokens_per_frame(request.height, request.width)
    pixels = request.height * request.width
    video = 3 * request.frames * pixels * 4
    return _Stages(
        encode=text_activation_bytes(memory.text, prompts, memory.text_act_bytes),
        condition=int(memory.vae_encode_per_pixel * pixels) if request.conditioning else 0,
        sample=dit_activation_bytes(memory.dit, tokens, batch, memory.act_bytes,
                                    per_token_time=memory.per_token_time) + 8 * batch * latent,
        decode=int(memory.vae_decode_per_pixel * pixels) + video + 3 * latent,
        video=video,
        export=video + 2 * video + video // 2,  # video, two float temporaries, uint8 ×2
    )


# --- the forecast ----------------------------------------------------------------------------


def forecast_memory(
    memory: ModelMemory,
    request: ForecastRequest,
    device: str = "cpu",
    policy: OffloadPolicy = OffloadPolicy.NONE,
) -> MemoryForecast:
    """Peak RAM (and VRAM on ``device == "cuda"``) of running ``request`` under ``policy``.

    On the CPU everything is resident in RAM and the policy does not matter. On CUDA the
    device holds what the policy keeps resident plus the running stage's allocations, and RAM
    holds the host copies of offloaded parts plus the decoded video during export.
    """
    st = stage_bytes(memory, request)
    te, dit, vae = memory.text_encoder_bytes, memory.all_dit_bytes, memory.vae_bytes
    breakdown = {"weights.text_encoder": te, "weights.dit": dit, "weights.vae": vae,
                 "stage.encode": st.encode, "stage.condition": st.condition,
                 "stage.sample": st.sample, "stage.decode": st.decode,
                 "stage.export": st.export}  # fmt: skip
    if device != "cuda":
        breakdown["runtime"] = RUNTIME_RAM_BYTES
        stages = {"encode": st.encode, "condition": st.condition, "sample": st.sample,
                  "decode": st.decode, "export": st.export}  # fmt: skip
        stage = max(stages, key=lambda k: stages[k])
        ram = RUNTIME_RAM_BYTES + memory.weight_bytes + int(HOST_TRANSIENT_FACTOR * stages[stage])
        return MemoryForecast(ram, 0, breakdown, OffloadPolicy.NONE.value, "cpu", stage, "")
    resident = _device_resident(memory, policy)
    vram_stages = {name: resident[name] + st_bytes for name, st_bytes in
                   (("encode", st.encode), ("condition", st.condition),
                    ("sample", st.sample), ("decode", st.decode))}  # fmt: skip
    vram_stage = max(vram_stages, key=lambda k: vram_stages[k])
    vram = int(vram_stages[vram_stage] * VRAM_ALLOCATOR_FACTOR) + CUDA_CONTEXT_VRAM_BYTES
    host_copies = 0 if policy is OffloadPolicy.NONE else (
        te if policy is OffloadPolicy.TEXT_ENCODER else memory.weight_bytes)
    runtime = RUNTIME_RAM_BYTES + CUDA_RUNTIME_RAM_BYTES
    breakdown.update({"runtime": runtime, "host_copies": host_copies,
                      "cuda_context": CUDA_CONTEXT_VRAM_BYTES})  # fmt: skip
    ram = runtime + host_copies + int(HOST_TRANSIENT_FACTOR * st.export)
    return MemoryForecast(ram, vram, breakdown, policy.value, "cuda", "export", vram_stage)


def _device_resident(memory: ModelMemory, policy: OffloadPolicy) -> dict[str, int]:
    """Weight bytes on the device during each stage under ``policy`` (of a two-expert
    denoiser, ``model`` and ``blocks`` keep one expert on the device at a time)."""
    te, dit, vae = memory.text_encoder_bytes, memory.dit_bytes, memory.vae_bytes
    every_dit = memory.all_dit_bytes
    if policy is OffloadPolicy.NONE:
        return dict.fromkeys(("encode", "condition", "sample", "decode"), te + every_dit + vae)
    if policy is OffloadPolicy.TEXT_ENCODER:
        return {"encode": te + every_dit + vae, "condition": every_dit + vae,
                "sample": every_dit + vae, "decode": every_dit + vae}  # fmt: skip
    if policy is OffloadPolicy.BLOCKS:
        te += (2 - memory.text_layers) * memory.text_block_bytes
        dit += (2 - memory.dit.num_layers) * memory.dit_block_bytes
    return {"encode": te, "condition": vae, "sample": dit, "decode": vae}


def forecasts_by_policy(memory: ModelMemory, request: ForecastRequest) -> dict[OffloadPolicy, int]:
    """Forecast peak VRAM of ``request`` under every policy (for :func:`choose_policy`)."""
    return {policy: forecast_memory(memory, request, "cuda", policy).vram_bytes
            for policy in OffloadPolicy}  # fmt: skip


def choose_offload(
    memory: ModelMemory | None,
    request: ForecastRequest,
    device: torch.device,
    requested: OffloadPolicy | str = AUTO,
) -> PolicyChoice:
    """The offload policy for running ``request`` on ``device``: ``requested`` when it names
    one, else the fastest whose VRAM forecast fits the free memory (``none`` off CUDA or when
    the model has no memory model)."""
    if device.type != "cuda" or (memory is None and requested == AUTO):
        policy = OffloadPolicy.NONE if requested == AUTO else OffloadPolicy(requested)
        return PolicyChoice(policy, "no CUDA device or no forecast", 0, 0)
    needs = forecasts_by_policy(memory, request) if memory is not None else {}
    choice = choose_policy(needs, free_device_memory(device), requested)
    log.info("offload %s: %s (forecast %.1f GiB, free %.1f GiB)", choice.policy.value,
             choice.reason, choice.need_bytes / GIB, choice.free_bytes / GIB)
    return choice
