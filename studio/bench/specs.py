"""Benchmark configurations: which architecture, at which size, on which device.

``tiny`` and ``small`` shrink the Wan 2.1 architecture (same block structure, 128-wide heads,
the real VAE stage layout) so that a step runs on a laptop CPU in seconds; ``wan21-1.3b`` and
``wan22-5b`` are the published models at their native sizes and run on CUDA only. Weights are
random unless a checkpoint folder is given. ``demo`` is the shipped demo model with its trained
weights, measured the way a user runs it (17 × 128 × 128, 20 guided steps), against the load and
generation times it is built to meet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from studio.engine.shapes import LatentGeometry
from studio.errors import InvalidRequest
from studio.models.demo.config import DIT_CONFIG as DEMO_DIT
from studio.models.demo.config import VAE_ARCH as DEMO_VAE
from studio.models.demo.config import DemoDefaults
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
MINILM_SIZES = TextSizes(30522, 384, 1536, 6, 12, 32)
"""all-MiniLM-L6-v2 (the demo model's text encoder; a BERT, described with the same fields)."""

PROMPT = "a red fox runs over the snow in the sunny day"
DEMO_PROMPT = "a yellow triangle moving up on a blue background"


@dataclass(frozen=True, slots=True)
class BenchSpec:
    """One benchmark configuration.

    Attributes:
        name: what ``--config`` takes.
        variant: the registry variant it stands for (for the forecast's tables).
        dit, vae, text: the three parts' sizes.
        geometry: latent geometry of the VAE.
        width, height, frames: the video size (pixels, frames).
        vae_width, vae_height, vae_frames: the size the VAE decode row uses.
        text_len: prompt tokens (the DiT's context rows).
        cuda_only: too large for a CPU run.
        weights: "random" (made at run time) or "builtin" (the shipped set ``model_id``).
        model_id: the catalogue id of the built-in set a "builtin" configuration runs.
        steps, shift, fps, prompt: the generate section's request (``--steps`` overrides).
        generate_runs: generations the generate section times after a first one (median per
            stage); 1 times just one.
        targets: ``(row, seconds)`` the configuration must stay within, shown beside the rows:
            "load" (model load) and "generate" (the median generation).
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
    vae_width: int
    vae_height: int
    vae_frames: int
    text_len: int = 512
    cuda_only: bool = False
    weights: Literal["random", "builtin"] = "random"
    model_id: str = ""
    steps: int = 2
    shift: float = 5.0
    fps: float = 16.0
    prompt: str = PROMPT
    generate_runs: int = 1
    targets: tuple[tuple[str, float], ...] = ()

    def target(self, row: str) -> float | None:
        return dict(self.targets).get(row)

    @property
    def tokens(self) -> int:
        g = self.geometry
        return g.latent_frames(self.frames) * g.tokens_per_frame(self.height, self.width)

    def latent_shape(self, batch: int = 1) -> tuple[int, int, int, int, int]:
        return self.geometry.latent_shape(self.frames, self.height, self.width, batch)

    def vae_latent_shape(self) -> tuple[int, int, int, int, int]:
        return self.geometry.latent_shape(self.vae_frames, self.vae_height, self.vae_width)

    def describe(self) -> str:
        d = self.dit
        return (f"{self.name}: DiT dim {d.dim}, {d.num_layers} layers, {d.num_heads} heads; "
                f"{self.width}×{self.height}×{self.frames} ({self.tokens} tokens); VAE "
                f"{self.vae.version} width {self.vae.dim} at "
                f"{self.vae_width}×{self.vae_height}×{self.vae_frames}")


_DEMO = DemoDefaults()
_SMALL_TEXT = TextSizes(vocab_size=64, d_model=1024, d_ff=2816, num_layers=2, num_heads=16, d_kv=64)
_TINY_TEXT = TextSizes(vocab_size=64, d_model=32, d_ff=48, num_layers=2, num_heads=4, d_kv=8)

SPECS: dict[str, BenchSpec] = {
    spec.name: spec
    for spec in (
        BenchSpec(
            "tiny", "t2v-custom",
            WanDiTConfig(dim=64, ffn_dim=128, num_heads=2, num_layers=2, text_dim=32, text_len=32),
            WanVAEConfig(version="2.1", dim=8, num_res_blocks=1), _TINY_TEXT, WAN21_GEOMETRY,
            64, 64, 5, 64, 64, 5, text_len=32,
        ),
        BenchSpec(
            "small", "t2v-custom",
            WanDiTConfig(dim=256, ffn_dim=1024, num_heads=2, num_layers=4, text_dim=1024),
            WanVAEConfig(version="2.1", dim=16), _SMALL_TEXT, WAN21_GEOMETRY,
            256, 256, 9, 256, 256, 9,
        ),
        BenchSpec(
            "demo", "shapes-v1", DEMO_DIT, DEMO_VAE, MINILM_SIZES, WAN21_GEOMETRY,
            128, 128, 17, 128, 128, 17, text_len=DEMO_DIT.text_len, weights="builtin",
            model_id="demo",
            steps=_DEMO.steps, shift=_DEMO.shift, fps=_DEMO.fps,
            prompt=DEMO_PROMPT, generate_runs=3, targets=(("load", 3.0), ("generate", 10.0)),
        ),
        BenchSpec(
            "wan21-1.3b", "t2v-1.3b", WAN21_T2V_1_3B, WAN21_VAE, UMT5_XXL_SIZES, WAN21_GEOMETRY,
            832, 480, 81, 832, 480, 81, cuda_only=True,
        ),
        BenchSpec(
            "wan22-5b", "ti2v-5b", WAN22_TI2V_5B, WAN22_VAE, UMT5_XXL_SIZES, WAN22_GEOMETRY,
            1280, 704, 121, 1280, 704, 121, cuda_only=True,
        ),
    )
}


def get_spec(name: str) -> BenchSpec:
    try:
        return SPECS[name]
    except KeyError:
        raise InvalidRequest("config", f"{name!r} is not a benchmark configuration",
                             f"use one of {', '.join(SPECS)}") from None
