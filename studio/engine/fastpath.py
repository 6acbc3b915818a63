"""The CUDA fast path: attention kernel choice, compiled blocks, copies to the host without syncs.

Nothing here changes results on the CPU: :func:`accelerate` leaves a CPU model as it is unless
compilation is asked for, and :class:`HostCopy` degrades to a plain copy.

* **Attention kernels.** ``F.scaled_dot_product_attention`` picks among fused kernels (flash,
  cuDNN, memory-efficient) and the unfused "math" one, which materialises ``L × L`` scores
  (tens of GB at Wan's 32k tokens). :func:`usable_backends` probes which fused kernels run for
  the model's dtype and head size; :func:`accelerate` runs the denoiser with them, in the
  preferred order, so the choice is explicit and reported (``studio bench`` prints it).
* **Compiled blocks.** :func:`compile_blocks` compiles each transformer block in place with
  ``torch.compile`` (every block has the same code, so one compiled graph serves all);
  the first call pays the compilation, which benchmarks report as warm-up.
* **Previews without host syncs.** :class:`HostCopy` / :class:`PreviewQueue` copy x̂₀ into
  pinned host memory with ``non_blocking=True`` and hand it over once a CUDA event says the copy
  is done, so the sampling loop never waits for the device.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from studio.engine.model import DIT, LoadedModel

log = logging.getLogger(__name__)

SDPA_BACKENDS: dict[str, SDPBackend] = {
    "flash": SDPBackend.FLASH_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "math": SDPBackend.MATH,
}
#: Preference when nothing was measured: FlashAttention-2 (widely validated), cuDNN, the
#: memory-efficient kernel, and math only as the last resort.
PREFERRED = ("flash", "cudnn", "efficient", "math")


def usable_backends(device: torch.device, dtype: torch.dtype, num_heads: int, head_dim: int,
                    tokens: int = 256) -> list[str]:
    """The SDPA backends (names of :data:`SDPA_BACKENDS`) that run ``[1, heads, tokens,
    head_dim]`` attention in ``dtype`` on ``device``, in :data:`PREFERRED` order."""
    q = torch.zeros(1, num_heads, tokens, head_dim, device=device, dtype=dtype)
    usable = []
    for name in PREFERRED:
        try:
            with sdpa_kernel([SDPA_BACKENDS[name]]), torch.inference_mode():
                F.scaled_dot_product_attention(q, q, q)
        except RuntimeError:
            continue
        usable.append(name)
    return usable


@contextmanager
def attention_backends(names: Sequence[str]) -> Iterator[None]:
    """Restrict SDPA to ``names``, tried in that order."""
    with sdpa_kernel([SDPA_BACKENDS[n] for n in names], set_priority=True):
        yield


class ScopedDenoiser:
    """A denoiser that runs with a fixed list of attention backends."""

    def __init__(self, inner: Callable[..., torch.Tensor], backends: Sequence[str]) -> None:
        self.inner = inner
        self.backends = tuple(backends)

    def __call__(self, x: torch.Tensor, t_tok: torch.Tensor, context: torch.Tensor,
                 **image: torch.Tensor) -> torch.Tensor:
        with attention_backends(self.backends):
            return self.inner(x, t_tok, context, **image)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def compile_blocks(blocks: Sequence[nn.Module], mode: str | None = None) -> int:
    """Compile each block in place; returns how many were compiled."""
    for block in blocks:
        block.compile(mode=mode, dynamic=False)
    log.info("compiled %d blocks (mode %s); the first step compiles them", len(blocks), mode)
    return len(blocks)


def accelerate(model: LoadedModel, *, backends: Sequence[str] | None = None,
               compile_mode: str | None = None, compile: bool = False) -> LoadedModel:
    """``model`` with the fast path on: explicit attention backends on CUDA (probed from the
    model's attention shape when ``backends`` is None) and, when asked, compiled denoiser
    blocks. CPU models are unchanged unless ``compile`` is set."""
    blocks = model.modules.block_list(DIT)
    if compile and blocks:
        compile_blocks(blocks, compile_mode)
    if model.device.type != "cuda":
        return model
    attention = model.modules.attention
    if backends is None and attention is None:
        return model  # no shape to probe with: SDPA chooses per call
    if backends is None:
        backends = usable_backends(model.device, model.dtype, attention.num_heads,
                                   attention.head_dim)
    log.info("attention backends: %s", ", ".join(backends))
    return replace(model, denoiser=ScopedDenoiser(model.denoiser, backends))


class HostCopy:
    """A copy of a device tensor into host memory that does not make the host wait.

    On CUDA the copy goes into freshly allocated pinned memory with ``non_blocking=True`` and a
    CUDA event marks its completion; :meth:`ready` polls the event, :meth:`result` waits for it.
    Elsewhere the copy is made at once.
    """

    def __init__(self, tensor: torch.Tensor) -> None:
        self.event: torch.cuda.Event | None = None
        if tensor.device.type == "cuda":
            self.host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
            self.host.copy_(tensor.detach(), non_blocking=True)
            self.event = torch.cuda.Event()
            self.event.record(torch.cuda.current_stream(tensor.device))
        else:
            self.host = tensor.detach().to("cpu", copy=True)

    def ready(self) -> bool:
        return self.event is None or self.event.query()

    def result(self) -> torch.Tensor:
        if self.event is not None:
            self.event.synchronize()
        return self.host


class PreviewQueue:
    """Previews in flight: submit x̂₀ after a step, collect the copies that have arrived.

    ``collect()`` returns (step, host tensor) pairs in step order without waiting (only the
    newest matters for a live view); ``collect(wait=True)`` waits for all, e.g. after the loop.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[int, HostCopy]] = []

    def submit(self, step: int, tensor: torch.Tensor) -> None:
        self._pending.append((step, HostCopy(tensor)))

    def collect(self, wait: bool = False) -> list[tuple[int, torch.Tensor]]:
        done = []
        while self._pending and (wait or self._pending[0][1].ready()):
            step, copy = self._pending.pop(0)
            done.append((step, copy.result()))
        return done
