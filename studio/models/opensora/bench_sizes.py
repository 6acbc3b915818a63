"""The Open-Sora 2.0 architectures ``studio bench`` and the diffusers comparison time.

Names carry the family (``--config`` names are global across families, and Wan's ``tiny`` and
``small`` came first). ``opensora-tiny`` is a toy (seconds on any CPU; the tests run it);
``opensora-small`` keeps the published MMDiT's 128-wide heads, RoPE split, text and vector widths
with a 384-wide trunk and 2 + 4 blocks, over a 256px-like clip scaled down (5 latent frames of
8×8 packed tokens), and a narrowed HunyuanVideo VAE with the published stage layout;
``opensora-256px`` is the published model at its native 256px size (CUDA only).
``tests/oracles/compare_opensora.py`` builds its models from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from studio.engine.shapes import LatentGeometry
from studio.models.opensora.hunyuan_vae_config import OPENSORA_HUNYUAN_VAE, HunyuanVAEConfig
from studio.models.opensora.mmdit_config import OPEN_SORA_V2, MMDiTConfig

#: HunyuanVideo VAE latents (16 channels, 4× time, 8× space) under the MMDiT's 2×2 packing.
OPENSORA_GEOMETRY = LatentGeometry(channels=16, temporal_factor=4, spatial_factor=8)
#: Denoiser passes per step in Open-Sora's image-to-video guidance (cond, text-free, image-free).
GUIDANCE_BATCH = 3


@dataclass(frozen=True, slots=True)
class OpenSoraBenchSizes:
    """One Open-Sora 2.0 architecture at one video size.

    Attributes:
        name: the bench configuration's name.
        mmdit, vae: the two parts' sizes.
        width, height, frames: the denoiser's video size (pixels, frames).
        vae_width, vae_height, vae_frames: the size one VAE decode produces.
        text_len: T5 rows of the context.
        batch: samples per denoiser call (3: the three-pass image-to-video guidance).
        cuda_only: too large for a CPU run.
    """

    name: str
    mmdit: MMDiTConfig
    vae: HunyuanVAEConfig
    width: int
    height: int
    frames: int
    vae_width: int
    vae_height: int
    vae_frames: int
    text_len: int = 512
    batch: int = GUIDANCE_BATCH
    cuda_only: bool = False

    @property
    def grid(self) -> tuple[int, int, int]:
        """Packed (t, h, w) tokens of the denoiser's clip."""
        g, p = OPENSORA_GEOMETRY, self.mmdit.patch_size
        s = g.spatial_factor * p
        return g.latent_frames(self.frames), self.height // s, self.width // s

    @property
    def tokens(self) -> int:
        t, h, w = self.grid
        return t * h * w

    def vae_latent_shape(self) -> tuple[int, int, int, int, int]:
        """``[1, C, T', H', W']`` of the latent one VAE decode reads."""
        g = OPENSORA_GEOMETRY
        s = g.spatial_factor
        c = self.vae.latent_channels
        return (1, c, g.latent_frames(self.vae_frames), self.vae_height // s, self.vae_width // s)

    def describe(self) -> str:
        m = self.mmdit
        return (f"Open-Sora MMDiT hidden {m.hidden_size}, {m.depth}+{m.depth_single_blocks} "
                f"blocks, {m.num_heads} heads, batch {self.batch}, random weights; HunyuanVideo "
                f"VAE widths {self.vae.block_out_channels}")  # fmt: skip


_TINY_MMDIT = MMDiTConfig(in_channels=64, hidden_size=64, num_heads=2, depth=2,
                          depth_single_blocks=2, axes_dim=(8, 12, 12), vec_in_dim=24,
                          context_in_dim=32)  # fmt: skip
_TINY_VAE = HunyuanVAEConfig(block_out_channels=(8, 16, 16, 16), layers_per_block=1,
                             norm_num_groups=4)  # fmt: skip
_SMALL_MMDIT = MMDiTConfig(hidden_size=384, num_heads=3, depth=2, depth_single_blocks=4)
_SMALL_VAE = HunyuanVAEConfig(block_out_channels=(32, 64, 64, 64), norm_num_groups=8)

SIZES: dict[str, OpenSoraBenchSizes] = {
    sizes.name: sizes
    for sizes in (
        OpenSoraBenchSizes(
            "opensora-tiny", _TINY_MMDIT, _TINY_VAE, 64, 48, 5, 32, 32, 5, text_len=8
        ),
        OpenSoraBenchSizes(
            "opensora-small", _SMALL_MMDIT, _SMALL_VAE, 128, 128, 17, 128, 128, 9, text_len=64
        ),
        OpenSoraBenchSizes(
            "opensora-256px",
            OPEN_SORA_V2,
            OPENSORA_HUNYUAN_VAE,
            256,
            256,
            129,
            256,
            256,
            129,
            cuda_only=True,
        ),
    )
}
