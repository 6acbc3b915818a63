"""The memory forecast the app shows before Generate, and the offload policy a set loads with.

:func:`forecast_request` computes peak RAM (and VRAM on CUDA) for a request from the model's
:class:`~studio.engine.memory_model.ModelMemory` — measured by its family on the loaded modules,
carried by :class:`~studio.service.model_info.ModelInfo`. :func:`plan_offload` asks the family
for the planned memory of a set before it is loaded.
"""

from __future__ import annotations

from typing import Protocol

import torch

from studio.engine.memory_forecast import (
    GIB,
    ForecastRequest,
    MemoryForecast,
    choose_offload,
    forecast_memory,
)
from studio.engine.memory_model import ModelMemory
from studio.engine.model import LoadedModel
from studio.engine.offload import AUTO, OffloadPolicy, PolicyChoice, free_device_memory
from studio.engine.request import GenerationRequest
from studio.errors import OutOfMemory
from studio.models.family import ModelFamily, ModelSet
from studio.service.process_memory import available_ram, current_rss


class _ModelInfo(Protocol):
    device: str
    memory: ModelMemory | None
    offload: str


def forecast_request(
    model_info: _ModelInfo,
    request: ForecastRequest,
    policy: OffloadPolicy | str | None = None,
) -> MemoryForecast | None:
    """The forecast the app shows before Generate; None when the model has no memory model.

    Args:
        model_info: a :class:`~studio.service.model_info.ModelInfo` (or anything with
            ``device``, ``memory`` and ``offload``, the policy name in use).
        request: the request as edited (sizes must be valid for the model).
        policy: override of the policy to assume (default: the model's).

    Plain arithmetic: cheap enough to call on every edit.
    """
    if model_info.memory is None:
        return None
    chosen = policy or model_info.offload or OffloadPolicy.NONE.value
    return forecast_memory(model_info.memory, request, model_info.device, OffloadPolicy(chosen))


def plan_offload(owner: ModelFamily, model_set: ModelSet, dtype: torch.dtype,
                 device: torch.device, requested: OffloadPolicy | str = AUTO) -> PolicyChoice:
    """The offload policy to load ``model_set`` with on ``device``.

    ``requested`` (the ``offload`` setting) wins when it names a policy; ``"auto"`` takes the
    fastest policy whose VRAM forecast for the set's default request (default size, frames and
    guidance) fits the free memory. Off CUDA, and for sets without a planned memory, ``none``.
    """
    defaults = owner.defaults_for(model_set)
    memory = owner.planned_memory(model_set, dtype) if defaults is not None else None
    if defaults is None:
        return choose_offload(None, GenerationRequest(prompt=""), device, requested)
    width, height = defaults.sizes[0]
    request = GenerationRequest(prompt="", width=width, height=height, frames=defaults.frames,
                                guidance=defaults.guidance)  # fmt: skip
    return choose_offload(memory, request, device, requested)


def check_memory(model: LoadedModel, request: GenerationRequest) -> None:
    """Refuse, before any sampling, a request whose forecast peak exceeds the memory there is.

    On the CPU the forecast RAM is compared with what the system has available now plus what
    this process already holds (its weights are part of the forecast); on CUDA the forecast
    VRAM with the free device memory plus what the studio already holds. Without a forecast
    or a reading nothing is refused.

    Raises:
        OutOfMemory: naming the forecast, what is available and the shortfall.
    """
    if model.memory is None:
        return
    forecast = forecast_memory(model.memory, request, model.device.type,
                               OffloadPolicy(model.offload))
    if model.device.type == "cuda":
        need, have, where = forecast.vram_bytes, _free_vram(model.device), "GPU memory"
    else:
        available = available_ram()
        need, where = forecast.ram_bytes, "RAM"
        have = None if available is None else available + current_rss()
    if have is not None and need > have:
        raise OutOfMemory(
            f"this video needs about {need / GIB:.1f} GiB of {where} but {have / GIB:.1f} GiB "
            f"are available ({(need - have) / GIB:.1f} GiB short)",
            "use fewer frames or a smaller size, or close other programs",
        )


def _free_vram(device: torch.device) -> int:
    return free_device_memory(device) + torch.cuda.memory_allocated(device)
