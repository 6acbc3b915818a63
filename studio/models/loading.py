"""Loading a module straight to its device and dtype, tensor by tensor.

:func:`load_module` builds the module with its parameters on the ``meta`` device (no memory, no
random init), reads the probed files one tensor at a time — each cast to the target dtype and
moved to the target device as it is read — and assigns them with
``load_state_dict(..., assign=True)``. The weights exist once, on the device; there is never a
second full copy in host memory. Before a single byte of tensor data is read, the file keys
(mapped through the family's layout table) are checked against the module: missing, unexpected
and wrongly shaped tensors are all reported in one :class:`~studio.errors.CheckpointError`.

fp8 weights (plain, or ComfyUI's scaled files: :mod:`studio.models.fp8`) are dequantized as they
are read — except, on CUDA, the weights a module declares it upcasts itself
(:class:`~studio.models.fp8.KeepsFp8`): those stay fp8 (one byte each) with their scale beside.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

import torch
from torch import nn

from studio.engine.cancel import NEVER, CancelToken
from studio.errors import CheckpointError
from studio.models.checkpoint import (
    SAFETENSORS_DTYPES,
    CheckpointHeader,
    damaged,
    few,
    load_torch_state,
)
from studio.models.fp8 import (
    FP8_DTYPES,
    Fp8Plan,
    KeepsFp8,
    check_fp8,
    checked_scale,
    dequantize,
    fp8_plan,
    keep_in_fp8,
)
from studio.models.weight_files import WeightFiles

log = logging.getLogger(__name__)

ModuleT = TypeVar("ModuleT", bound=nn.Module)

_META_LOCK = threading.Lock()

#: How :func:`load_module` treats fp8 weights: "auto" keeps them fp8 on CUDA where the module
#: upcasts them itself, "keep" does so on any device (tests run it on the CPU), "dequantize"
#: never keeps them.
FP8_POLICIES = ("auto", "keep", "dequantize")


@contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Build modules with every parameter on the ``meta`` device (no memory, no init work).

    Buffers are created normally, so tables a module computes in ``__init__`` (non-persistent
    buffers that no checkpoint holds) stay valid. Implemented by wrapping
    ``nn.Module.register_parameter`` for the duration; a lock keeps two loads from overlapping.
    """
    original = nn.Module.register_parameter

    def register_on_meta(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        if param is not None and param.device.type != "meta":
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        original(module, name, param)

    with _META_LOCK:
        nn.Module.register_parameter = register_on_meta  # type: ignore[method-assign]
        try:
            yield
        finally:
            nn.Module.register_parameter = original  # type: ignore[method-assign]


def load_module(
    build: Callable[[], ModuleT],
    weights: WeightFiles,
    key_map: Mapping[str, str],
    *,
    device: torch.device | str,
    dtype: torch.dtype,
    tied: Mapping[str, str] | None = None,
    keep_float32: Callable[[str], bool] | None = None,
    what: str = "model",
    cancel: CancelToken = NEVER,
    fp8: str = "auto",
) -> ModuleT:
    """Build a module without weights and fill it from ``weights``, tensor by tensor.

    Args:
        build: constructs the module (called inside :func:`parameters_on_meta`).
        weights: the probed files.
        key_map: file key → module key for every tensor the files may hold (the family's
            layout table applied to the file's keys). File keys outside it are "unexpected";
            fp8 scales and markers are never weights and are set aside first.
        device, dtype: where the weights go and in what precision (floating tensors only;
            integer tensors keep their dtype; fp8 ones are dequantized to it unless kept).
        tied: module key → module key whose tensor it shares (tied embeddings); either one in
            the file fills both, and the tensor is read and stored once.
        keep_float32: module keys to keep in float32 whatever ``dtype`` is (fp8 ones are
            dequantized to float32).
        what: how messages name the part ("Wan DiT", "Wan 2.1 VAE").
        cancel: checked between tensors.
        fp8: one of :data:`FP8_POLICIES`.

    Returns:
        The module in eval mode, every parameter and buffer on ``device``.

    Raises:
        CheckpointError: missing or unexpected keys (the first few of each listed, with the
            file named), tensors whose shape differs from the module's, or fp8 scales that are
            missing, misplaced, not one number, or not finite and positive.
    """
    if fp8 not in FP8_POLICIES:
        raise ValueError(f"fp8 must be one of {FP8_POLICIES}, not {fp8!r}")
    device = torch.device(device)
    with parameters_on_meta():
        module = build()
    expected = {name: tuple(t.shape) for name, t in module.state_dict(keep_vars=True).items()}
    check_fp8(weights.headers)
    plan = fp8_plan(weights.tensors())
    reads = _plan(weights, key_map, expected, tied or {}, what, plan.extra_keys)
    _check_float(weights, reads, module, what)
    convert = _Converter(device, dtype, keep_float32, _fp8_keeper(module, fp8, device),
                         _read_scales(weights, plan, reads, cancel))
    state = _read_state(weights, reads, convert, cancel)
    module.load_state_dict(state, strict=True, assign=True)
    del state
    for key, scale in convert.kept.items():
        keep_in_fp8(module.get_submodule(key.rpartition(".")[0]), scale, dtype)
    module.to(device)  # buffers that no checkpoint holds were built on the CPU
    log.info("loaded %s from %s (%d tensors, %d kept in fp8) onto %s as %s", what,
             weights.label, len(reads), len(convert.kept), device, dtype)
    return module.eval()


class _Converter:
    """Turns each tensor read into the value its parameter gets (device, dtype, fp8 handling),
    and remembers the fp8 weights it kept with their scales (``kept``: module key → scale)."""

    def __init__(self, device: torch.device, dtype: torch.dtype,
                 keep_float32: Callable[[str], bool] | None, keeps_fp8: Callable[[str], bool],
                 scales: Mapping[str, torch.Tensor]) -> None:
        self.device, self.dtype, self.scales = device, dtype, scales
        self.keep_float32, self.keeps_fp8 = keep_float32, keeps_fp8
        self.kept: dict[str, torch.Tensor | None] = {}

    def __call__(self, header: CheckpointHeader, file_key: str, module_key: str,
                 tensor: torch.Tensor) -> torch.Tensor:
        # A pickle's tensors are views of its memory-mapped file: copy them off it, so no
        # weight keeps the file mapped or changes with it (one tensor at a time).
        copy = header.format == "torch"
        if not tensor.is_floating_point():
            return tensor.to(device=self.device, copy=copy)
        wide = self.keep_float32 is not None and self.keep_float32(module_key)
        target = torch.float32 if wide else self.dtype
        scale = self.scales.get(file_key)
        if tensor.dtype in FP8_DTYPES and not wide and self.keeps_fp8(module_key):
            self.kept[module_key] = scale
            return tensor.to(device=self.device, copy=copy)
        if tensor.dtype in FP8_DTYPES or scale is not None:  # moved first: 1 byte per element
            return dequantize(tensor.to(self.device), scale, target)
        return tensor.to(device=self.device, copy=copy, dtype=target)


def _fp8_keeper(module: nn.Module, policy: str, device: torch.device) -> Callable[[str], bool]:
    """Which module keys stay fp8: those the module upcasts itself, on CUDA (or when asked)."""
    keep = policy == "keep" or (policy == "auto" and device.type == "cuda")
    if keep and isinstance(module, KeepsFp8):
        return module.keeps_fp8
    return lambda key: False


def _read_scales(weights: WeightFiles, plan: Fp8Plan, reads: Mapping[str, list[str]],
                 cancel: CancelToken) -> dict[str, torch.Tensor]:
    """Weight file key → its checked float32 scale, for the weights that will be read (the
    scales are tiny: all are read before any weight, so a bad one stops the load early)."""
    wanted_scales = {scale: weight for weight, scale in plan.scales.items() if weight in reads}
    scales: dict[str, torch.Tensor] = {}
    for header in weights.headers:
        wanted = {key: weight for key, weight in wanted_scales.items() if key in header.tensors}
        for key, tensor in _read_tensors(header, wanted, cancel):
            scales[wanted[key]] = checked_scale(header.path, key, tensor)
    return scales


def _read_state(weights: WeightFiles, reads: Mapping[str, list[str]], convert: _Converter,
                cancel: CancelToken) -> dict[str, torch.Tensor]:
    """Module key → converted tensor, every file read once in order."""
    state: dict[str, torch.Tensor] = {}
    for header in weights.headers:
        wanted = {key: reads[key] for key in header.tensors if key in reads}
        for file_key, tensor in _read_tensors(header, wanted, cancel):
            module_keys = wanted[file_key]
            value = convert(header, file_key, module_keys[0], tensor)
            for module_key in module_keys:
                state[module_key] = value
    return state


def _plan(
    weights: WeightFiles,
    key_map: Mapping[str, str],
    expected: Mapping[str, tuple[int, ...]],
    tied: Mapping[str, str],
    what: str,
    ignored: frozenset[str] = frozenset(),
) -> dict[str, list[str]]:
    """File key → the module keys its tensor fills; a CheckpointError lists every discrepancy.
    ``ignored`` file keys (fp8 scales and markers) are neither read nor unexpected."""
    tensors = {key: info for key, info in weights.tensors().items() if key not in ignored}
    provided = {key_map[key]: key for key in tensors if key in key_map}
    for one, other in tied.items():
        for dst, src in ((one, other), (other, one)):
            if src in provided:
                provided[dst] = provided[src]
    reads: dict[str, list[str]] = {}
    for module_key, file_key in provided.items():
        reads.setdefault(file_key, []).append(module_key)
    missing = sorted(set(expected) - set(provided))
    unexpected = sorted({key for key in tensors if key not in key_map}
                        | {provided[key] for key in set(provided) - set(expected)})
    wrong_shape = [
        f"{provided[key]!r} is {list(tensors[provided[key]].shape)}, expected "
        f"{list(expected[key])}"
        for key in sorted(set(provided) & set(expected))
        if tensors[provided[key]].shape != expected[key]
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing tensor(s): {few(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensor(s): {few(unexpected)}")
    if wrong_shape:
        problems.append(f"{len(wrong_shape)} tensor(s) of the wrong shape: "
                        + "; ".join(wrong_shape[:3]))
    if problems:
        raise CheckpointError(
            f"{weights.label} does not fit the {what}: " + "; ".join(problems),
            "the file belongs to a different model or variant; check the set's files",
        )
    return reads


def _check_float(weights: WeightFiles, reads: Mapping[str, list[str]], module: nn.Module,
                 what: str) -> None:
    """Refuse integer (or boolean) tensors where the module holds floating-point ones, before
    any data is read: a header that is otherwise consistent must not fail deep in a forward."""
    floating = {n for n, t in module.state_dict(keep_vars=True).items() if t.is_floating_point()}
    tensors = weights.tensors()
    odd = [f"{key!r} is {tensors[key].dtype}" for key, targets in sorted(reads.items())
           if targets[0] in floating and not _is_float_name(tensors[key].dtype)]
    if odd:
        raise CheckpointError(
            f"{weights.label} does not fit the {what}: {len(odd)} tensor(s) are not floating "
            f"point ({'; '.join(odd[:3])})",
            "the file is damaged or is not this model's weights; download it again",
        )


def _is_float_name(dtype: str) -> bool:
    torch_dtype = SAFETENSORS_DTYPES.get(dtype, (0, None))[1]
    return torch_dtype is not None and torch_dtype.is_floating_point


def read_tensors(weights: WeightFiles, keys: Iterable[str], cancel: CancelToken = NEVER
                 ) -> dict[str, torch.Tensor]:
    """The tensors named ``keys`` (file key names), read as :func:`load_module` reads them, for
    parts whose keys do not map one to one onto a module (fused projections split on load)."""
    wanted = set(keys)
    out: dict[str, torch.Tensor] = {}
    for header in weights.headers:
        mine = {key: None for key in header.tensors if key in wanted}
        out.update(_read_tensors(header, mine, cancel))
    return out


def _read_tensors(
    header: CheckpointHeader, wanted: Mapping[str, Any], cancel: CancelToken
) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (file key, CPU tensor) for the wanted keys of one file, one tensor at a time.

    safetensors: each tensor is read with plain file reads into a fresh buffer at the offsets
    the probe validated, so nothing stays memory-mapped. Pickles: ``torch.load`` with
    ``mmap=True``; the caller copies each tensor off the mapping.
    """
    try:
        if header.format == "safetensors":
            yield from _read_safetensors(header, wanted, cancel)
        else:
            state = load_torch_state(header.path)
            for key in wanted:
                cancel.check()
                yield key, state.pop(key)
            del state
    except OSError as exc:
        raise damaged(header.path, f"could not be read while loading ({exc})") from exc


def _read_safetensors(
    header: CheckpointHeader, wanted: Mapping[str, Any], cancel: CancelToken
) -> Iterator[tuple[str, torch.Tensor]]:
    data_start = 8 + header.header_size
    with header.path.open("rb") as handle:
        for key in sorted(wanted, key=lambda k: header.tensors[k].offsets):  # sequential reads
            cancel.check()
            info = header.tensors[key]
            dtype = SAFETENSORS_DTYPES[info.dtype][1]
            if dtype is None:
                raise damaged(header.path, f"tensor {key!r} is {info.dtype}, which this PyTorch "
                                           "cannot hold", "update PyTorch or convert the file")
            buffer = torch.empty(info.nbytes, dtype=torch.uint8)
            handle.seek(data_start + info.offsets[0])
            if handle.readinto(memoryview(buffer.numpy())) != info.nbytes:
                raise damaged(header.path, f"ended inside tensor {key!r}; the file changed or "
                                           "was truncated after it was scanned")
            yield key, buffer.view(dtype).reshape(info.shape)
