"""Forecast the peak RAM and VRAM of a generation before it runs.

The forecast adds up, per stage (text encoding, conditioning, sampling, decoding, export), what
is resident and what the stage allocates, and takes the largest stage:

* **weights** — bytes by dtype from the model's configuration (the Wan DiT keeps its time MLP,
  modulation tables and norms in float32; the VAE runs in float32);
* **DiT activations** from the token count: the peak of one block, which is either its
  feed-forward phase (3 float32 copies of the residual stream plus two ``[B, L, ffn_dim]``
  tensors) or its self-attention phase (3 float32 copies plus 5 projection-sized tensors), plus
  the per-token time embedding where the model uses one (e and e0: 7 float32 ``[B, L, dim]``;
  Wan 2.2 TI2V, which takes reference frames), plus the embedded context. Attention never
  materialises ``L × L`` scores (fused SDPA kernels on CUDA, the blocked flash kernel on the
  CPU);
* **VAE decode working set** per output pixel of one latent-frame chunk (the decoder runs one
  latent frame at a time, so it does not grow with the length) plus the float32 output video;
* **text encoder activations** (UMT5 attention scores and position bias, ``h·L²``);
* on the host, the decoded video's conversion to uint8 for export, and the runtime itself;
  host-side transients are doubled for what the C allocator and oneDNN keep beyond the live
  tensors (:data:`HOST_TRANSIENT_FACTOR`).

The per-pixel VAE figures and the block coefficients were measured by running the real modules
on the ``meta`` device under :class:`~studio.engine.tensor_memory.TensorMemoryTracker` (every
storage an operator allocates, to the byte); the tests re-measure them. Figures on CUDA add the
CUDA context and an allocator allowance, which could not be measured on the machine this was
written on (no GPU): see ``docs/benchmarks.md``. What the app calls is
:func:`studio.service.forecast.forecast_request`; this module is the arithmetic.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from studio.engine.offload import (
    AUTO,
    OffloadPolicy,
    PolicyChoice,
    choose_policy,
    free_device_memory,
)
from studio.engine.shapes import LatentGeometry
from studio.engine.tensor_memory import TensorMemoryTracker
from studio.models.wan.dit_config import WanDiTConfig
from studio.models.wan.vae import WAN21_VAE, WAN22_VAE, WanVAEConfig, build_vae

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

#: VAE working set in bytes per output pixel (one latent-frame chunk, float32), measured with
#: the tracker on the meta device: decode excludes the output video and the two latent-sized
#: tensors; encode is one 4-frame chunk plus the first frame (see :func:`vae_bytes_per_pixel`).
_VAE_PER_PIXEL: dict[WanVAEConfig, tuple[float, float]] = {
    WAN21_VAE: (18710.0, 16370.0),
    WAN22_VAE: (16381.5, 6895.5),
}


@dataclass(frozen=True, slots=True)
class TextEncoderShape:
    """What the text encoder's activations depend on (UMT5: 4096 wide, 64 heads, 512 tokens)."""

    d_model: int
    num_heads: int
    length: int = 512


@dataclass(frozen=True, slots=True)
class ModelMemory:
    """Everything the forecast needs to know about a model set (plain numbers, no tensors).

    Attributes:
        family: "wan" (the only family with an activation model so far).
        dit_bytes / text_encoder_bytes / vae_bytes: weight bytes as loaded (by dtype).
        dit_block_bytes: weight bytes of one transformer block (block-level offload moves these).
        dit: the DiT's sizes; act_bytes: bytes per element of its projections (2 for bf16).
        per_token_time: the DiT embeds the timestep per token (e, e0 of ``[B, L, …]``).
        text: the text encoder's shape; text_act_bytes: its element size.
        vae_decode_per_pixel / vae_encode_per_pixel: working set per output pixel (bytes).
        geometry: latent geometry (channels, r, s, patch).
        text_block_bytes / text_layers: one text-encoder layer's bytes and the layer count
            (block-level offload streams those too).
    """

    family: str
    dit_bytes: int
    dit_block_bytes: int
    text_encoder_bytes: int
    vae_bytes: int
    dit: WanDiTConfig
    act_bytes: int
    per_token_time: bool
    text: TextEncoderShape
    text_act_bytes: int
    vae_decode_per_pixel: float
    vae_encode_per_pixel: float
    geometry: LatentGeometry
    text_block_bytes: int = 0
    text_layers: int = 0

    @property
    def weight_bytes(self) -> int:
        return self.dit_bytes + self.text_encoder_bytes + self.vae_bytes


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


# --- weights ---------------------------------------------------------------------------------


def dit_parameter_counts(config: WanDiTConfig) -> tuple[int, int]:
    """(parameters kept in float32, other parameters) of a :class:`WanDiT` (analytic)."""
    d, f, n = config.dim, config.ffn_dim, config.num_layers
    pv = config.patch_volume
    fp32 = (config.freq_dim * d + d + d * d + d  # time_embedding
            + 6 * d * d + 6 * d  # time_projection
            + n * (4 * d + 2 * d + 6 * d)  # norm_q/k ×2, norm3, modulation
            + 2 * d)  # head.modulation
    other = (d * config.in_dim * pv + d  # patch embedding
             + config.text_dim * d + d + d * d + d  # text embedding
             + n * (8 * (d * d + d) + d * f + f + f * d + d)  # attention ×2, ffn
             + d * config.out_dim * pv + config.out_dim * pv)  # head
    return fp32, other


def dit_weight_bytes(config: WanDiTConfig, dtype: torch.dtype) -> int:
    """Bytes of the DiT's weights when loaded in ``dtype`` (fp32 groups stay float32)."""
    fp32, other = dit_parameter_counts(config)
    return 4 * fp32 + itemsize(dtype) * other


