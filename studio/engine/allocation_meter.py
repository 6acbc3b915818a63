"""Count the bytes of live tensor storage while code runs, on any device (``meta`` included).

:class:`AllocationMeter` is a ``TorchDispatchMode``: it sees every tensor an operator
returns, adds a storage's bytes when it first appears and subtracts them when the last tensor
using it is garbage-collected, and keeps the peak. On the ``meta`` device nothing is allocated or
computed, so a model can be "run" at full size in milliseconds to learn its activation peak —
the independent check of :mod:`studio.engine.memory_forecast`. Storages that existed before the
tracker started (weights, inputs) are not counted; the peak is of what the code allocates.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class AllocationMeter(TorchDispatchMode):
    """Live and peak bytes of the storages created inside the ``with`` block.

    Attributes:
        live: bytes alive now (created inside the block and still referenced).
        peak: the most bytes alive at once.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._holders: dict[int, int] = {}  # storage key → tensors referencing it
        self._sizes: dict[int, int] = {}
        self._known: set[int] = set()  # storages that existed before (never counted)

    def __enter__(self) -> AllocationMeter:
        super().__enter__()
        return self

    def _key(self, tensor: torch.Tensor) -> int:
        return tensor.untyped_storage()._cdata

    def _release(self, key: int) -> None:
        self._holders[key] -= 1
        if self._holders[key] == 0:
            del self._holders[key]
            self.live -= self._sizes.pop(key)

    def _adopt(self, tensor: torch.Tensor, inputs: set[int]) -> None:
        key = self._key(tensor)
        if key in inputs or key in self._known:
            return
        if key not in self._holders:
            self._holders[key] = 0
            self._sizes[key] = tensor.untyped_storage().nbytes()
            self.live += self._sizes[key]
            self.peak = max(self.peak, self.live)
        self._holders[key] += 1
        weakref.finalize(tensor, self._release, key)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        flat_in, _ = tree_flatten((args, kwargs))
        inputs = set()
        for value in flat_in:
            if isinstance(value, torch.Tensor):
                key = self._key(value)
                if key not in self._holders:
                    self._known.add(key)
                inputs.add(key)
        out = func(*args, **kwargs)
        flat_out, _ = tree_flatten(out)
        tracked_inputs = {k for k in inputs if k in self._known}
        for value in flat_out:
            if isinstance(value, torch.Tensor):
                self._adopt(value, tracked_inputs)
        return out
