"""Resumable training checkpoints: weights (safetensors), optimizer state, a JSON state file.

A stage ``name`` in ``folder`` has ``name.safetensors`` (the model's and the EMA's weights,
prefixed ``model.`` / ``ema.``), ``name.optim.pt`` (optimizer state, read back with
``torch.load(weights_only=True)``; absent when the optimizer starts afresh) and ``name.json``
(step, stage, settings). Every file is
written atomically; the JSON is written last, so a checkpoint is only visible once complete.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from studio.media.atomic import atomic_path, atomic_write_bytes

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TrainState:
    """What a checkpoint's JSON file records."""

    step: int
    info: dict[str, Any]


def save_checkpoint(
    folder: Path,
    name: str,
    step: int,
    model: nn.Module,
    ema: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    info: dict[str, Any] | None = None,
) -> None:
    """Write the stage's checkpoint (weights, optimizer, then the JSON state).

    ``optimizer=None`` records that training resumes with a fresh optimizer (its own settings,
    no moments): any optimizer file of an earlier checkpoint is removed.
    """
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v.detach().contiguous().cpu() for k, v in ema.state_dict().items()})
    with atomic_path(folder / f"{name}.safetensors") as tmp:
        save_file(tensors, str(tmp))
    optim_file = folder / f"{name}.optim.pt"
    if optimizer is None:
        optim_file.unlink(missing_ok=True)
    else:
        buffer = io.BytesIO()
        torch.save(optimizer.state_dict(), buffer)
        atomic_write_bytes(optim_file, buffer.getvalue())
    state = {"stage": name, "step": step, "info": info or {}}
    atomic_write_bytes(folder / f"{name}.json", json.dumps(state, indent=2).encode("utf-8"))
    log.info("checkpoint %s at step %d", name, step)


def load_checkpoint(
    folder: Path,
    name: str,
    model: nn.Module,
    ema: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
) -> TrainState | None:
    """Restore a stage's checkpoint into ``model``/``ema``/``optimizer``; None if there is none."""
    state = read_state(folder, name)
    if state is None:
        return None
    tensors = load_file(str(folder / f"{name}.safetensors"))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    optim_file = folder / f"{name}.optim.pt"
    if optimizer is not None and optim_file.is_file():
        optimizer.load_state_dict(torch.load(optim_file, weights_only=True, map_location="cpu"))
    elif optimizer is not None:
        log.info("%s: no optimizer state saved; the optimizer starts afresh", name)
    log.info("resumed %s from step %d", name, state.step)
    return state


def read_state(folder: Path, name: str) -> TrainState | None:
    """The JSON state of a stage's checkpoint (step, info), or None if it has none."""
    state_file = folder / f"{name}.json"
    if not state_file.is_file():
        return None
    state = json.loads(state_file.read_text(encoding="utf-8"))
    return TrainState(int(state["step"]), dict(state.get("info", {})))


def load_ema_weights(folder: Path, name: str) -> dict[str, torch.Tensor]:
    """Only the EMA weights of a stage's checkpoint (keys without the ``ema.`` prefix)."""
    tensors = load_file(str(folder / f"{name}.safetensors"))
    return {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema ← decay·ema + (1 − decay)·model`` for every floating-point parameter and buffer."""
    for e, m in zip(ema.state_dict().values(), model.state_dict().values(), strict=True):
        if e.dtype.is_floating_point:
            e.lerp_(m.detach(), 1.0 - decay)
        else:
            e.copy_(m)


def write_weights(path: Path, weights: dict[str, torch.Tensor], recipe: str) -> None:
    """Write float32 ``weights`` to ``path`` atomically, ``recipe`` (JSON) in the metadata."""
    tensors = {k: v.detach().float().contiguous().cpu() for k, v in weights.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"recipe": recipe, "format": "pt"})
