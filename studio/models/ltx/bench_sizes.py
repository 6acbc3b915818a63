"""The LTX-Video architectures ``studio bench`` and the diffusers comparison time.

Names carry the family (``--config`` names are global across families). ``ltx-tiny`` is a toy
(seconds on any CPU; the tests run it); ``ltx-small`` keeps the published transformer's 64-wide
heads, its RoPE, 128 latent channels and the 0.9.1 VAE's stage layout (block counts, noise
injection, timestep conditioning) with narrowed widths, over a clip a CPU times in seconds;
``ltx-2b-768x512`` is the published 2B with the 0.9.1 VAE at its native 768×512, 121 frames
(CUDA only). ``tests/oracles/compare_ltx.py`` builds its models from here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from studio.engine.shapes import LatentGeometry
from studio.models.ltx.text import TEXT_LEN
from studio.models.ltx.transformer_config import LTX_2B, TINY, LTXTransformerConfig
from studio.models.ltx.vae_config import LTXVAEConfig, compress, res, widen
from studio.models.ltx.vae_presets import LTXV_091

#: Classifier-free guidance's two passes (diffusers' ``LTXPipeline`` batches cond and uncond).
GUIDANCE_BATCH = 2
#: The frame rate of the published configs (``inference.py``: 30 fps).
FPS = 30.0
#: The decode timestep of every published config (the 0.9.1 decoder is conditioned on it).
DECODE_TIMESTEP = 0.05


@dataclass(frozen=True, slots=True)
class LTXBenchSizes:
    """One LTX-Video architecture at one video size.

    Attributes:
        name: the bench configuration's name.
        transformer, vae: the two parts' sizes.
        width, height, frames: the denoiser's video size (pixels, frames).
        vae_width, vae_height, vae_frames: the size one VAE decode produces.
        text_len: T5 rows of the context (the studio pads prompts to 256).
        batch: samples per denoiser call (2: classifier-free guidance).
        cuda_only: too large for a CPU run.
    """

    name: str
    transformer: LTXTransformerConfig
    vae: LTXVAEConfig
    width: int
    height: int
    frames: int
    vae_width: int
    vae_height: int
    vae_frames: int
    text_len: int = TEXT_LEN
    batch: int = GUIDANCE_BATCH
    cuda_only: bool = False

    @property
    def geometry(self) -> LatentGeometry:
        """128 (or the toy's) latent channels, 8× time, 32× space, one token per latent cell."""
        return LatentGeometry(self.transformer.in_channels, self.vae.temporal_ratio,
                              self.vae.spatial_ratio, (1, 1, 1))  # fmt: skip

    @property
    def grid(self) -> tuple[int, int, int]:
        """Latent (frames, height, width) of the denoiser's clip: one token each."""
        _, _, t, h, w = self.geometry.latent_shape(self.frames, self.height, self.width)
        return t, h, w

    @property
    def tokens(self) -> int:
        t, h, w = self.grid
        return t * h * w

    def vae_latent_shape(self) -> tuple[int, int, int, int, int]:
        """``[1, C, T', H', W']`` of the latent one VAE decode reads."""
        return self.geometry.latent_shape(self.vae_frames, self.vae_height, self.vae_width)

    def describe(self) -> str:
        c, v = self.transformer, self.vae
        return (f"LTX-Video transformer {c.num_layers} blocks, {c.num_heads}×{c.head_dim} heads, "
                f"batch {self.batch}, random weights; {v.version} VAE, decoder base width "
                f"{v.decoder_base_channels}")  # fmt: skip


_UP = compress("compress_all", multiplier=2, residual=True)
#: The 0.9.1 VAE's block kinds (widening encoder, residual upsamplers, noise injection, timestep
#: conditioning) with one ResnetBlock each, 8 channels wide and 16 latent channels; every part
#: of it diffusers' ``AutoencoderKLLTXVideo`` can express.
_TINY_VAE = LTXVAEConfig(
    encoder_blocks=(res(1), compress("compress_all"), widen(), res(1), compress("compress_all"),
                    widen(), res(1), compress("compress_all"), res(1), res(1)),
    decoder_blocks=(res(1, True), _UP, res(1, True), _UP, res(1, True), _UP, res(1)),
    latent_channels=TINY.in_channels, encoder_base_channels=8, decoder_base_channels=8,
    timestep_conditioning=True,
)  # fmt: skip
#: 8 heads of the published 64 width (inner 512), 4 blocks, 128 latent channels, 256-wide text.
_SMALL = LTXTransformerConfig(num_layers=4, num_heads=8, head_dim=64, caption_channels=256)
#: The 0.9.1 VAE's block layout at a quarter of its widths (decoder 256 → 32, encoder 32 → 128).
_SMALL_VAE = replace(LTXV_091, encoder_base_channels=32, decoder_base_channels=32)

SIZES: dict[str, LTXBenchSizes] = {
    sizes.name: sizes
    for sizes in (
        LTXBenchSizes("ltx-tiny", TINY, _TINY_VAE, 128, 96, 17, 64, 64, 9),
        LTXBenchSizes("ltx-small", _SMALL, _SMALL_VAE, 640, 384, 65, 384, 256, 49),
        LTXBenchSizes(
            "ltx-2b-768x512", LTX_2B, LTXV_091, 768, 512, 121, 768, 512, 121, cuda_only=True
        ),
    )
}
