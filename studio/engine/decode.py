"""Decoding a latent within the memory there is: whole, or in overlapping spatial tiles.

A :class:`~studio.engine.model.VideoVAE` decodes a latent ``[B, C, T', H', W']`` to pixels
``[B, 3, T, H, W]``. The Wan VAEs already decode one latent frame at a time with a causal cache,
so their memory grows with H'·W', not with T'. When even that runs out of memory the latent is cut
into overlapping tiles along H' and W': a crop of the latent decodes to the matching pixel crop
(s pixels per latent cell), and neighbouring tiles are blended with linear ramps across their
overlap so no seam shows. Only when the smallest tiles fail does decoding give up, with an
:class:`~studio.errors.OutOfMemory`.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

from studio.engine.cancel import NEVER, CancelToken
from studio.engine.model import VideoVAE
from studio.errors import OutOfMemory

log = logging.getLogger(__name__)

MIN_TILE = 4
"""Smallest tile side tried, in latent cells (32 pixels for an 8× VAE)."""


@dataclass(frozen=True, slots=True)
class TilePlan:
    """Square tiles of ``tile`` latent cells whose neighbours share at least ``overlap`` cells."""

    tile: int
    overlap: int

    def __post_init__(self) -> None:
        assert self.tile >= 1 and 0 <= self.overlap < self.tile, self


def tile_spans(size: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """``[(start, end)]`` latent-cell ranges of tiles covering ``0 … size``.

    Consecutive tiles overlap by at least ``overlap`` cells (the last one is moved back to end
    exactly at ``size``, so it may overlap more).
    """
    if tile >= size:
        return [(0, size)]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride)) + [size - tile]
    return [(s, s + tile) for s in starts]


def blend_ramp(spans: list[tuple[int, int]], index: int, scale: int) -> torch.Tensor:
    """Blend weights ``[L]`` (pixels) of tile ``index``: linear ramps over shared pixels.

    In an overlap of k pixels the two tiles weigh ``(j + ½)/k`` and ``(k − j − ½)/k``, which sum
    to 1; at the image border the weight is 1.
    """
    start, end = spans[index]
    length = (end - start) * scale
    pos = torch.arange(length, dtype=torch.float32) + 0.5
    weight = torch.ones(length)
    if index > 0:
        shared = (spans[index - 1][1] - start) * scale
        weight = torch.minimum(weight, pos / shared)
    if index + 1 < len(spans):
        shared = (end - spans[index + 1][0]) * scale
        weight = torch.minimum(weight, (length - pos) / shared)
    return weight.clamp(min=0.0, max=1.0)


def decode_tiled(
    vae: VideoVAE, latent: torch.Tensor, plan: TilePlan, cancel: CancelToken = NEVER
) -> torch.Tensor:
    """Decode ``[B, C, T', H', W']`` tile by tile; float32 pixels ``[B, 3, T, H, W]`` on the CPU.

    Each tile is decoded on the latent's device and accumulated on the CPU, so the device
    holds only one tile's activations at a time.
    """
    height, width = latent.shape[-2:]
    rows = tile_spans(height, plan.tile, plan.overlap)
    cols = tile_spans(width, plan.tile, plan.overlap)
    out: torch.Tensor | None = None
    total: torch.Tensor | None = None
    scale = 0
    for i, (r0, r1) in enumerate(rows):
        for j, (c0, c1) in enumerate(cols):
            cancel.check()
            pixels = vae.decode(latent[..., r0:r1, c0:c1].contiguous(), cancel).float().cpu()
            if out is None:
                scale = pixels.shape[-2] // (r1 - r0)
                out = pixels.new_zeros((*pixels.shape[:-2], height * scale, width * scale))
                total = torch.zeros(height * scale, width * scale)
            weight = torch.outer(blend_ramp(rows, i, scale), blend_ramp(cols, j, scale))
            window = (..., slice(r0 * scale, r1 * scale), slice(c0 * scale, c1 * scale))
            out[window] += pixels * weight
            total[window[1:]] += weight
            del pixels
    assert out is not None and total is not None
    return out / total


def fallback_plans(height: int, width: int, min_tile: int = MIN_TILE) -> list[TilePlan]:
    """Ever smaller tilings of a ``height`` × ``width``-cell latent: sides halve down to
    ``min_tile``; neighbours overlap by a quarter of a tile (at least one cell)."""
    plans: list[TilePlan] = []
    tile = (max(height, width) + 1) // 2
    while tile >= max(min_tile, 2):
        plans.append(TilePlan(tile, max(1, tile // 4)))
        tile //= 2
    return plans


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` means a device or host allocation failed."""
    if isinstance(error, torch.OutOfMemoryError | MemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


def free_memory() -> None:
    """Return cached blocks to the device after a failed allocation."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def decode_video(
    vae: VideoVAE,
    latent: torch.Tensor,
    cancel: CancelToken = NEVER,
    *,
    min_tile: int = MIN_TILE,
    on_retry: Callable[[TilePlan], None] | None = None,
) -> torch.Tensor:
    """Decode ``[B, C, T', H', W']`` whole, or in smaller and smaller tiles on out-of-memory.

    Returns float32 pixels ``[B, 3, T, H, W]`` in [−1, 1] on the CPU. ``on_retry(plan)`` is
    called before each tiled attempt. Raises :class:`OutOfMemory` when every tiling failed.
    """
    plans: list[TilePlan | None] = [None, *fallback_plans(*latent.shape[-2:], min_tile)]
    reason = ""
    for plan in plans:
        if plan is not None:
            log.warning("decoding ran out of memory (%s); retrying in %d-cell tiles", reason,
                        plan.tile)
            if on_retry is not None:
                on_retry(plan)
        try:
            if plan is None:
                return vae.decode(latent, cancel).float().cpu()
            return decode_tiled(vae, latent, plan, cancel)
        except (RuntimeError, MemoryError) as exc:
            if not is_out_of_memory(exc):
                raise
            reason = str(exc).split("\n")[0][:200]
        free_memory()  # outside the except block, so the failed attempt's tensors are gone
    smallest = plans[-1]
    tiles = f", even in tiles of {smallest.tile} latent cells" if smallest is not None else ""
    raise OutOfMemory(
        f"decoding the video ran out of memory{tiles} ({reason})",
        "close other programs that use the GPU, or make fewer frames or a smaller size",
    )
