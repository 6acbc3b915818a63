"""Keep a model's weights where the device's memory allows: offload policies and their mechanics.

Policies, from fastest to smallest device footprint (:class:`OffloadPolicy`):

* ``none`` — every part stays on the device;
* ``text-encoder`` — the text encoder lives in host memory and visits the device only to encode
  (for Wan, UMT5-XXL is 11 GB of bf16 used once per job);
* ``model`` — one part on the device at a time: text encoder, then DiT, then VAE;
* ``blocks`` — as ``model``, and the DiT's transformer blocks stay in host memory too: each
  block is copied in just before it runs (the next one is prefetched on a side CUDA stream
  while the current one computes) and dropped right after.

The mechanics (host copies, streamed blocks) live in :mod:`studio.engine.streaming`.
:func:`choose_policy` picks the fastest policy whose forecast fits in free VRAM;
:func:`apply_offload` wraps a :class:`~studio.engine.model.LoadedModel`'s parts so that each
part is made resident right before it computes — the pipeline needs no change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import torch

from studio.engine.cancel import NEVER, CancelToken
from studio.engine.experts import step_time
from studio.engine.model import DIT, TEXT_ENCODER, VAE, ExpertSwitch, LoadedModel, ModelModules
from studio.engine.streaming import BlockStreamer, ModuleHome
from studio.errors import InvalidRequest

log = logging.getLogger(__name__)


class OffloadPolicy(StrEnum):
    NONE = "none"
    TEXT_ENCODER = "text-encoder"
    MODEL = "model"
    BLOCKS = "blocks"


#: Fastest (largest device footprint) first.
POLICY_ORDER = (OffloadPolicy.NONE, OffloadPolicy.TEXT_ENCODER, OffloadPolicy.MODEL,
                OffloadPolicy.BLOCKS)  # fmt: skip
AUTO = "auto"


def parse_policy(text: str) -> OffloadPolicy | str:
    """``"auto"`` or an :class:`OffloadPolicy` from its name; anything else is refused."""
    if text == AUTO:
        return AUTO
    try:
        return OffloadPolicy(text)
    except ValueError:
        names = ", ".join([AUTO, *(p.value for p in POLICY_ORDER)])
        raise InvalidRequest("offload", f"{text!r} is not an offload policy",
                             f"use one of {names}") from None


@dataclass(frozen=True, slots=True)
class PolicyChoice:
    """The policy picked, why, and the numbers behind it (bytes)."""

    policy: OffloadPolicy
    reason: str
    need_bytes: int
    free_bytes: int


def choose_policy(
    needs: Mapping[OffloadPolicy, int],
    free_bytes: int,
    requested: OffloadPolicy | str = AUTO,
    headroom: float = 0.9,
) -> PolicyChoice:
    """The policy to use: ``requested`` if it is one, else the fastest that fits.

    Args:
        needs: forecast peak device bytes under each policy.
        free_bytes: free device memory now.
        requested: a policy (the user's override, used as is) or ``"auto"``.
        headroom: fraction of the free memory a forecast may use (forecasts are estimates).
    """
    if requested != AUTO:
        policy = OffloadPolicy(requested)
        return PolicyChoice(policy, "chosen in the settings", needs.get(policy, 0), free_bytes)
    budget = int(free_bytes * headroom)
    for policy in POLICY_ORDER:
        if policy in needs and needs[policy] <= budget:
            return PolicyChoice(policy, f"fastest policy within {headroom:.0%} of free memory",
                                needs[policy], free_bytes)
    smallest = POLICY_ORDER[-1]
    return PolicyChoice(smallest, "nothing fits the free memory; using the smallest footprint",
                        needs.get(smallest, 0), free_bytes)


def free_device_memory(device: torch.device) -> int:
    """Free bytes on a CUDA device (what other programs leave); 0 for other devices."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return 0
    free, _total = torch.cuda.mem_get_info(device)
    return int(free)


# --- parts -----------------------------------------------------------------------------------


class Residency:
    """Which parts are on the device, moved according to a policy just before each computes.

    Args:
        device: the compute device.
        policy: see :class:`OffloadPolicy`.
        modules: the model's modules: name → module for "text_encoder", "dit" and "vae", and
            where their repeated blocks are. Parts the policy keeps on the device are moved
            there once; the others get host copies and start parked.

    ``log`` records, for every use, the part and the parts resident right then (for tests and
    diagnostics).
    """

    def __init__(self, device: torch.device, policy: OffloadPolicy,
                 modules: ModelModules) -> None:
        self.device = device
        self.policy = policy
        self.homes: dict[str, ModuleHome] = {}
        self.streamers: dict[str, BlockStreamer] = {}
        parts = modules.parts
        self.fixed: tuple[str, ...] = tuple(n for n in parts if self._always_resident(n))
        self.log: list[tuple[str, tuple[str, ...]]] = []
        for name, module in parts.items():
            if name in self.fixed:
                module.to(device)
                continue
            skip: tuple[str, ...] = ()
            blocks = modules.block_list(name) if policy is OffloadPolicy.BLOCKS else None
            if blocks is not None and len(blocks) > 1:
                self.streamers[name] = BlockStreamer(blocks, device)
                skip = tuple(modules.blocks[name].split(","))
            self.homes[name] = ModuleHome(module, device, pin=device.type == "cuda", skip=skip)
            self.homes[name].park()

    def _always_resident(self, name: str) -> bool:
        if self.policy is OffloadPolicy.NONE:
            return True
        return self.policy is OffloadPolicy.TEXT_ENCODER and name != TEXT_ENCODER

    @property
    def resident(self) -> tuple[str, ...]:
        loaded = tuple(name for name, home in self.homes.items() if home.loaded)
        return self.fixed + loaded

    def use(self, name: str) -> None:
        """Make ``name`` resident, first parking the others if only one part may be."""
        home = self.homes.get(name)
        if home is not None:
            if self.policy in (OffloadPolicy.MODEL, OffloadPolicy.BLOCKS):
                for other, other_home in self.homes.items():
                    if other != name and other_home.loaded:
                        self._park(other)
            if not home.loaded:
                home.load()
        self.log.append((name, self.resident))

    def done(self, name: str) -> None:
        """After ``name`` computed: the text encoder goes back to host memory unless it stays."""
        if name == TEXT_ENCODER and name in self.homes:
            self._park(name)

    def _park(self, name: str) -> None:
        self.homes[name].park()
        if name in self.streamers:
            self.streamers[name].release_all()


class OffloadedTextEncoder:
    """A text encoder made resident for each ``encode`` (the output stays on the device)."""

    def __init__(self, inner: Any, residency: Residency) -> None:
        self.inner = inner
        self.residency = residency

    def encode(self, prompts: Sequence[str]) -> torch.Tensor:
        self.residency.use(TEXT_ENCODER)
        try:
            context = self.inner.encode(prompts)
        finally:
            self.residency.done(TEXT_ENCODER)
        return context.to(self.residency.device)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class OffloadedDenoiser:
    """A denoiser made resident before each call (a no-op once it is); of a two-expert
    denoiser, the expert that call runs."""

    def __init__(self, inner: Callable[..., torch.Tensor], residency: Residency,
                 experts: ExpertSwitch | None = None) -> None:
        self.inner = inner
        self.residency = residency
        self.experts = experts

    def __call__(self, x: torch.Tensor, t_tok: torch.Tensor, context: torch.Tensor,
                 **image: torch.Tensor) -> torch.Tensor:
        part = DIT if self.experts is None else self.experts.part_for(step_time(t_tok))
        self.residency.use(part)
        return self.inner(x, t_tok, context, **image)


class OffloadedVAE:
    """A VAE made resident before each encode or decode."""

    def __init__(self, inner: Any, residency: Residency) -> None:
        self.inner = inner
        self.residency = residency

    def encode(self, video: torch.Tensor, cancel: CancelToken = NEVER) -> torch.Tensor:
        self.residency.use(VAE)
        return self.inner.encode(video.to(self.residency.device), cancel)

    def decode(self, latent: torch.Tensor, cancel: CancelToken = NEVER) -> torch.Tensor:
        self.residency.use(VAE)
        return self.inner.decode(latent.to(self.residency.device), cancel)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def apply_offload(model: LoadedModel, policy: OffloadPolicy, device: torch.device | str
                  ) -> LoadedModel:
    """``model`` with its parts wrapped so that ``policy`` governs where their weights live.

    The parts may be anywhere when this is called (typically loaded to the CPU when the device
    is too small for them); host copies are made once here. The returned model computes on
    ``device`` and records its policy. Parts without a module in ``model.modules`` are left as
    they are.
    """
    device = torch.device(device)
    residency = Residency(device, policy, model.modules)
    if policy is OffloadPolicy.NONE:
        return replace(model, device=device, offload=policy.value)
    log.info("offload policy %s on %s; host copies: %s", policy.value, device,
             ", ".join(f"{n} {h.nbytes / 2**30:.2f} GiB" for n, h in residency.homes.items()))
    return replace(
        model,
        text_encoder=OffloadedTextEncoder(model.text_encoder, residency),
        denoiser=OffloadedDenoiser(model.denoiser, residency, model.experts),
        vae=OffloadedVAE(model.vae, residency),
        device=device,
        offload=policy.value,
    )
