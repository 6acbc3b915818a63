"""A Wan VAE's configuration read from its tensor shapes (no data read).

Version (12 input channels = 2.2's 2×2 pixel patchify), widths, stage multipliers, residual
blocks per stage and temporal downsampling are all visible in the original-layout key shapes
(docs/families/wan.md §5).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from studio.errors import CheckpointError
from studio.models.wan.vae import (
    WAN21_LATENT_MEAN,
    WAN21_LATENT_STD,
    WAN22_LATENT_MEAN,
    WAN22_LATENT_STD,
    WanVAEConfig,
)

_FIX_SET = "rescan the folder and add the missing or matching files (see `studio models scan`)"
_LATENT_STATS = {16: (WAN21_LATENT_MEAN, WAN21_LATENT_STD),
                 48: (WAN22_LATENT_MEAN, WAN22_LATENT_STD)}


_ENC_RES = re.compile(
    r"^encoder\.downsamples\.(\d+)\.(?:downsamples\.(\d+)\.)?residual\.6\.weight$"
)


def vae_config_from_shapes(shapes: Mapping[str, Sequence[int]], label: str) -> WanVAEConfig:
    """A Wan VAE's configuration from original-layout tensor shapes (no data read).

    Version (12 input channels = 2.2's 2×2 pixel patchify), widths, stage multipliers, residual
    blocks per stage and temporal downsampling (stages with a ``time_conv``) are all read from
    the shapes; the latent statistics are those of the release with that many channels.

    Raises:
        CheckpointError: shapes no Wan VAE has (``label`` names the file).
    """
    try:
        width, in_channels = shapes["encoder.conv1.weight"][:2]
        z_dim = shapes["conv2.weight"][0]
        decoder_in = shapes["decoder.conv1.weight"][0]
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{label}: not a Wan VAE (no {exc})", _FIX_SET) from exc
    nested = in_channels == 12
    stages: dict[int, list[tuple[int, int]]] = {}
    for key, shape in shapes.items():
        match = _ENC_RES.match(key)
        if match:
            outer, inner = int(match.group(1)), match.group(2)
            stage, slot = (outer, int(inner)) if nested else (outer, outer)
            stages.setdefault(stage, []).append((slot, shape[0]))
    if z_dim not in _LATENT_STATS or not stages:
        raise CheckpointError(f"{label}: a VAE with {z_dim} latent channels is not a Wan VAE",
                              "use Wan2.1_VAE.pth or Wan2.2_VAE.pth")
    groups = _group_stages(stages, nested)
    blocks = len(groups[0])
    mult = tuple(widths[-1] // width for widths in groups)
    temporal = tuple(_has_time_conv(shapes, s, blocks, nested) for s in range(len(mult) - 1))
    mean, std = _LATENT_STATS[z_dim]
    try:
        return WanVAEConfig(
            version="2.2" if nested else "2.1", dim=width,
            dec_dim=decoder_in // mult[-1] if nested else None, z_dim=z_dim, dim_mult=mult,
            num_res_blocks=blocks, temporal_downsample=temporal, latent_mean=mean, latent_std=std,
        )  # fmt: skip
    except (CheckpointError, ValueError, ZeroDivisionError) as exc:
        raise CheckpointError(f"{label}: unexpected Wan VAE shapes ({exc})", _FIX_SET) from exc


def _group_stages(stages: dict[int, list[tuple[int, int]]], nested: bool) -> list[list[int]]:
    """Residual output widths per encoder stage, in order."""
    if nested:
        return [[w for _, w in sorted(stages[s])] for s in sorted(stages)]
    groups: list[list[int]] = [[]]
    previous = None
    for index in sorted(stages):
        if previous is not None and index != previous + 1:  # a resample sat in between
            groups.append([])
        groups[-1].append(stages[index][0][1])
        previous = index
    return groups


def _has_time_conv(shapes: Mapping[str, Sequence[int]], stage: int, blocks: int,
                   nested: bool) -> bool:
    key = (f"encoder.downsamples.{stage}.downsamples.{blocks}.time_conv.weight" if nested
           else f"encoder.downsamples.{stage * (blocks + 1) + blocks}.time_conv.weight")
    return key in shapes
