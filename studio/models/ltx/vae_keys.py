"""LTX-Video VAE tensor names: the original single-file layout (our own) ↔ diffusers'
``AutoencoderKLLTXVideo`` (docs/families/ltx.md).

The original numbers its blocks flat (``encoder.down_blocks.k``, ``decoder.up_blocks.k`` in
running order); diffusers groups them into stages (:mod:`studio.models.ltx.vae_diffusers`).
Reading diffusers names needs no configuration: the stages present in the keys, taken in order,
give the original numbering back. Inside blocks the names differ only in ``res_blocks`` ↔
``resnets``, ``conv_shortcut`` ↔ ``conv_shortcut.conv``, ``norm3.norm`` ↔ ``norm3``, the decoder's
final ``last_time_embedder`` / ``last_scale_shift_table`` ↔ ``time_embedder`` /
``scale_shift_table``, and the statistics ``per_channel_statistics.mean-of-means`` /
``std-of-means`` ↔ ``latents_mean`` / ``latents_std``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeVar

from studio.errors import CheckpointError
from studio.models.ltx.vae_config import RES, LTXVAEConfig
from studio.models.ltx.vae_diffusers import decoder_paths, encoder_paths

T = TypeVar("T")
ORIGINAL, DIFFUSERS = "original", "diffusers"
PREFIX = "vae."
STATS = "per_channel_statistics."
_STATS_NAMES = {"latents_mean": STATS + "mean-of-means", "latents_std": STATS + "std-of-means"}
_INNER = (("conv_shortcut.conv.", "conv_shortcut."), ("norm3.", "norm3.norm."))
_LAST = (("decoder.time_embedder.", "decoder.last_time_embedder."),
         ("decoder.scale_shift_table", "decoder.last_scale_shift_table"))
_STAGE = re.compile(r"^(encoder|decoder)\.(?:(?:down|up)_blocks\.(\d+)|mid_block)\."
                    r"(resnets|time_embedder|downsamplers\.0|upsamplers\.0|conv_out|conv_in)\.")
#: Running order of the slots inside one diffusers stage.
_ORDER = {"encoder": ("resnets", "downsamplers.0", "conv_out"),
          "decoder": ("conv_in", "upsamplers.0", "resnets")}
_FLAT = {"encoder": "encoder.down_blocks", "decoder": "decoder.up_blocks"}
_INSIDE = {"resnets": "res_blocks.", "time_embedder": "time_embedder."}


def layout(keys: Mapping[str, object] | list[str]) -> str:
    """``"diffusers"`` when the names are ``AutoencoderKLLTXVideo``'s, else ``"original"``."""
    names = list(keys)
    if any(k.endswith("latents_mean") or ".mid_block." in k for k in names):
        return DIFFUSERS
    if any("encoder.down_blocks." in k or "decoder.up_blocks." in k for k in names):
        return ORIGINAL
    raise CheckpointError("These tensors are not an LTX-Video VAE (no encoder.down_blocks, "
                          "decoder.up_blocks or mid_block names)",
                          "choose an LTX-Video single file or a diffusers vae/ folder")


def own_vae_state(raw: Mapping[str, T]) -> dict[str, T]:
    """Original names (with or without ``vae.``; a single file's other keys are left out) or
    diffusers names → the names of :class:`~studio.models.ltx.vae.LTXVideoVAE`. Statistics
    rows other than ``mean-of-means`` and ``std-of-means`` (single files also carry
    ``channel``, ``mean-of-stds``, ``mean-of-stds_over_std-of-means``) are left out."""
    if any(k.startswith(PREFIX) for k in raw):
        raw = {k[len(PREFIX):]: v for k, v in raw.items() if k.startswith(PREFIX)}
    if layout(list(raw)) == ORIGINAL:
        return {k: v for k, v in raw.items()
                if not k.startswith(STATS) or k in _STATS_NAMES.values()}
    numbering = _original_numbering(list(raw))
    return {_own_name(k, numbering): v for k, v in raw.items()}


def _slot(match: re.Match[str]) -> tuple[str, int, int]:
    """(half, stage number, slot rank) of a diffusers stage name; the mid block is stage −1 in
    the decoder (it runs first) and stage 10⁶ in the encoder (it runs last)."""
    half = match[1]
    stage = int(match[2]) if match[2] is not None else (-1 if half == "decoder" else 10**6)
    group = "resnets" if match[3] == "time_embedder" else match[3]
    return half, stage, _ORDER[half].index(group)


def _original_numbering(keys: list[str]) -> dict[tuple[str, int, int], int]:
    """Diffusers (half, stage, slot) → original block index, counting the slots present."""
    found = sorted({_slot(m) for m in map(_STAGE.match, keys) if m})
    numbering: dict[tuple[str, int, int], int] = {}
    for half in ("encoder", "decoder"):
        for index, slot in enumerate(s for s in found if s[0] == half):
            numbering[slot] = index
    return numbering


def _own_name(key: str, numbering: dict[tuple[str, int, int], int]) -> str:
    if key in _STATS_NAMES:
        return _STATS_NAMES[key]
    match = _STAGE.match(key)
    if match:
        block = f"{_FLAT[match[1]]}.{numbering[_slot(match)]}."
        key = block + _INSIDE.get(match[3], "") + key[match.end():]
    for old, new in _LAST:
        if key.startswith(old):
            key = new + key[len(old):]
    for old, new in _INNER:
        key = key.replace("." + old, "." + new)
    return key


def diffusers_names(state: Mapping[str, T], config: LTXVAEConfig) -> dict[str, T]:
    """Own (original) names → ``AutoencoderKLLTXVideo`` names for ``config`` (which diffusers
    must be able to express); statistics rows other than the two used are left out."""
    paths = {"encoder.down_blocks": encoder_paths(config),
             "decoder.up_blocks": decoder_paths(config)}
    blocks = {"encoder.down_blocks": config.encoder_blocks,
              "decoder.up_blocks": tuple(reversed(config.decoder_blocks))}
    own_stats = {v: k for k, v in _STATS_NAMES.items()}
    out: dict[str, T] = {}
    for key, value in state.items():
        if key.startswith(STATS):
            if key in own_stats:
                out[own_stats[key]] = value
            continue
        out[_diffusers_name(key, paths, blocks)] = value
    return out


def _diffusers_name(key: str, paths: dict, blocks: dict) -> str:  # noqa: ANN001 - see caller
    for old, new in _INNER:
        key = key.replace("." + new, "." + old)
    for old, new in _LAST:
        if key.startswith(new):
            key = old + key[len(new):]
    match = re.match(r"^(encoder\.down_blocks|decoder\.up_blocks)\.(\d+)\.", key)
    if not match:
        return key
    index, rest = int(match[2]), key[match.end():]
    half = match[1].split(".")[0]
    if blocks[match[1]][index].kind == RES and rest.startswith("res_blocks."):
        rest = "resnets." + rest[len("res_blocks."):]
    return f"{half}.{paths[match[1]][index]}.{rest}"
