"""Weight patches (LoRA and full deltas) on a denoiser, merged or applied on the fly.

A patch names parameters of the denoiser module (``LoadedModel.modules.parts["dit"]``) in the
family's own layout and gives each a change ΔW:

* low rank: ``ΔW = strength · scale · up @ down`` with ``down`` ``[r, in, *k]`` and ``up``
  ``[out, r, *1]`` (``scale`` = alpha / r; convolution kernels are flattened, then reshaped);
* full: ``ΔW = strength · diff`` for any parameter (bias and norm deltas, modulation tables).

Both modes compute the patched weight the same way — ``(W.float() + Σ ΔW).to(W.dtype)``, the
deltas summed in float32 in a fixed order — so they give the same numbers (a weight kept in
float8 is dequantized first and patched in its compute dtype):

* **merge** writes it into the weights once (the fastest; the model cache then remembers which
  patch its weights carry);
* **on the fly** writes it just before the module that owns the weight runs and puts the
  original back right after: each repeated block is patched in its own forward hooks (so block
  streaming keeps working: the block is on the device by then, and released after the
  original is back), everything else in the denoiser module's hooks. The model is unchanged
  between jobs. This needs the family to call the denoiser module and its blocks as modules
  (``module(...)``), which the engine's block streaming needs as well.

This module knows no file format; :mod:`studio.models.lora_file` reads them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

MERGE, ON_THE_FLY, AUTO = "merge", "on-the-fly", "auto"
LORA_MODES = (AUTO, MERGE, ON_THE_FLY)


@dataclass(frozen=True, slots=True)
class WeightDelta:
    """The change of one parameter, before the strength is applied.

    Attributes:
        parameter: the parameter's dotted name in the denoiser module.
        up, down: low-rank factors ``[out, r, *1]`` and ``[r, in, *k]`` (None for a full delta).
        full: a full delta shaped like the parameter (None for a low-rank one).
        scale: alpha / r for low rank (1 without alpha); 1 for full deltas.
    """

    parameter: str
    up: torch.Tensor | None = None
    down: torch.Tensor | None = None
    full: torch.Tensor | None = None
    scale: float = 1.0

    def tensor(self, shape: torch.Size, device: torch.device) -> torch.Tensor:
        """ΔW / strength in float32, shaped ``shape``, on ``device``."""
        if self.full is not None:
            return self.full.to(device, torch.float32).reshape(shape) * self.scale
        assert self.up is not None and self.down is not None
        up = self.up.to(device, torch.float32).flatten(1)
        down = self.down.to(device, torch.float32).flatten(1)
        return (up @ down).reshape(shape) * self.scale


@dataclass(frozen=True, slots=True)
class StrengthDelta:
    """A :class:`WeightDelta` with the strength its LoRA is used at."""

    delta: WeightDelta
    strength: float


@dataclass(slots=True)
class WeightPatch:
    """Every change to apply, grouped by parameter (the order of the LoRAs is kept).

    Attributes:
        changes: parameter name → its deltas with their strengths.
        fingerprint: identifies the patch (files, strengths); the model cache keys merged
            weights by it.
    """

    changes: dict[str, list[StrengthDelta]] = field(default_factory=dict)
    fingerprint: str = ""

    def add(self, delta: WeightDelta, strength: float) -> None:
        self.changes.setdefault(delta.parameter, []).append(StrengthDelta(delta, strength))

    def patched(self, name: str, weight: torch.Tensor, owner: nn.Module | None = None
                ) -> torch.Tensor:
        """``(W.float() + Σ strength·ΔW).to(W.dtype)`` for parameter ``name``.

        A weight kept in float8 (its module ``owner`` has a ``weight_scale`` and an
        ``fp8_compute_dtype``, as :mod:`studio.models.fp8` keeps them) counts as
        ``W.float() · scale`` and the result is in the compute dtype, so the module then
        multiplies with it as with any other weight.
        """
        total, dtype = _real_weight(weight, owner)
        for change in self.changes[name]:
            total = total + change.strength * change.delta.tensor(weight.shape, weight.device)
        return total.to(dtype)

    def moved(self, device: torch.device) -> WeightPatch:
        """The same patch with its tensors on ``device`` (in their own dtypes)."""
        moved = WeightPatch(fingerprint=self.fingerprint)
        for changes in self.changes.values():
            for change in changes:
                d = change.delta
                moved.add(WeightDelta(d.parameter, *(None if t is None else t.to(device)
                                                     for t in (d.up, d.down, d.full)), d.scale),
                          change.strength)
        return moved

    def __bool__(self) -> bool:
        return bool(self.changes)


@dataclass(slots=True)
class DenoiserPatch:
    """A job's patches, one per denoiser part: :data:`~studio.engine.model.DIT`, and for a
    two-expert model :data:`~studio.engine.model.DIT_LOW` (a LoRA may be made for one expert).

    Attributes:
        parts: part name → its patch.
        fingerprint: identifies the whole (files, strengths, experts).
    """

    parts: dict[str, WeightPatch] = field(default_factory=dict)
    fingerprint: str = ""

    def part(self, name: str) -> WeightPatch:
        return self.parts.setdefault(name, WeightPatch(fingerprint=self.fingerprint))

    def moved(self, device: torch.device) -> DenoiserPatch:
        return DenoiserPatch({name: patch.moved(device) for name, patch in self.parts.items()},
                             self.fingerprint)

    def __bool__(self) -> bool:
        return any(self.parts.values())


def merge_parts(modules: Mapping[str, nn.Module], patch: DenoiserPatch) -> None:
    """Merge each part's patch into ``modules[part]``."""
    for name, part_patch in patch.parts.items():
        merge_patch(modules[name], part_patch)


