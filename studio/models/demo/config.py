"""The demo model's configuration: architecture, text encoder, defaults, preview factors.

``config.json`` in the model folder holds a :class:`DemoConfig`: the Wan DiT config, the Wan 2.1
VAE config (with the latent mean/std measured on the training latents), the text encoder's name
and length, the generation defaults, and the latent → RGB preview factors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.engine.model import FamilyDefaults, PreviewFactors
from studio.errors import CheckpointError
from studio.media.atomic import atomic_write_bytes
from studio.models.demo.text import MINILM_NAME, TEXT_DIM, TEXT_LENGTH
from studio.models.wan.dit_config import WanDiTConfig
from studio.models.wan.vae import WanVAEConfig

CONFIG_FILE = "config.json"
DIT_FILE = "dit.safetensors"
VAE_FILE = "vae.safetensors"
CONFIG_VERSION = 1
VARIANT = "shapes-v1"
Z_DIM = 16

DIT_CONFIG = WanDiTConfig(
    dim=128, ffn_dim=512, num_heads=4, num_layers=4, in_dim=Z_DIM, out_dim=Z_DIM,
    text_dim=TEXT_DIM, text_len=TEXT_LENGTH,
)  # fmt: skip
"""Wan DiT at small width: head dim 32, 320 tokens for 17 × 128 × 128."""

VAE_ARCH = WanVAEConfig(
    version="2.1", dim=8, z_dim=Z_DIM, num_res_blocks=1,
    latent_mean=(0.0,) * Z_DIM, latent_std=(1.0,) * Z_DIM,
)  # fmt: skip
"""Wan 2.1 VAE at small width (8× spatial, 4× temporal); statistics are filled in after training."""


@dataclass(frozen=True, slots=True)
class DemoDefaults:
    """Generation defaults of the demo model."""

    steps: int = 20
    guidance: float = 5.0
    shift: float = 2.0
    fps: float = 8.0
    frames: int = 17
    width: int = 128
    height: int = 128

    def family_defaults(self) -> FamilyDefaults:
        return FamilyDefaults(
            steps=self.steps,
            guidance=self.guidance,
            shift=self.shift,
            fps=self.fps,
            frames=self.frames,
            sizes=((self.width, self.height),),
            negative_prompt="",
        )


@dataclass(frozen=True, slots=True)
class DemoConfig:
    """Everything needed to build the demo model (weights aside)."""

    dit: WanDiTConfig
    vae: WanVAEConfig
    text_encoder: str = MINILM_NAME
    text_length: int = TEXT_LENGTH
    defaults: DemoDefaults = field(default_factory=DemoDefaults)
    preview: PreviewFactors = field(
        default_factory=lambda: PreviewFactors(((0.0, 0.0, 0.0),) * Z_DIM, (0.0, 0.0, 0.0))
    )

    def to_dict(self) -> dict[str, Any]:
        d = self.defaults
        return {
            "version": CONFIG_VERSION,
            "family": "demo",
            "name": "Demo (shapes)",
            "variant": VARIANT,
            "dit": self.dit.to_dict(),
            "vae": self.vae.to_dict(),
            "text_encoder": {"name": self.text_encoder, "length": self.text_length},
            "defaults": {f: getattr(d, f) for f in DemoDefaults.__slots__},
            "preview": {
                "rgb_factors": [list(row) for row in self.preview.rgb_factors],
                "bias": list(self.preview.bias),
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DemoConfig:
        """Parse :meth:`to_dict` output; anything malformed raises :class:`CheckpointError`."""
        try:
            if data.get("version") != CONFIG_VERSION:
                raise ValueError(f"config version {data.get('version')!r} is not supported")
            preview = data["preview"]
            return cls(
                dit=WanDiTConfig.from_dict(data["dit"]),
                vae=WanVAEConfig.from_dict(data["vae"]),
                text_encoder=str(data["text_encoder"]["name"]),
                text_length=int(data["text_encoder"]["length"]),
                defaults=DemoDefaults(**data["defaults"]),
                preview=PreviewFactors(
                    tuple(tuple(float(v) for v in row) for row in preview["rgb_factors"]),
                    tuple(float(v) for v in preview["bias"]),
                ),
            )
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"The demo model's config.json is not valid ({exc})",
                "reinstall Flow Studio or re-train the demo model with: studio train demo",
            ) from exc

    def save(self, folder: Path) -> Path:
        """Write ``config.json`` into ``folder`` atomically."""
        path = Path(folder) / CONFIG_FILE
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        atomic_write_bytes(path, text.encode("utf-8"))
        return path

    @classmethod
    def load(cls, folder: Path) -> DemoConfig:
        path = Path(folder) / CONFIG_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise CheckpointError(
                f"The demo model has no {CONFIG_FILE} in {folder}",
                "reinstall Flow Studio or re-train the demo model with: studio train demo",
            ) from exc
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"Could not read {path}: {exc}", "the file is damaged") from exc
        if not isinstance(data, dict):
            raise CheckpointError(f"{path} is not a JSON object", "the file is damaged")
        return cls.from_dict(data)