def umt5_weight_bytes(vocab: int, d_model: int, d_ff: int, layers: int, heads: int, d_kv: int,
                      buckets: int, dtype: torch.dtype) -> int:
    """Bytes of a UMT5 encoder (tied embedding counted once) in ``dtype``."""
    inner = heads * d_kv
    per_layer = 4 * d_model * inner + buckets * heads + 2 * d_model + 3 * d_model * d_ff
    return itemsize(dtype) * (vocab * d_model + layers * per_layer + d_model)


@functools.lru_cache(maxsize=16)
def vae_weight_bytes(config: WanVAEConfig) -> int:
    """Bytes of a Wan VAE in float32 (counted on a module built on the meta device)."""
    with torch.device("meta"):
        vae = build_vae(config)
    return 4 * sum(p.numel() for p in vae.parameters())


@functools.lru_cache(maxsize=16)
def vae_bytes_per_pixel(config: WanVAEConfig) -> tuple[float, float]:
    """(decode, encode) working set per output pixel of a Wan VAE, float32: the published
    configurations' constants, else :func:`measure_vae_bytes_per_pixel` (once per config)."""
    if config in _VAE_PER_PIXEL:
        return _VAE_PER_PIXEL[config]
    return measure_vae_bytes_per_pixel(config)


def measure_vae_bytes_per_pixel(config: WanVAEConfig) -> tuple[float, float]:
    """Measure (decode, encode) bytes per output pixel by running the VAE on the meta device
    under a :class:`TensorMemoryTracker` (about a second; nothing is allocated).

    Decode: a 2-frame latent of 2×2 cells; the peak minus the output video and the two
    latent-sized tensors the decoder keeps. Encode: a 1 + r frame clip (its 4-frame chunk is
    the larger). Every tensor in these VAEs scales with the pixel area, so the figures hold for
    any size.
    """
    with torch.device("meta"):
        vae = build_vae(config)
    s, z = config.spatial_factor, config.z_dim
    pixels = (2 * s) ** 2
    latent = torch.empty(1, z, 2, 2, 2, device="meta")
    with torch.inference_mode(), TensorMemoryTracker() as tracker:
        vae.decode(latent)
    frames = 1 + config.temporal_factor
    decode = (tracker.peak - 3 * frames * pixels * 4 - 2 * latent.numel() * 4) / pixels
    video = torch.empty(1, 3, frames, 2 * s, 2 * s, device="meta")
    with torch.inference_mode(), TensorMemoryTracker() as tracker:
        vae.encode(video)
    return decode, tracker.peak / pixels


# --- activations -----------------------------------------------------------------------------


def dit_activation_bytes(
    config: WanDiTConfig,
    tokens: int,
    batch: int,
    act_bytes: int,
    *,
    context_len: int | None = None,
    per_token_time: bool = True,
) -> int:
    """Peak bytes a DiT forward allocates (beyond weights and inputs) for ``batch`` × ``tokens``.

    ``R = B·L·dim·4`` is one float32 copy of the residual stream. The block peak is the larger
    of the FFN phase ``3R + 2·B·L·ffn_dim·a`` and the attention phase ``3R + 5·B·L·dim·a``
    (a = ``act_bytes``); per-token time embeddings add 7R; the embedded context
    ``B·L_ctx·dim·a`` and cross-attention keys/values (3 more of that) are added on top.
    """
    lc = config.text_len if context_len is None else context_len
    rows = batch * tokens
    residual = rows * config.dim * 4
    ffn_phase = 3 * residual + 2 * rows * config.ffn_dim * act_bytes
    attention_phase = 3 * residual + 5 * rows * config.dim * act_bytes
    time = 7 * residual if per_token_time else 0
    context = 4 * batch * lc * config.dim * act_bytes
    return max(ffn_phase, attention_phase) + time + context


def text_activation_bytes(shape: TextEncoderShape, batch: int, act_bytes: int) -> int:
    """Peak bytes a UMT5 forward allocates: position bias and scores ``(1 + 2.5·B)·h·L²`` plus
    a few ``B·L·d`` float32 hidden states."""
    scores = shape.num_heads * shape.length**2 * act_bytes
    hidden = batch * shape.length * shape.d_model * 4
    return int((1 + 2.5 * batch) * scores + 4 * hidden)


def itemsize(dtype: torch.dtype) -> int:
    """Bytes per element of ``dtype``."""
    return torch.empty((), dtype=dtype).element_size()


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
    batch = 1 if request.guidance == 1.0 else 2
    shape = g.latent_shape(request.frames, request.height, request.width)
    latent = 4 * shape[1] * shape[2] * shape[3] * shape[4]
    tokens = g.latent_frames(request.frames) * g.tokens_per_frame(request.height, request.width)
    pixels = request.height * request.width
    video = 3 * request.frames * pixels * 4
    return _Stages(
        encode=text_activation_bytes(memory.text, batch, memory.text_act_bytes),
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
    te, dit, vae = memory.text_encoder_bytes, memory.dit_bytes, memory.vae_bytes
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
    """Weight bytes on the device during each stage under ``policy``."""
    te, dit, vae = memory.text_encoder_bytes, memory.dit_bytes, memory.vae_bytes
    if policy is OffloadPolicy.NONE:
        return dict.fromkeys(("encode", "condition", "sample", "decode"), te + dit + vae)
    if policy is OffloadPolicy.TEXT_ENCODER:
        return {"encode": te + dit + vae, "condition": dit + vae, "sample": dit + vae,
                "decode": dit + vae}  # fmt: skip
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
