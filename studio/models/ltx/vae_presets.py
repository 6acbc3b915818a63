"""The published LTX-Video VAE configurations (docs/families/ltx.md): 0.9.0, 0.9.1 and 0.9.5
(whose VAE 0.9.6, 0.9.7 and 0.9.8 keep), with 128 latent channels, patch 4, 32× / 8×."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from studio.errors import CheckpointError
from studio.models.ltx.vae import LTXVideoVAE
from studio.models.ltx.vae_config import LTXVAEConfig, compress, res, widen

_BLOCKS_090 = (res(4), compress("compress_all"), widen(), res(3), compress("compress_all"),
               widen(), res(3), compress("compress_all"), res(3), res(4))
_UP = compress("compress_all", multiplier=2, residual=True)

LTXV_090 = LTXVAEConfig(encoder_blocks=_BLOCKS_090, decoder_blocks=_BLOCKS_090)
"""0.9.0 (``OURS_VAE_CONFIG`` in LTX-Video ``ltx_video/utils/diffusers_config_mapping.py``)."""

LTXV_091 = LTXVAEConfig(
    encoder_blocks=_BLOCKS_090,
    decoder_blocks=(res(5, True), _UP, res(6, True), _UP, res(7, True), _UP, res(8)),
    timestep_conditioning=True,
)
"""0.9.1 (diffusers ``scripts/convert_ltx_to_diffusers.py`` ``get_vae_config("0.9.1")``)."""

LTXV_095 = LTXVAEConfig(
    encoder_blocks=(res(4), compress("compress_space_res", 2), res(6),
                    compress("compress_time_res", 2), res(6), compress("compress_all_res", 2),
                    res(2), compress("compress_all_res", 2), res(2)),
    decoder_blocks=(res(5), _UP, res(5), _UP, res(5), _UP, res(5)),
    timestep_conditioning=True,
)
"""0.9.5–0.9.8 (``get_vae_config("0.9.5")`` / ``("0.9.7")``, identical)."""

PUBLISHED = {"0.9.0": LTXV_090, "0.9.1": LTXV_091, "0.9.5": LTXV_095}


def published_for(shapes: Mapping[str, tuple[int, ...]]) -> LTXVAEConfig:
    """The published configuration whose tensors ``shapes`` (own names) holds, for a VAE file
    without a header ``config``. Told apart as diffusers' single-file loader does: an encoder
    ``conv_out`` reading 2048 channels is 0.9.5's, a decoder ``last_time_embedder`` 0.9.1's;
    every name and shape is then checked against that configuration."""
    conv_out = shapes.get("encoder.conv_out.conv.weight", ())
    if len(conv_out) > 1 and conv_out[1] == 2048:
        config = LTXV_095
    elif any(k.startswith("decoder.last_time_embedder.") for k in shapes):
        config = LTXV_091
    else:
        config = LTXV_090
    with torch.device("meta"):
        wanted = {k: tuple(v.shape) for k, v in LTXVideoVAE(config).state_dict().items()}
    for name, shape in wanted.items():
        optional = name == "per_channel_statistics.mean-of-means"  # the original defaults it
        if tuple(shapes.get(name, ())) != shape and not (optional and name not in shapes):
            raise CheckpointError(
                f"This VAE is not a published LTX-Video {config.version} VAE: {name} is "
                f"{tuple(shapes[name]) if name in shapes else 'missing'}, expected {shape}",
                "use a file whose header carries its 'config', or a diffusers vae/ folder")
    return config
