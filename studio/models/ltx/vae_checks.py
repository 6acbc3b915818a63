"""Channel widths through an LTX-Video VAE's block lists, and the checks that a configuration
can be built (docs/families/ltx.md). Widths follow ``CausalVideoAutoencoder``'s ``Encoder`` and
``Decoder`` constructors: the decoder builds its list in reverse, starting at its base width
times every multiplier."""

from __future__ import annotations

from typing import TYPE_CHECKING

from studio.models.ltx.vae_config import (
    DECODER_COMPRESS,
    ENCODER_COMPRESS,
    LOG_VAR_EXTRA,
    PADDING_MODES,
    RES,
    RES_WIDEN,
    VAEBlock,
)

if TYPE_CHECKING:
    from studio.models.ltx.vae_config import LTXVAEConfig


def encoder_widths(config: LTXVAEConfig) -> list[tuple[int, int]]:
    """``(in, out)`` channels of each encoder block, in order."""
    width, out = config.encoder_base_channels, []
    for block in config.encoder_blocks:
        widens = block.kind == RES_WIDEN or ENCODER_COMPRESS.get(block.kind, (0, False))[1]
        new = width * block.multiplier if widens else width
        out.append((width, new))
        width = new
    return out


def decoder_blocks(config: LTXVAEConfig) -> tuple[VAEBlock, ...]:
    """The decoder's blocks in the order it runs them (the configured list reversed)."""
    return tuple(reversed(config.decoder_blocks))


def decoder_widths(config: LTXVAEConfig) -> list[tuple[int, int]]:
    """``(in, out)`` channels of each decoder block, in running order."""
    width = config.decoder_base_channels
    for block in config.decoder_blocks:
        if block.kind in (RES_WIDEN, "compress_all"):
            width *= block.multiplier
    out = []
    for block in decoder_blocks(config):
        new = width // block.multiplier if block.kind in (RES_WIDEN, "compress_all") else width
        out.append((width, new))
        width = new
    return out


def config_problem(config: LTXVAEConfig) -> str:
    """What makes ``config`` unbuildable, or ""."""
    for problem in (_scalar_problem(config), _encoder_problem(config), _decoder_problem(config)):
        if problem:
            return problem
    if config.spatial_ratio != _decoder_ratio(config, 1) * config.patch_size:
        return "the decoder's spatial upsampling does not mirror the encoder's compression"
    if config.temporal_ratio != _decoder_ratio(config, 0):
        return "the decoder's temporal upsampling does not mirror the encoder's compression"
    return ""


def _scalar_problem(config: LTXVAEConfig) -> str:
    sizes = (config.in_channels, config.out_channels, config.latent_channels, config.patch_size,
             config.encoder_base_channels, config.decoder_base_channels)
    if min(sizes) < 1:
        return "channel counts and patch_size must be positive"
    if config.norm_layer != "pixel_norm":
        return f"norm_layer {config.norm_layer!r} is not supported (only 'pixel_norm')"
    if config.latent_log_var not in LOG_VAR_EXTRA:
        return f"latent_log_var {config.latent_log_var!r} is not one of {sorted(LOG_VAR_EXTRA)}"
    if config.spatial_padding_mode not in PADDING_MODES:
        return f"spatial_padding_mode {config.spatial_padding_mode!r} is not one of {PADDING_MODES}"
    if not config.encoder_blocks or not config.decoder_blocks:
        return "encoder_blocks and decoder_blocks must not be empty"
    return ""


def _block_problem(block: VAEBlock, side: str, allowed: tuple[str, ...]) -> str:
    if block.kind not in allowed:
        return f"unknown {side} block {block.kind!r} (known: {', '.join(allowed)})"
    if block.kind == RES and block.num_layers < 1:
        return f"{side} res_x needs num_layers ≥ 1, got {block.num_layers}"
    if block.multiplier < 1:
        return f"{side} {block.kind} multiplier must be ≥ 1, got {block.multiplier}"
    return ""


def _encoder_problem(config: LTXVAEConfig) -> str:
    allowed = (RES, RES_WIDEN, *ENCODER_COMPRESS)
    for block, (width, new) in zip(config.encoder_blocks, encoder_widths(config), strict=True):
        problem = _block_problem(block, "encoder", allowed)
        if problem:
            return problem
        cells = block.stride[0] * block.stride[1] * block.stride[2]
        if block.kind.endswith("_res") and (new % cells or (width * cells) % new):
            return f"encoder {block.kind} from {width} to {new} channels does not divide evenly"
        if block.inject_noise or block.residual:
            return f"encoder {block.kind} cannot inject noise or be residual"
    return ""


def _decoder_problem(config: LTXVAEConfig) -> str:
    allowed = (RES, RES_WIDEN, *DECODER_COMPRESS)
    for block, (width, _) in zip(decoder_blocks(config), decoder_widths(config), strict=True):
        problem = _block_problem(block, "decoder", allowed)
        if problem:
            return problem
        if block.kind in ("compress_time", "compress_space") and block.multiplier != 1:
            return f"decoder {block.kind} cannot change the width (multiplier {block.multiplier})"
        if width % block.multiplier:
            return f"decoder {block.kind} multiplier {block.multiplier} does not divide {width}"
        if block.kind == "compress_all" and 8 % block.multiplier:
            return f"decoder compress_all multiplier must divide 8, got {block.multiplier}"
        if block.kind == RES_WIDEN and block.inject_noise:
            return "decoder res_x_y cannot inject noise (its noise scales fit equal widths only)"
        if block.residual and block.kind not in DECODER_COMPRESS:
            return f"decoder {block.kind} cannot be residual"
        stride = DECODER_COMPRESS.get(block.kind, (1, 1, 1))
        if block.residual and width % (stride[0] * stride[1] * stride[2]):
            return f"decoder residual {block.kind} width {width} does not fold into {stride}"
    return ""


def _decoder_ratio(config: LTXVAEConfig, axis: int) -> int:
    return 2 ** sum(DECODER_COMPRESS.get(b.kind, (1, 1, 1))[axis] == 2
                    for b in config.decoder_blocks)