@contextmanager
def parts_on_the_fly(modules: Mapping[str, nn.Module], blocks: Mapping[str, Sequence[nn.Module]],
                     patch: DenoiserPatch) -> Iterator[None]:
    """:func:`patched_on_the_fly` for every part of ``patch`` at once."""
    with ExitStack() as stack:
        for name, part_patch in patch.parts.items():
            stack.enter_context(patched_on_the_fly(modules[name], blocks.get(name, ()),
                                                   part_patch))
        yield


def _real_weight(weight: torch.Tensor, owner: nn.Module | None
                 ) -> tuple[torch.Tensor, torch.dtype]:
    """(the weight's value in float32, the dtype a patched copy is stored in)."""
    compute = getattr(owner, "fp8_compute_dtype", None)
    if compute is not None and weight.dtype in FLOAT8 and weight.ndim > 0:
        return weight.detach().float() * owner.weight_scale.float(), compute
    return weight.detach().float(), weight.dtype


FLOAT8 = frozenset(d for d in (getattr(torch, "float8_e4m3fn", None),
                               getattr(torch, "float8_e5m2", None)) if d is not None)


def patch_fingerprint(parts: Sequence[tuple[str, float]]) -> str:
    """A short id for (file sha256, strength) pairs, in order."""
    text = ";".join(f"{sha}:{strength!r}" for sha, strength in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_targets(module: nn.Module, patch: WeightPatch) -> None:
    """Raise ValueError when a patched parameter is missing from ``module`` or has another
    shape than its deltas (a patch built for another model)."""
    params = dict(module.named_parameters())
    for name, changes in patch.changes.items():
        if name not in params:
            raise ValueError(f"the denoiser has no parameter {name}")
        shape = params[name].shape
        for change in changes:
            d = change.delta
            numel = d.full.numel() if d.full is not None else (
                d.up.shape[0] * d.down[0].numel())  # type: ignore[union-attr]
            if numel != shape.numel():
                raise ValueError(f"{name} is {tuple(shape)} but its delta has {numel} values")


def merge_patch(module: nn.Module, patch: WeightPatch) -> None:
    """Write the patched weights into ``module`` (in place, once)."""
    params = dict(module.named_parameters())
    with torch.no_grad():
        for name in patch.changes:
            param = params[name]
            param.data = patch.patched(name, param.data, _owner(module, name))


@contextmanager
def patched_on_the_fly(module: nn.Module, blocks: Sequence[nn.Module], patch: WeightPatch
                       ) -> Iterator[None]:
    """Apply ``patch`` around every forward of ``module`` and of each of its ``blocks``.

    ``blocks`` are the module's repeated blocks (``ModelModules.block_list``); their parameters
    are patched in their own hooks, the rest in the module's. The hooks are removed on exit.
    """
    handles = []
    for unit, names in _units(module, blocks, patch):
        saved: dict[str, torch.Tensor] = {}
        handles.append(unit.register_forward_pre_hook(_patcher(unit, names, patch, saved)))
        # prepend: the original must be back before a streamer's hook releases the block
        handles.append(unit.register_forward_hook(_restorer(unit, saved), prepend=True))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


Names = dict[str, str]
"""A unit's patched parameters: name relative to the unit → name in the denoiser module."""


def _units(module: nn.Module, blocks: Sequence[nn.Module], patch: WeightPatch
           ) -> list[tuple[nn.Module, Names]]:
    """Each module to hook with the parameters it patches: the blocks, then the rest."""
    prefixes = {id(child): f"{name}." for name, child in module.named_modules()}
    units: list[tuple[nn.Module, Names]] = []
    claimed: set[str] = set()
    for block in blocks:
        prefix = prefixes[id(block)]
        names = {name[len(prefix):]: name for name in patch.changes if name.startswith(prefix)}
        if names:
            units.append((block, names))
            claimed.update(names.values())
    rest = {name: name for name in patch.changes if name not in claimed}
    return [(module, rest), *units] if rest else units


def _patcher(unit: nn.Module, names: Names, patch: WeightPatch,
             saved: dict[str, torch.Tensor]):  # noqa: ANN202 - a hook
    params = dict(unit.named_parameters())  # Parameter objects outlive a streamer's moves
    owners = {local: _owner(unit, local) for local in names}

    def before(_module: nn.Module, _args: object) -> None:
        with torch.no_grad():
            for local, full_name in names.items():
                param = params[local]
                saved[local] = param.data
                param.data = patch.patched(full_name, param.data, owners[local])

    return before


def _owner(root: nn.Module, name: str) -> nn.Module:
    """The module that holds parameter ``name`` (relative to ``root``)."""
    path = name.rpartition(".")[0]
    return root.get_submodule(path) if path else root


def _restorer(unit: nn.Module, saved: dict[str, torch.Tensor]):  # noqa: ANN202 - a hook
    params = dict(unit.named_parameters())

    def after(_module: nn.Module, _args: object, _output: object) -> None:
        for local, original in saved.items():
            params[local].data = original
        saved.clear()

    return after
