"""The mechanics of offloading: host copies of a module's weights, and blocks streamed through
the device one at a time with prefetch (used by :mod:`studio.engine.offload`).

Host copies are made once (pinned on CUDA, so copies to the device are asynchronous) and never
written back: inference does not change weights, so "parking" a module only points its tensors
back at the host copy.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn


class ModuleHome:
    """Host copies of a module's parameters and buffers, and the means to move them.

    ``load()`` copies them to ``device`` (asynchronously from pinned memory on CUDA);
    ``park()`` points the module back at the host copies (a usable host module);
    ``release()`` points it at empty tensors on the device, so a parked block cannot be
    used by mistake — a forward would fail on the shapes. ``skip`` names child modules whose
    tensors are left alone (the DiT's ``blocks``, streamed separately).
    """

    def __init__(self, module: nn.Module, device: torch.device, *, pin: bool,
                 skip: Sequence[str] = ()) -> None:
        self.device = device
        self._slots: list[tuple[nn.Module, str, bool, torch.Tensor]] = []
        seen: set[int] = set()  # tied weights (one Parameter in two modules) are kept once
        with torch.inference_mode(False), torch.no_grad():
            for owner_name, owner in module.named_modules():
                if any(owner_name == s or owner_name.startswith(f"{s}.") for s in skip):
                    continue
                for name, tensor in [*owner._parameters.items(), *owner._buffers.items()]:
                    if tensor is None or id(tensor) in seen:
                        continue
                    seen.add(id(tensor))
                    home = tensor.detach().to("cpu")
                    if pin and not home.is_pinned():
                        home = home.pin_memory()
                    self._slots.append((owner, name, name in owner._parameters, home))
        self.nbytes = sum(h.numel() * h.element_size() for *_, h in self._slots)
        self.loaded = False

    def tensors(self) -> Iterator[torch.Tensor]:
        for owner, name, is_param, _ in self._slots:
            yield owner._parameters[name] if is_param else owner._buffers[name]

    def load(self, non_blocking: bool = False) -> list[torch.Tensor]:
        """Copy to the device; returns the new device tensors (for ``record_stream``)."""
        made = []
        with torch.inference_mode(False), torch.no_grad():
            for owner, name, is_param, home in self._slots:
                value = home.to(self.device, non_blocking=non_blocking)
                self._assign(owner, name, is_param, value)
                made.append(value)
        self.loaded = True
        return made

    def park(self) -> None:
        """Point the module at the host copies (no copy is made)."""
        for owner, name, is_param, home in self._slots:
            self._assign(owner, name, is_param, home)
        self.loaded = False

    def release(self) -> None:
        """Point the module at empty device tensors, freeing its device copies."""
        with torch.inference_mode(False), torch.no_grad():
            for owner, name, is_param, home in self._slots:
                empty = torch.empty(0, dtype=home.dtype, device=self.device)
                self._assign(owner, name, is_param, empty)
        self.loaded = False

    @staticmethod
    def _assign(owner: nn.Module, name: str, is_param: bool, value: torch.Tensor) -> None:
        if is_param:
            owner._parameters[name].data = value
        else:
            owner._buffers[name] = value


class BlockStreamer:
    """Streams a model's repeated blocks through the device, one block resident at a time.

    Forward hooks do the work: before block i runs it waits for block i's copy and starts
    copying block i + 1 (block 0 after the last, for the next forward) on a side stream; after
    block i runs its device copy is released. At most two blocks are on the device at once.
    On the CPU the copies are plain and synchronous (tests use this).
    """

    def __init__(self, blocks: Sequence[nn.Module], device: torch.device) -> None:
        cuda = device.type == "cuda"
        self.homes = [ModuleHome(block, device, pin=cuda) for block in blocks]
        self.device = device
        self._stream = torch.cuda.Stream(device) if cuda else None
        self._pending: dict[int, torch.cuda.Event | None] = {}
        self.loads = 0
        self.max_resident = 0
        for home in self.homes:
            home.release()
        self._handles = []
        for i, block in enumerate(blocks):
            before, after = functools.partial(self._before, i), functools.partial(self._after, i)
            self._handles.append(block.register_forward_pre_hook(before))
            self._handles.append(block.register_forward_hook(after))

    @property
    def block_bytes(self) -> int:
        return max((home.nbytes for home in self.homes), default=0)

    @property
    def resident(self) -> int:
        return sum(home.loaded for home in self.homes)

    def _fetch(self, i: int) -> None:
        home = self.homes[i]
        if self._stream is None:
            home.load()
            self._pending[i] = None
        else:
            compute = torch.cuda.current_stream(self.device)
            self._stream.wait_stream(compute)  # the copy may reuse memory compute just freed
            with torch.cuda.stream(self._stream):
                made = home.load(non_blocking=True)
                event = torch.cuda.Event()
                event.record(self._stream)
            for tensor in made:
                tensor.record_stream(compute)
            self._pending[i] = event
        self.loads += 1
        self.max_resident = max(self.max_resident, self.resident)

    def _before(self, i: int, module: nn.Module, args: Any) -> None:
        if i not in self._pending:
            self._fetch(i)
        event = self._pending.pop(i)
        if event is not None:
            torch.cuda.current_stream(self.device).wait_event(event)
        following = (i + 1) % len(self.homes)
        if following != i and following not in self._pending:
            self._fetch(following)

    def _after(self, i: int, module: nn.Module, args: Any, output: Any) -> None:
        self.homes[i].release()

    def release_all(self) -> None:
        """Drop every device copy (also a prefetched one)."""
        self._pending.clear()
        for home in self.homes:
            home.release()

    def remove(self) -> None:
        """Take the hooks off and put every block back on the device."""
        for handle in self._handles:
            handle.remove()
        self._pending.clear()
        for home in self.homes:
            home.load()
