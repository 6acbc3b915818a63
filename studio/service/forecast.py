"""The memory forecast for a loaded model or a published Wan release, for the app and the CLI.

:func:`forecast_request` is what the app shows before Generate: peak RAM (and VRAM on CUDA)
for a request, with a breakdown, computed by :mod:`studio.engine.memory_forecast` from the
model's :class:`~studio.engine.memory_forecast.ModelMemory` — measured on the loaded modules by
:func:`model_memory`, or derived from the configuration of a published release by
:func:`variant_memory` when nothing is loaded.
"""

from __future__ import annotations

from typing import Protocol

import torch

from studio.engine.memory_forecast import (
    ForecastRequest,
    MemoryForecast,
    ModelMemory,
    TextEncoderShape,
    choose_offload,
    dit_parameter_counts,
    dit_weight_bytes,
    forecast_memory,
    itemsize,
    umt5_weight_bytes,
    vae_bytes_per_pixel,
    vae_weight_bytes,
)
from studio.engine.offload import AUTO, OffloadPolicy, PolicyChoice, part_module
from studio.engine.request import GenerationRequest
from studio.engine.streaming import block_list
from studio.models.family import LoadedModel
from studio.models.wan.dit import WanDiT
from studio.models.wan.dit_config import WAN21_T2V_1_3B, WAN21_T2V_14B, WAN22_TI2V_5B
from studio.models.wan.presets import VARIANTS, WAN21_GEOMETRY, WAN22_GEOMETRY
from studio.models.wan.vae import WAN21_VAE, WAN22_VAE, CausalVideoVAE


def _module_bytes(module: torch.nn.Module | None) -> int:
    """Bytes of a module's parameters and buffers, tied tensors counted once."""
    if module is None:
        return 0
    unique = {id(t): t for t in (*module.parameters(), *module.buffers())}
    return sum(t.numel() * t.element_size() for t in unique.values())


def _part_bytes(model: LoadedModel, name: str, module: torch.nn.Module | None
                ) -> tuple[int, int, int]:
    """(part bytes, bytes of one repeated block, block count) of a loaded part; blocks that an
    offload policy streams are counted from their host copies."""
    residency = getattr(model.denoiser, "residency", None)
    streamer = getattr(residency, "streamers", {}).get(name)
    if streamer is not None:
        total = residency.homes[name].nbytes + sum(h.nbytes for h in streamer.homes)
        return total, streamer.block_bytes, len(streamer.homes)
    blocks = block_list(module) if module is not None else None
    if blocks is None:
        return _module_bytes(module), 0, 0
    return _module_bytes(module), _module_bytes(blocks[1][0]), len(blocks[1])


def model_memory(model: LoadedModel) -> ModelMemory | None:
    """The forecast inputs of a loaded model, or None for a family without an activation model.

    Weight bytes are counted on the loaded modules themselves (exact, whatever their dtypes),
    also when an offload policy keeps some of them in host memory.
    """
    dit = part_module(model.denoiser)
    vae = part_module(model.vae)
    if not isinstance(dit, WanDiT) or not isinstance(vae, CausalVideoVAE):
        return None
    encoder = part_module(model.text_encoder)
    config = getattr(encoder, "config", None)
    text = TextEncoderShape(getattr(config, "d_model", dit.config.text_dim),
                            getattr(config, "num_heads", 64), dit.config.text_len)
    dit_bytes, dit_block, _ = _part_bytes(model, "dit", dit)
    text_bytes, text_block, text_layers = _part_bytes(model, "text_encoder", encoder)
    decode, encode = vae_bytes_per_pixel(vae.config)
    text_dtype = getattr(encoder, "dtype", torch.float32)
    return ModelMemory(
        family=model.family, dit_bytes=dit_bytes, dit_block_bytes=dit_block,
        text_encoder_bytes=text_bytes, vae_bytes=_part_bytes(model, "vae", vae)[0],
        dit=dit.config, act_bytes=itemsize(dit.dtype),
        per_token_time=_per_token_time(model.denoiser), text=text,
        text_act_bytes=itemsize(text_dtype), vae_decode_per_pixel=decode,
        vae_encode_per_pixel=encode, geometry=model.geometry, text_block_bytes=text_block,
        text_layers=text_layers,
    )  # fmt: skip


def _per_token_time(denoiser: object) -> bool:
    """Whether a (possibly wrapped) Wan denoiser embeds the time per token: all but
    :meth:`WanDiT.velocity_uniform` do."""
    for _ in range(8):
        if getattr(denoiser, "__name__", "") == "velocity_uniform":
            return False
        denoiser = getattr(denoiser, "inner", None)
        if denoiser is None:
            break
    return True


