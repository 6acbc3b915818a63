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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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
        from studio.models.ltx.vae_checks import config_problem

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

    @classmethod
    def from_original(cls, d: Mapping[str, Any]) -> LTXVAEConfig:
        """Read the ``vae`` object of a single file's header ``config``."""
        from studio.models.ltx.vae_original import config_from_original

        return config_from_original(cls, d)

    def to_original(self) -> dict[str, Any]:
        from studio.models.ltx.vae_original import config_to_original

        return config_to_original(self)

    @classmethod
    def from_diffusers(cls, d: Mapping[str, Any]) -> LTXVAEConfig:
        """Read a diffusers ``AutoencoderKLLTXVideo`` ``config.json``."""
        from studio.models.ltx.vae_diffusers import config_from_diffusers

        return config_from_diffusers(cls, d)

    def to_diffusers(self) -> dict[str, Any]:
        """The ``AutoencoderKLLTXVideo`` keyword arguments; refused for an architecture that
        diffusers cannot express."""
        from studio.models.ltx.vae_diffusers import config_to_diffusers

        return config_to_diffusers(self)


def res(num_layers: int, inject_noise: bool = False) -> VAEBlock:
    return VAEBlock(RES, num_layers=num_layers, inject_noise=inject_noise)


def widen(multiplier: int = 2) -> VAEBlock:
    return VAEBlock(RES_WIDEN, multiplier=multiplier)


def compress(kind: str, multiplier: int = 1, residual: bool = False) -> VAEBlock:
    return VAEBlock(kind, multiplier=multiplier, residual=residual)
