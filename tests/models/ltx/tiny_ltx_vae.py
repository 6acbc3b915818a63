"""Tiny LTX-Video VAE configurations for tests: a few channels per stage, one ResnetBlock per
``res_x``, but the real compression (4×4 patchify, 32× in space, 8× in time) and the real block
structure of each published version."""

from __future__ import annotations

from studio.models.ltx.vae_config import LTXVAEConfig, compress, res, widen

_ENCODER_090 = (res(1), compress("compress_all"), widen(), res(1), compress("compress_all"),
                widen(), res(1), compress("compress_all"), res(1), res(1))
_UP = compress("compress_all", multiplier=2, residual=True)

TINY_090 = LTXVAEConfig(encoder_blocks=_ENCODER_090, decoder_blocks=_ENCODER_090,
                        latent_channels=16, encoder_base_channels=8, decoder_base_channels=8)
TINY_091 = LTXVAEConfig(
    encoder_blocks=_ENCODER_090,
    decoder_blocks=(res(1, True), _UP, res(2, True), _UP, res(1, True), _UP, res(1)),
    latent_channels=16, encoder_base_channels=8, decoder_base_channels=8,
    timestep_conditioning=True)
TINY_095 = LTXVAEConfig(
    encoder_blocks=(res(1), compress("compress_space_res", 2), res(1),
                    compress("compress_time_res", 2), res(1), compress("compress_all_res", 2),
                    res(1), compress("compress_all_res", 2), res(1)),
    decoder_blocks=(res(1), _UP, res(1), _UP, res(1), _UP, res(2)),
    latent_channels=16, encoder_base_channels=8, decoder_base_channels=8,
    timestep_conditioning=True)
TINY = {"0.9.0": TINY_090, "0.9.1": TINY_091, "0.9.5": TINY_095}
