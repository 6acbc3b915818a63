"""How an LTX-Video VAE's original block lists map onto diffusers' ``AutoencoderKLLTXVideo``
(docs/families/ltx.md).

Diffusers groups the original's flat lists into stages. Encoder stage: ``resnets`` (a
``res_x``), ``downsamplers.0`` (a compression), ``conv_out`` (a ``res_x_y``, classic stages
only); the last ``res_x`` is ``mid_block``. Decoder, in running order: ``mid_block`` (the first
``res_x``), then stages of ``conv_in`` (``res_x_y``), ``upsamplers.0`` (``compress_all``),
``resnets`` (``res_x``). :func:`encoder_stages` / :func:`decoder_stages` give each original block
its diffusers module path; the config converters are built on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from studio.errors import CheckpointError
from studio.models.ltx.vae_config import (
    RES,
    RES_WIDEN,
    LTXVAEConfig,
    decoder_blocks,
    decoder_widths,
    encoder_widths,
)
from studio.models.ltx.vae_diffusers_read import CLASSIC, DOWNSAMPLE_TYPES, V095, read_diffusers

#: 0.9.5-style downsampler kinds ↔ diffusers ``downsample_type``.
_ENCODER_SLOTS = {RES: (0, "{}"), "compress": (1, "{}.downsamplers.0"),
                  RES_WIDEN: (2, "{}.conv_out")}
_DECODER_SLOTS = {RES_WIDEN: (0, "{}.conv_in"), "compress": (1, "{}.upsamplers.0"), RES: (2, "{}")}


def unrepresentable(problem: str) -> CheckpointError:
    return CheckpointError(f"diffusers' AutoencoderKLLTXVideo cannot express this VAE: {problem}",
                           "keep it in the original single-file layout")


@dataclass(frozen=True, slots=True)
class Stage:
    """One diffusers stage: original block indices per slot (-1: absent)."""

    slots: tuple[int, int, int]


def _group(kinds: list[str], slots: Mapping[str, tuple[int, str]]) -> list[Stage]:
    """Greedy grouping: a block opens a new stage when its slot is not after the last filled."""
    stages: list[list[int]] = []
    last = 99
    for index, kind in enumerate(kinds):
        rank = slots["compress" if kind.startswith("compress") else kind][0]
        if rank <= last:
            stages.append([-1, -1, -1])
        stages[-1][rank] = index
        last = rank
    return [Stage(tuple(s)) for s in stages]  # type: ignore[arg-type]


def encoder_stages(config: LTXVAEConfig) -> tuple[list[Stage], bool]:
    """Stages of the encoder (its last ``res_x`` is the mid block) and whether they are 0.9.5's."""
    blocks = config.encoder_blocks
    if blocks[-1].kind != RES:
        raise unrepresentable("the encoder does not end with a res_x block")
    v095 = any(b.kind.endswith("_res") for b in blocks)
    for block in blocks[:-1]:
        if block.kind.startswith("compress") and (
                block.kind not in DOWNSAMPLE_TYPES or (not v095 and block.kind != "compress_all")):
            raise unrepresentable(f"encoder block {block.kind}")
        if v095 and block.kind == RES_WIDEN:
            raise unrepresentable("res_x_y in a space-to-depth encoder")
    return _group([b.kind for b in blocks[:-1]], _ENCODER_SLOTS), v095


def decoder_stages(config: LTXVAEConfig) -> list[Stage]:
    """Stages of the decoder in running order; its first ``res_x`` is the mid block."""
    blocks = decoder_blocks(config)
    if blocks[0].kind != RES:
        raise unrepresentable("the decoder does not start with a res_x block")
    if any(b.kind in ("compress_time", "compress_space") for b in blocks):
        raise unrepresentable("decoder upsamplers other than compress_all")
    if config.timestep_conditioning and any(b.kind == RES_WIDEN for b in blocks):
        raise unrepresentable("res_x_y in a timestep-conditioned decoder")
    stages = _group([b.kind for b in blocks[1:]], _DECODER_SLOTS)
    return [Stage(tuple(i + 1 if i >= 0 else -1 for i in s.slots)) for s in stages]  # type: ignore[arg-type]


def encoder_paths(config: LTXVAEConfig) -> list[str]:
    """Diffusers module path (under ``encoder.``) of each original ``down_blocks.k``."""
    stages, _ = encoder_stages(config)
    paths = [""] * len(config.encoder_blocks)
    for number, stage in enumerate(stages):
        for slot, index in enumerate(stage.slots):
            if index >= 0:
                template = [t for r, t in _ENCODER_SLOTS.values() if r == slot][0]
                paths[index] = template.format(f"down_blocks.{number}")
    paths[-1] = "mid_block"
    return paths


