"""fp8 weights: plain ``float8_e4m3fn`` / ``float8_e5m2`` tensors and ComfyUI's "fp8_scaled" files.

A scaled file stores each quantized weight ``X.weight`` in fp8 beside a float32 scalar
``X.scale_weight``; the real weight is ``X.weight.float() · X.scale_weight``. Such files also
hold an empty marker tensor ``scaled_fp8`` (with the model's key prefix, if any) and may hold
``X.scale_input`` scalars, which only ComfyUI's fp8 matrix multiply uses (docs/families/wan.md,
"fp8 weights"). A plain fp8 file has neither: its scale is 1.

Everything here works on headers first (:func:`fp8_plan`, :func:`fp8_problems`), so a file whose
scales cannot be right is refused before any tensor data is read; scale values are checked as
they are read (:func:`checked_scale`). Dequantizing is one float32 multiply, then one rounding to
the compute dtype (:func:`dequantize`) — the same numbers whether it happens at load time or
before each matrix multiply (:func:`weight_of`, for weights kept in fp8 on the GPU).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from studio.errors import CheckpointError
from studio.models.checkpoint import CheckpointHeader, TensorInfo, damaged, dominant_dtype

#: safetensors names of the fp8 formats weights may be stored in.
FP8_NAMES = frozenset({"F8_E4M3", "F8_E5M2"})
#: The torch dtypes of those formats (empty on a PyTorch without float8).
FP8_DTYPES = frozenset(d for d in (getattr(torch, "float8_e4m3fn", None),
                                   getattr(torch, "float8_e5m2", None)) if d is not None)
#: What ``studio models scan`` calls a set whose DiT is a ComfyUI scaled fp8 file.
SCALED_PRECISION = "fp8_scaled"

SCALE_SUFFIX = ".scale_weight"
INPUT_SCALE_SUFFIX = ".scale_input"
MARKER = "scaled_fp8"

_FIX = "the file is damaged or was converted wrongly; use the model's bf16/fp16 file instead"


@dataclass(frozen=True, slots=True)
class Fp8Plan:
    """How a set of files stores fp8 weights, from the headers alone.

    Attributes:
        scales: weight key → the key of its ``scale_weight`` (file key names).
        ignored: the marker and ``scale_input`` keys: read never, fill no parameter.
        scaled: the files are a scaled fp8 checkpoint (a marker or any ``scale_weight``).
    """

    scales: Mapping[str, str]
    ignored: frozenset[str]
    scaled: bool

    @property
    def extra_keys(self) -> frozenset[str]:
        """File keys that are not weights of the module (scales, inputs' scales, marker)."""
        return self.ignored | frozenset(self.scales.values())


@runtime_checkable
class KeepsFp8(Protocol):
    """A module whose forward upcasts some fp8 weights itself (each through :func:`weight_of`)."""

    def keeps_fp8(self, key: str) -> bool:
        """Whether parameter ``key`` (module layout) may stay fp8 on the device."""
        ...


def is_marker(key: str) -> bool:
    return key == MARKER or key.endswith("." + MARKER)


def fp8_plan(tensors: Mapping[str, TensorInfo]) -> Fp8Plan:
    """Pair every ``X.scale_weight`` with ``X.weight`` and set the marker and inputs' scales aside.

    A scale whose weight is absent is still listed (under the weight key it would scale), so
    :func:`fp8_problems` can name it.
    """
    scales = {key[: -len(SCALE_SUFFIX)] + ".weight": key
              for key in tensors if key.endswith(SCALE_SUFFIX)}  # fmt: skip
    ignored = frozenset(key for key in tensors
                        if is_marker(key) or key.endswith(INPUT_SCALE_SUFFIX))  # fmt: skip
    marked = any(is_marker(key) for key in tensors)
    return Fp8Plan(scales=scales, ignored=ignored, scaled=marked or bool(scales))


def fp8_problems(headers: Iterable[CheckpointHeader]) -> list[str]:
    """Why these files' scales cannot be applied, each naming the file and tensor ([] = they can).

    Checked on headers: a scale is one floating-point number and sits beside its weight, and in
    a scaled file every fp8 weight has its scale (an unscaled one would load 10²–10³ times off).
    """
    headers = list(headers)
    where = {key: header.path for header in headers for key in header.tensors}
    tensors = {key: info for header in headers for key, info in header.tensors.items()}
    plan = fp8_plan(tensors)
    problems = []
    for weight, scale in sorted(plan.scales.items()):
        info = tensors[scale]
        if weight not in tensors:
            problems.append(f"{where[scale]}: {scale!r} scales {weight!r}, which no file holds")
        elif info.numel != 1 or info.dtype not in ("F32", "F16", "BF16", "F64"):
            problems.append(f"{where[scale]}: {scale!r} is {info.dtype} {list(info.shape)}; a "
                            "scale_weight must be a single floating-point number")
    if plan.scaled:
        problems += [f"{where[key]}: fp8 tensor {key!r} has no "
                     f"{key.removesuffix('.weight') + SCALE_SUFFIX!r} although the file is a "
                     "scaled fp8 checkpoint"
                     for key, info in sorted(tensors.items())
                     if info.dtype in FP8_NAMES and key not in plan.scales
                     and key not in plan.extra_keys]  # fmt: skip
    return problems


def check_fp8(headers: Iterable[CheckpointHeader]) -> None:
    """Raise the first of :func:`fp8_problems` (with the count of the others), if any."""
    problems = fp8_problems(headers)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise CheckpointError(problems[0] + more, _FIX)


def checked_scale(path: Path, key: str, value: torch.Tensor) -> torch.Tensor:
    """The scale read from ``key`` as a float32 scalar; refused unless finite and positive.

    A zero, negative, infinite or NaN scale would silently give zero, flipped or NaN weights.
    """
    scale = value.detach().reshape(()).to(torch.float32)
    number = float(scale)
    if not math.isfinite(number) or number <= 0.0:
        raise damaged(path, f"tensor {key!r} is {number!r}; a scale_weight must be a finite "
                            "positive number", _FIX)
    return scale


def dequantize(weight: torch.Tensor, scale: torch.Tensor | None,
               dtype: torch.dtype) -> torch.Tensor:
    """``weight.float() · scale`` rounded once to ``dtype`` (any shape; scale a float32 scalar).

    fp8 → float32 is exact; the product is rounded once in float32 and once more to ``dtype``,
    IEEE operations that every device does alike, so dequantizing at load time and before each
    matrix multiply give identical numbers.
    """
    wide = weight.to(torch.float32)
    if scale is not None:
        wide = wide * scale.to(device=wide.device)
    return wide.to(dtype)


def keep_in_fp8(layer: nn.Module, scale: torch.Tensor | None, compute_dtype: torch.dtype) -> None:
    """Note on ``layer`` (whose ``weight`` is fp8) how :func:`weight_of` upcasts it.

    The scale becomes a non-persistent buffer (it follows the layer between devices but is not
    part of the state dict, so the module's key layout is unchanged).
    """
    one = torch.ones((), dtype=torch.float32, device=layer.weight.device)
    value = one if scale is None else scale.to(device=layer.weight.device, dtype=torch.float32)
    layer.register_buffer("weight_scale", value, persistent=False)
    layer.fp8_compute_dtype = compute_dtype


def compute_dtype(layer: nn.Module) -> torch.dtype:
    """The dtype ``layer`` multiplies in: its weight's, or the compute dtype of a kept fp8 one."""
    weight = layer.weight
    if weight.dtype in FP8_DTYPES:
        return layer.fp8_compute_dtype
    return weight.dtype


def weight_of(layer: nn.Module) -> torch.Tensor:
    """``layer.weight`` ready to multiply: itself, or a kept fp8 weight dequantized for this call
    (a transient copy of 4 + 2 bytes per element in bf16 compute; freed after the multiply)."""
    weight = layer.weight
    if weight.dtype not in FP8_DTYPES:
        return weight
    return dequantize(weight, layer.weight_scale, layer.fp8_compute_dtype)


def precision_name(tensors: Mapping[str, TensorInfo]) -> str:
    """The dtype holding most bytes, or "fp8_scaled" when that is fp8 in a scaled file."""
    name = dominant_dtype(tensors.values())
    return SCALED_PRECISION if name in FP8_NAMES and fp8_plan(tensors).scaled else name


def is_fp8_precision(name: str) -> bool:
    """Whether a scan's precision string ("fp8_scaled", "F8_E4M3", "BF16", …) is fp8."""
    return name == SCALED_PRECISION or name in FP8_NAMES