#: The UMT5-XXL encoder every Wan release uses (models.md §1.4).
UMT5_XXL = {"vocab": 256384, "d_model": 4096, "d_ff": 10240, "layers": 24, "heads": 64,
            "d_kv": 64, "buckets": 32}  # fmt: skip
_PUBLISHED = {"t2v-1.3b": (WAN21_T2V_1_3B, WAN21_VAE, WAN21_GEOMETRY),
              "t2v-14b": (WAN21_T2V_14B, WAN21_VAE, WAN21_GEOMETRY),
              "ti2v-5b": (WAN22_TI2V_5B, WAN22_VAE, WAN22_GEOMETRY)}  # fmt: skip


def variant_memory(variant: str, dtype: torch.dtype) -> ModelMemory | None:
    """Forecast inputs of a published Wan release from its configuration (nothing loaded):
    DiT and UMT5-XXL in ``dtype``, VAE in float32. None for other variants."""
    if variant not in _PUBLISHED:
        return None
    dit, vae, geometry = _PUBLISHED[variant]
    fp32, other = dit_parameter_counts(dit)
    per_block_fp32 = 12 * dit.dim
    per_block = 8 * (dit.dim**2 + dit.dim) + 2 * dit.dim * dit.ffn_dim + dit.ffn_dim + dit.dim
    decode, encode = vae_bytes_per_pixel(vae)
    return ModelMemory(
        family="wan", dit_bytes=dit_weight_bytes(dit, dtype),
        dit_block_bytes=4 * per_block_fp32 + itemsize(dtype) * per_block,
        text_encoder_bytes=umt5_weight_bytes(dtype=dtype, **UMT5_XXL),
        vae_bytes=vae_weight_bytes(vae), dit=dit, act_bytes=itemsize(dtype),
        per_token_time=dit.in_dim == 48,  # TI2V takes reference frames; T2V runs uniform t
        text=TextEncoderShape(4096, 64, dit.text_len),
        text_act_bytes=itemsize(dtype), vae_decode_per_pixel=decode,
        vae_encode_per_pixel=encode, geometry=geometry,
        text_block_bytes=_umt5_layer_bytes(dtype), text_layers=UMT5_XXL["layers"],
    )  # fmt: skip


def _umt5_layer_bytes(dtype: torch.dtype) -> int:
    x = UMT5_XXL
    inner = x["heads"] * x["d_kv"]
    return itemsize(dtype) * (4 * x["d_model"] * inner + x["buckets"] * x["heads"]
                               + 2 * x["d_model"] + 3 * x["d_model"] * x["d_ff"])


class _ModelInfo(Protocol):
    variant: str
    device: str
    precision: str


def forecast_request(
    model_info: _ModelInfo,
    request: ForecastRequest,
    policy: OffloadPolicy | str | None = None,
) -> MemoryForecast | None:
    """The forecast the app shows before Generate; None when the model has no memory model.

    Args:
        model_info: a :class:`~studio.service.model_info.ModelInfo` (or anything with
            ``variant``, ``device``, ``precision`` and optionally ``memory`` — a
            :class:`ModelMemory` — and ``offload``, the policy name in use).
        request: the request as edited (sizes must be valid for the model).
        policy: override of the policy to assume (default: the model's, else "none").

    Plain arithmetic: cheap enough to call on every edit.
    """
    memory = getattr(model_info, "memory", None)
    if memory is None:
        dtype = getattr(torch, model_info.precision, torch.float32)
        memory = variant_memory(model_info.variant, dtype)
    if memory is None:
        return None
    chosen = policy or getattr(model_info, "offload", None) or OffloadPolicy.NONE.value
    return forecast_memory(memory, request, model_info.device, OffloadPolicy(chosen))


def plan_offload(variant: str, dtype: torch.dtype, device: torch.device,
                 requested: OffloadPolicy | str = AUTO) -> PolicyChoice:
    """The offload policy to load a published Wan release with on ``device``.

    ``requested`` (the ``offload`` setting) wins when it names a policy; ``"auto"`` takes the
    fastest policy whose VRAM forecast for the release's default request (default size, frames
    and guidance) fits the free memory. Off CUDA, and for sizes without a forecast, ``none``.
    """
    memory = variant_memory(variant, dtype)
    defaults = VARIANTS[variant].defaults if variant in VARIANTS else None
    if defaults is None:
        return choose_offload(None, GenerationRequest(prompt=""), device, requested)
    width, height = defaults.sizes[0]
    request = GenerationRequest(prompt="", width=width, height=height, frames=defaults.frames,
                                guidance=defaults.guidance)  # fmt: skip
    return choose_offload(memory, request, device, requested)
