"""The Wan architectures ``studio bench`` times: shrunk sizes for a CPU, the published ones for
CUDA.

``tiny`` and ``small`` shrink the Wan 2.1 architecture (same block structure, 128-wide heads in
``small``, the real VAE stage layout) so that a step runs on a laptop CPU in seconds;
``wan21-1.3b`` and ``wan22-5b`` are the published models at their native sizes. The diffusers
comparison (``tests/oracles/compare_diffusers.py``) builds its models from the same table.
"""

from __future__ import annotations

from dataclasses import dataclass

from studio.engine.shapes import LatentGeometry
from studio.models.wan.dit_config import WAN21_T2V_1_3B, WAN22_TI2V_5B, WanDiTConfig
from studio.models.wan.presets import WAN21_GEOMETRY, WAN22_GEOMETRY
from studio.models.wan.vae import WAN21_VAE, WAN22_VAE, WanVAEConfig


@dataclass(frozen=True, slots=True)
class TextSizes:
    """A UMT5 encoder's sizes (UMT5-XXL: 256384 / 4096 / 10240 / 24 layers / 64 heads of 64)."""

    vocab_size: int
    d_model: int
    d_ff: int
    num_layers: int
    num_heads: int
    d_kv: int

    def to_dict(self) -> dict[str, int]:
        return {"vocab_size": self.vocab_size, "d_model": self.d_model, "d_ff": self.d_ff,
                "num_layers": self.num_layers, "num_heads": self.num_heads,
                "d_kv": self.d_kv}  # fmt: skip


UMT5_XXL_SIZES = TextSizes(256384, 4096, 10240, 24, 64, 64)
_SMALL_TEXT = TextSizes(vocab_size=64, d_model=1024, d_ff=2816, num_layers=2, num_heads=16, d_kv=64)
_TINY_TEXT = TextSizes(vocab_size=64, d_model=32, d_ff=48, num_layers=2, num_heads=4, d_kv=8)


@dataclass(frozen=True, slots=True)
class WanBenchSizes:
    """One Wan architecture at one video size.

    Attributes:
        name: the bench configuration's name.
        variant: the registry variant it stands for.
        dit, vae, text: the three parts' sizes.
        geometry: latent geometry of the VAE.
        width, height, frames: the video size; text_len: the context rows.
        cuda_only: too large for a CPU run.
    """

    name: str
    variant: str
    dit: WanDiTConfig
    vae: WanVAEConfig
    text: TextSizes
    geometry: LatentGeometry
    width: int
    height: int
    frames: int
    text_len: int = 512
    cuda_only: bool = False

    @property
    def tokens(self) -> int:
        g = self.geometry
        return g.latent_frames(self.frames) * g.tokens_per_frame(self.height, self.width)

    def describe(self) -> str:
        d = self.dit
        return (f"Wan DiT dim {d.dim}, {d.num_layers} layers, {d.num_heads} heads, random "
                f"weights; VAE {self.vae.version} width {self.vae.dim}")


SIZES: dict[str, WanBenchSizes] = {
    sizes.name: sizes
    for sizes in (
        WanBenchSizes(
            "tiny", "t2v-custom",
            WanDiTConfig(dim=64, ffn_dim=128, num_heads=2, num_layers=2, text_dim=32, text_len=32),
            WanVAEConfig(version="2.1", dim=8, num_res_blocks=1), _TINY_TEXT, WAN21_GEOMETRY,
            64, 64, 5, text_len=32,
        ),
        WanBenchSizes(
            "small", "t2v-custom",
            WanDiTConfig(dim=256, ffn_dim=1024, num_heads=2, num_layers=4, text_dim=1024),
            WanVAEConfig(version="2.1", dim=16), _SMALL_TEXT, WAN21_GEOMETRY, 256, 256, 9,
        ),
        WanBenchSizes("wan21-1.3b", "t2v-1.3b", WAN21_T2V_1_3B, WAN21_VAE, UMT5_XXL_SIZES,
                      WAN21_GEOMETRY, 832, 480, 81, cuda_only=True),
        WanBenchSizes("wan22-5b", "ti2v-5b", WAN22_TI2V_5B, WAN22_VAE, UMT5_XXL_SIZES,
                      WAN22_GEOMETRY, 1280, 704, 121, cuda_only=True),
    )
}