def decoder_paths(config: LTXVAEConfig) -> list[str]:
    """Diffusers module path (under ``decoder.``) of each original ``up_blocks.k``."""
    paths = ["mid_block"] + [""] * (len(config.decoder_blocks) - 1)
    for number, stage in enumerate(decoder_stages(config)):
        for slot, index in enumerate(stage.slots):
            if index >= 0:
                template = [t for r, t in _DECODER_SLOTS.values() if r == slot][0]
                paths[index] = template.format(f"up_blocks.{number}")
    return paths


def _encoder_fields(config: LTXVAEConfig) -> dict[str, Any]:
    stages, v095 = encoder_stages(config)
    widths, blocks = encoder_widths(config), config.encoder_blocks
    outs = [widths[0][0]]
    for stage in stages:
        ends = [i for i in stage.slots if i >= 0]
        outs.append(widths[max(ends)][1])
    if not v095:
        if outs[-1] != outs[-2]:
            raise unrepresentable("the last encoder stage changes the width")
        outs = outs[:-1]
    return {
        "block_out_channels": outs,
        "down_block_types": [V095 if v095 else CLASSIC] * len(stages),
        "layers_per_block": [blocks[s.slots[0]].num_layers if s.slots[0] >= 0 else 0
                             for s in stages] + [blocks[-1].num_layers],
        "spatio_temporal_scaling": [s.slots[1] >= 0 for s in stages],
        "downsample_type": [DOWNSAMPLE_TYPES[blocks[s.slots[1]].kind] if s.slots[1] >= 0
                            else "conv" for s in stages],
    }


def _decoder_stage(config: LTXVAEConfig, stage: Stage, width: int) -> dict[str, Any]:
    """Diffusers fields of one decoder stage whose input is ``width`` channels wide."""
    blocks, widths = decoder_blocks(config), decoder_widths(config)
    widen_at, up_at, res_at = stage.slots
    up = blocks[up_at] if up_at >= 0 else None
    factor = up.multiplier if up else 1
    if factor > 1 and widen_at >= 0:
        raise unrepresentable("a res_x_y before a channel-reducing upsampler")
    injects = {blocks[i].inject_noise for i in (widen_at, res_at) if i >= 0}
    if len(injects) > 1:
        raise unrepresentable("noise injection differing within one stage")
    return {"out": width if factor > 1 else widths[max(i for i in stage.slots if i >= 0)][1],
            "layers": blocks[res_at].num_layers if res_at >= 0 else 0,
            "scaling": up is not None, "inject": injects.pop() if injects else False,
            "residual": bool(up and up.residual), "factor": factor,
            "next": widths[max(i for i in stage.slots if i >= 0)][1]}


def _decoder_fields(config: LTXVAEConfig) -> dict[str, Any]:
    mid = decoder_blocks(config)[0]
    width = decoder_widths(config)[0][0]
    rows = []
    for stage in decoder_stages(config):
        rows.append(_decoder_stage(config, stage, width))
        width = rows[-1]["next"]
    if rows and rows[0]["out"] != decoder_widths(config)[0][0]:
        raise unrepresentable("the first decoder stage changes the mid block's width")
    return {
        "decoder_block_out_channels": [r["out"] for r in reversed(rows)],
        "decoder_layers_per_block": [r["layers"] for r in reversed(rows)] + [mid.num_layers],
        "decoder_spatio_temporal_scaling": [r["scaling"] for r in reversed(rows)],
        "decoder_inject_noise": [r["inject"] for r in reversed(rows)] + [mid.inject_noise],
        "upsample_residual": [r["residual"] for r in reversed(rows)],
        "upsample_factor": [r["factor"] for r in reversed(rows)],
    }


def config_to_diffusers(config: LTXVAEConfig) -> dict[str, Any]:
    if config.latent_log_var != "uniform":
        raise unrepresentable(f"latent_log_var {config.latent_log_var!r} (diffusers: 'uniform')")
    if config.spatial_padding_mode != "zeros":
        raise unrepresentable(f"spatial_padding_mode {config.spatial_padding_mode!r}")
    return {
        "in_channels": config.in_channels, "out_channels": config.out_channels,
        "latent_channels": config.latent_channels, **_encoder_fields(config),
        **_decoder_fields(config), "timestep_conditioning": config.timestep_conditioning,
        "patch_size": config.patch_size, "patch_size_t": 1, "resnet_norm_eps": 1e-6,
        "scaling_factor": config.scaling_factor, "encoder_causal": True,
        "decoder_causal": config.causal_decoder,
        "spatial_compression_ratio": config.spatial_ratio,
        "temporal_compression_ratio": config.temporal_ratio,
    }


def config_from_diffusers(d: Mapping[str, Any]) -> LTXVAEConfig:
    """Read a diffusers ``AutoencoderKLLTXVideo`` ``config.json``."""
    return read_diffusers(d)
