"""Configuration of the HunyuanVideo causal 3D VAE, as Open-Sora 2.0 publishes and uses it.

Source: hpcaitech/Open-Sora ``opensora/models/hunyuan_vae/autoencoder_kl_causal_3d.py``
(``AutoEncoder3DConfig``) and ``configs/diffusion/inference/256px.py`` (``ae = dict(type=
"hunyuan_vae", from_pretrained="./ckpts/hunyuan_vae.safetensors", use_spatial_tiling=True,
use_temporal_tiling=False)``), commit 7ad6a96a. Latents: 16 channels, 8× spatial and 4× causal
temporal compression (T' = (T − 1)/4 + 1), normalised as z = scale·(μ − shift) with
scale 0.476986, shift 0. Spatial tiling: 256-pixel tiles, 25 % overlap (stride 192 pixels).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from studio.errors import CheckpointError


@dataclass(frozen=True, slots=True)
class HunyuanVAEConfig:
    """Architecture and latent scaling of a HunyuanVideo VAE.

    Attributes:
        block_out_channels: width of each encoder stage (the decoder mirrors them).
        layers_per_block: ResnetBlocks per encoder stage (each decoder stage has one more).
        norm_num_groups: GroupNorm groups; must divide every width.
        mid_block_add_attention: whether the mid blocks hold the frame-causal attention.
        scale_factor / shift_factor: normalised latent = scale·(μ − shift).
        spatial_ratio / temporal_ratio: pixels per latent cell (8) / frames per latent frame (4).
    """

    in_channels: int = 3
    out_channels: int = 3
    latent_channels: int = 16
    block_out_channels: tuple[int, ...] = (128, 256, 512, 512)
    layers_per_block: int = 2
    norm_num_groups: int = 32
    mid_block_add_attention: bool = True
    scale_factor: float = 0.476986
    shift_factor: float = 0.0
    spatial_ratio: int = 8
    temporal_ratio: int = 4

    def __post_init__(self) -> None:
        problem = _problem(self)
        if problem:
            raise CheckpointError(
                f"Invalid HunyuanVideo VAE configuration: {problem}",
                "check the VAE file or re-download hunyuan_vae.safetensors",
            )


def _problem(config: HunyuanVAEConfig) -> str:
    widths = config.block_out_channels
    if config.temporal_ratio != 4:
        return f"temporal_ratio {config.temporal_ratio} is not supported (only 4)"
    if config.spatial_ratio != 2 ** (len(widths) - 1):
        return f"spatial_ratio {config.spatial_ratio} does not fit {len(widths)} stages"
    if min(*widths, config.latent_channels, config.layers_per_block, config.norm_num_groups) < 1:
        return "widths, channel and block counts must be positive"
    if any(w % config.norm_num_groups for w in widths):
        return f"norm_num_groups {config.norm_num_groups} must divide every width {widths}"
    if config.scale_factor <= 0:
        return "scale_factor must be positive"
    return ""


OPENSORA_HUNYUAN_VAE = HunyuanVAEConfig()
"""Open-Sora 2.0's ``hunyuan_vae.safetensors`` (``AutoEncoder3DConfig`` defaults + 256px.py)."""


@dataclass(frozen=True, slots=True)
class HunyuanVAETiling:
    """Spatial tiling of encode and decode, in pixels (Open-Sora: 256 / 192, on; diffusers'
    ``enable_tiling()`` defaults are the same). Tiles overlap by ``size − stride`` pixels and are
    blended linearly; a clip no larger than ``size`` on both axes is processed in one piece."""

    enabled: bool = True
    size: int = 256
    stride: int = 192

    def __post_init__(self) -> None:
        if not 0 < self.stride <= self.size:
            raise CheckpointError(
                f"Invalid VAE tiling: stride {self.stride} must be in (0, size {self.size}]",
                "use a tile stride no larger than the tile size",
            )


OPENSORA_TILING = HunyuanVAETiling()
NO_TILING = HunyuanVAETiling(enabled=False)

_DOWN_RESNET = re.compile(r"^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.conv1\.conv\.weight$")


def config_from_state_dict(
    state: Mapping[str, torch.Tensor], norm_num_groups: int = 32
) -> HunyuanVAEConfig:
    """Read the architecture from a state dict's names and shapes.

    The group count and the latent scaling are not visible in the tensors: ``norm_num_groups``
    is taken as given (Open-Sora: 32) and the scaling is Open-Sora's.
    """
    widths, layers = _stages(state)
    needed = (
        "encoder.conv_in.conv.weight",
        "decoder.conv_out.conv.weight",
        "post_quant_conv.weight",
    )
    missing = [k for k in needed if k not in state]
    if missing or not widths:
        raise CheckpointError(
            "This file is not a HunyuanVideo VAE "
            f"(missing {', '.join(missing) or 'encoder.down_blocks'})",
            "choose Open-Sora 2.0's hunyuan_vae.safetensors",
        )
    return HunyuanVAEConfig(
        in_channels=int(state[needed[0]].shape[1]),
        out_channels=int(state[needed[1]].shape[0]),
        latent_channels=int(state[needed[2]].shape[0]),
        block_out_channels=widths,
        layers_per_block=layers,
        norm_num_groups=norm_num_groups,
        mid_block_add_attention="encoder.mid_block.attentions.0.to_q.weight" in state,
        spatial_ratio=2 ** (len(widths) - 1),
    )


def _stages(state: Mapping[str, torch.Tensor]) -> tuple[tuple[int, ...], int]:
    """Encoder stage widths (first ResnetBlock's output channels) and ResnetBlocks per stage;
    ``((), 0)`` when the stages are missing or not numbered 0, 1, …"""
    widths: dict[int, int] = {}
    layers = 0
    for key in state:
        match = _DOWN_RESNET.match(key)
        if match:
            stage, layer = int(match[1]), int(match[2])
            layers = max(layers, layer + 1)
            if layer == 0:
                widths[stage] = int(state[key].shape[0])
    if sorted(widths) != list(range(len(widths))):
        return (), 0
    return tuple(widths[i] for i in range(len(widths))), layers
