"""Configuration of LTX-Video's causal video VAE (``CausalVideoAutoencoder``), docs/families/ltx.md.

The original describes both halves as lists of named blocks (``encoder_blocks`` /
``decoder_blocks``, or one shared ``blocks`` list in 0.9.0), read here into :class:`VAEBlock`
tuples in the original's order; the decoder builds them in reverse. Three published versions:

* **0.9.0** — one block list for both halves, widths 128→512, no timestep conditioning;
* **0.9.1** — the 0.9.0 encoder; a wider decoder (1024→512→256→128 through residual
  depth-to-space upsamplers) conditioned on the decode timestep, with spatial noise injection;
* **0.9.5** (also 0.9.6–0.9.8) — an encoder widening 128→2048 through space-to-depth
  downsamplers (spatial, temporal, then two spatiotemporal), and a timestep-conditioned decoder.

All compress 32× in space (4×4 patchify, then three spatial halvings) and 8× in time, keep 128
latent channels and normalise them with per-channel statistics stored in the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

from studio.errors import CheckpointError

RES = "res_x"
RES_WIDEN = "res_x_y"
#: Encoder compressions: name → (time, height, width) stride, and whether the width changes.
ENCODER_COMPRESS = {
    "compress_time": ((2, 1, 1), False),
    "compress_space": ((1, 2, 2), False),
    "compress_all": ((2, 2, 2), False),
    "compress_all_x_y": ((2, 2, 2), True),
    "compress_all_res": ((2, 2, 2), True),
    "compress_space_res": ((1, 2, 2), True),
    "compress_time_res": ((2, 1, 1), True),
}
#: Decoder upsamplers (depth-to-space), same strides.
DECODER_COMPRESS = {k: ENCODER_COMPRESS[k][0] for k in ("compress_time", "compress_space",
                                                        "compress_all")}
LOG_VAR_EXTRA = {"uniform": 1, "constant": 1, "per_channel": -1, "none": 0}
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_HINT = "check the VAE's config (the single file's header 'config' → 'vae', or vae/config.json)"


@dataclass(frozen=True, slots=True)
class VAEBlock:
    """One entry of a block list. ``num_layers``: ResnetBlocks of a ``res_x``; ``multiplier``:
    width factor (``res_x_y``, widening compressions; the decoder's ``compress_all`` divides by
    it); ``inject_noise``: spatial noise after each convolution; ``residual``: the decoder
    upsampler adds its depth-to-space input back."""

    kind: str
    num_layers: int = 1
    multiplier: int = 1
    inject_noise: bool = False
    residual: bool = False

    @property
    def stride(self) -> tuple[int, int, int]:
        if self.kind in ENCODER_COMPRESS:
            return ENCODER_COMPRESS[self.kind][0]
        return (1, 1, 1)


@dataclass(frozen=True, slots=True)
class LTXVAEConfig:
    """Architecture of an LTX-Video VAE, in the original's terms.

    Attributes:
        encoder_blocks / decoder_blocks: block lists in the original's order.
        encoder_base_channels / decoder_base_channels: width after ``conv_in`` (encoder) and of
            the decoder's last stage (its first width is this times every multiplier).
        patch_size: pixels per side folded into channels before ``conv_in`` (4).
        latent_log_var: how many log-variance channels follow the mean ("uniform": one).
        causal_decoder: whether the decoder pads time causally (published: False).
        timestep_conditioning: whether the decoder takes the decode timestep (0.9.1+).
        spatial_padding_mode: padding of every convolution in height and width.
        scaling_factor: kept for the configs' sake; LTX latents use the per-channel statistics.
    """

    encoder_blocks: tuple[VAEBlock, ...]
    decoder_blocks: tuple[VAEBlock, ...]
    in_channels: int = 3
    out_channels: int = 3
    latent_channels: int = 128
    patch_size: int = 4
    encoder_base_channels: int = 128
    decoder_base_channels: int = 128
    norm_layer: str = "pixel_norm"
    latent_log_var: str = "uniform"
    causal_decoder: bool = False
    timestep_conditioning: bool = False
    spatial_padding_mode: str = "zeros"
    scaling_factor: float = 1.0

    def __post_init__(self) -> None:
        problem = config_problem(self)
        if problem:
            raise CheckpointError(f"Invalid LTX-Video VAE configuration: {problem}", _HINT)

    @property
    def version(self) -> str:
        """"0.9.5" (space-to-depth encoder), "0.9.1" (timestep-conditioned decoder) or "0.9.0"."""
        if any(b.kind.endswith("_res") for b in self.encoder_blocks):
            return "0.9.5"
        return "0.9.1" if self.timestep_conditioning else "0.9.0"

    @property
    def spatial_ratio(self) -> int:
        """Pixels per latent cell along height and width (32)."""
        return self.patch_size * 2 ** sum(b.stride[1] == 2 for b in self.encoder_blocks)

    @property
    def temporal_ratio(self) -> int:
        """Frames per latent frame after the first (8): T' = 1 + (T − 1)/ratio."""
        return 2 ** sum(b.stride[0] == 2 for b in self.encoder_blocks)

    @property
    def encoder_out_channels(self) -> int:
        """``encoder.conv_out`` width: the mean plus the log-variance channels."""
        extra = LOG_VAR_EXTRA[self.latent_log_var]
        return 2 * self.latent_channels if extra < 0 else self.latent_channels + extra


def res(num_layers: int, inject_noise: bool = False) -> VAEBlock:
    return VAEBlock(RES, num_layers=num_layers, inject_noise=inject_noise)


def widen(multiplier: int = 2) -> VAEBlock:
    return VAEBlock(RES_WIDEN, multiplier=multiplier)


def compress(kind: str, multiplier: int = 1, residual: bool = False) -> VAEBlock:
    return VAEBlock(kind, multiplier=multiplier, residual=residual)


# --- channel widths and the checks that a configuration can be built -------------------


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
