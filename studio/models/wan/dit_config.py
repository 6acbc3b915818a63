"""Configuration of the Wan diffusion transformer (Wan 2.1 T2V-1.3B/14B, Wan 2.2 TI2V-5B).

Three ways in: the presets below, the original checkpoint's ``config.json``
(:meth:`WanDiTConfig.from_wan_config_json`) and the tensor shapes of an original-layout state
dict (:meth:`WanDiTConfig.from_state_dict_shapes`, for files that come without a config).
Image-to-video DiTs take the reference as extra input channels (16 + 20 = 36 in, 16 out), and
Wan 2.1 I2V/FLF2V-14B also CLIP features through an image branch; VACE is refused with a
:class:`~studio.errors.CheckpointError`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from studio.errors import CheckpointError
from studio.media.json_file import read_small_json

#: Every published Wan DiT uses 128-dimensional attention heads; a state dict does not record the
#: head count, so :meth:`WanDiTConfig.from_state_dict_shapes` derives it from this.
WAN_HEAD_DIM = 128

#: "i2v" is Wan 2.1 I2V-14B (with the CLIP image branch) and Wan 2.2 I2V A14B (without).
_SUPPORTED_MODEL_TYPES = ("t2v", "t2i", "ti2v", "i2v", "flf2v")
#: CLIP ViT-H/14 features: 257 tokens (class + 16·16 patches) of width 1280 per image.
CLIP_WIDTH, CLIP_TOKENS = 1280, 257
_HINT_SUPPORTED = "use a Wan 2.1 T2V (1.3B or 14B) or Wan 2.2 TI2V-5B checkpoint"
_UNSUPPORTED_KEYS = (("vace_", "Wan VACE"),)
_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.modulation$")


@dataclass(frozen=True, slots=True)
class WanDiTConfig:
    """Sizes of a Wan DiT (names as in the original ``WanModel``).

    Attributes:
        dim: model width (hidden size).
        ffn_dim: feed-forward hidden size.
        num_heads: attention heads; ``dim / num_heads`` is the head dim (128 in every release).
        num_layers: transformer blocks.
        in_dim / out_dim: latent channels in and out (16 for Wan 2.1, 48 for Wan 2.2 TI2V-5B).
        text_dim: text-encoder width (UMT5-XXL: 4096).
        freq_dim: size of the sinusoidal timestep embedding.
        text_len: context rows the text encoder pads to (the DiT itself does not pad).
        patch_size: (p_t, p_h, p_w) of the patch embedding.
        eps: epsilon of every LayerNorm / RMSNorm.
        image_dim: width of the CLIP image features the image branch takes (Wan 2.1 I2V and
            FLF2V-14B: 1280; 0 = no image branch).
        image_tokens: length of FLF2V's learned position table over its two images' features
            (514; 0 = none).
    """

    dim: int
    ffn_dim: int
    num_heads: int
    num_layers: int
    in_dim: int = 16
    out_dim: int = 16
    text_dim: int = 4096
    freq_dim: int = 256
    text_len: int = 512
    patch_size: tuple[int, int, int] = (1, 2, 2)
    eps: float = 1e-6
    image_dim: int = 0
    image_tokens: int = 0

    def __post_init__(self) -> None:
        positive = ("dim", "ffn_dim", "num_heads", "num_layers", "in_dim", "out_dim", "text_dim")
        for name in (*positive, "freq_dim", "text_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"WanDiTConfig.{name} must be a positive integer, got {value!r}")
        if len(self.patch_size) != 3 or any(p < 1 for p in self.patch_size):
            raise ValueError(f"WanDiTConfig.patch_size must be 3 positive ints: {self.patch_size}")
        if self.dim % self.num_heads:
            raise ValueError(f"dim {self.dim} is not divisible by num_heads {self.num_heads}")
        if self.head_dim % 2 or self.head_dim < 6:
            raise ValueError(f"head dim {self.head_dim} must be even and at least 6 (3D RoPE)")
        if self.freq_dim % 2:
            raise ValueError(f"freq_dim {self.freq_dim} must be even")
        if not self.eps > 0:
            raise ValueError(f"eps must be positive, got {self.eps}")

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def rope_pairs(self) -> tuple[int, int, int]:
        """Complex (adjacent-pair) RoPE channels per axis (t, h, w): (22, 21, 21) for d = 128."""
        half = self.head_dim // 2
        return half - 2 * (half // 3), half // 3, half // 3

    @property
    def patch_volume(self) -> int:
        return math.prod(self.patch_size)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["patch_size"] = list(self.patch_size)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WanDiTConfig:
        """Inverse of :meth:`to_dict`; unknown or invalid fields raise :class:`CheckpointError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CheckpointError(
                f"Unknown Wan DiT config fields: {', '.join(unknown)}",
                "the file was written by a different program or version",
            )
        values = dict(data)
        if "patch_size" in values:
            values["patch_size"] = tuple(values["patch_size"])
        return _build(values)

    @classmethod
    def from_wan_config_json(cls, data: Mapping[str, Any]) -> WanDiTConfig:
        """Read an original Wan checkpoint's ``config.json`` (``_class_name: "WanModel"``).

        Fields the original stores are taken as they are; ``text_dim`` and ``patch_size`` are
        not stored there and keep their defaults. VACE, image-to-video input widths other than
        16 + 20 and non-global attention windows are refused.
        """
        model_type = str(data.get("model_type", "t2v"))
        if model_type not in _SUPPORTED_MODEL_TYPES:
            raise CheckpointError(
                f"Wan model type '{model_type}' is not supported (text-to-video, TI2V-5B and I2V "
                "A14B are)",
                _HINT_SUPPORTED,
            )
        window = tuple(data.get("window_size", (-1, -1)))
        if window != (-1, -1):
            raise CheckpointError(f"Wan DiT with local attention window {window} is not supported")
        for flag in ("qk_norm", "cross_attn_norm"):
            if data.get(flag, True) is not True:
                raise CheckpointError(f"Wan DiT without {flag} is not supported", _HINT_SUPPORTED)
        names = ("dim", "ffn_dim", "num_heads", "num_layers", "in_dim", "out_dim", "text_dim",
                 "freq_dim", "text_len", "patch_size", "eps")  # fmt: skip
        values = {name: data[name] for name in names if name in data}
        if "patch_size" in values:
            values["patch_size"] = tuple(values["patch_size"])
        missing = [
            name for name in ("dim", "ffn_dim", "num_heads", "num_layers") if name not in values
        ]
        if missing:
            raise CheckpointError(f"Wan config.json lacks {', '.join(missing)}", _HINT_SUPPORTED)
        if values.get("in_dim", 16) not in _inputs_for(values.get("out_dim", 16)):
            raise CheckpointError(
                f"Wan DiT with {values.get('in_dim')} input channels (image-to-video) is not "
                "supported",
                _HINT_SUPPORTED,
            )
        return _build(values)

    @classmethod
    def from_state_dict_shapes(cls, shapes: Mapping[str, Sequence[int]],
                               num_heads: int | None = None,
                               source: str = "the Wan DiT") -> WanDiTConfig:
        """Derive the config from an original-layout state dict's tensor shapes (no data read).

        ``shapes`` maps key → shape (e.g. from a safetensors header), without any
        ``model.diffusion_model.`` prefix. ``num_heads`` comes from a ``config.json`` when there
        is one; without it the head count assumes 128-dim heads (every release). ``source``
        names the file in error messages.
        """
        for prefix, what in _UNSUPPORTED_KEYS:
            if any(key.startswith(prefix) or f".{prefix}" in key for key in shapes):
                raise CheckpointError(f"{what} is not supported", _HINT_SUPPORTED)
        try:
            dim, in_dim, *patch = shapes["patch_embedding.weight"]
            ffn_dim = shapes["blocks.0.ffn.0.weight"][0]
            text_dim = shapes["text_embedding.0.weight"][1]
            freq_dim = shapes["time_embedding.0.weight"][1]
            head_out = shapes["head.head.weight"][0]
        except (KeyError, IndexError, ValueError) as exc:
            raise CheckpointError(
                f"{source}: not an original-layout Wan DiT state dict (missing or odd {exc})",
                _HINT_SUPPORTED,
            ) from exc
        layers = sum(1 for key in shapes if _BLOCK_KEY.match(key))
        patch_volume = math.prod(patch)
        if len(patch) != 3 or head_out % patch_volume or layers == 0:
            raise CheckpointError(f"{source}: unexpected Wan DiT tensor shapes (patch {patch}, "
                                  f"{layers} blocks)", _HINT_SUPPORTED)
        if num_heads is None and dim % WAN_HEAD_DIM:
            raise CheckpointError(
                f"{source}: width {dim} is not a multiple of {WAN_HEAD_DIM}, so the head count "
                "cannot be inferred", "put the config.json published with it (num_heads) beside it")
        if in_dim not in _inputs_for(head_out // patch_volume):
            raise CheckpointError(
                f"{source}: a Wan DiT with {in_dim} input channels (image-to-video) is not "
                "supported", _HINT_SUPPORTED,
            )
        values = {
            "dim": dim,
            "ffn_dim": ffn_dim,
            "num_heads": num_heads or dim // WAN_HEAD_DIM,
            "num_layers": layers,
            "in_dim": in_dim,
            "out_dim": head_out // patch_volume,
            "text_dim": text_dim,
            "freq_dim": freq_dim,
            "patch_size": tuple(patch),
            "image_dim": shapes.get("img_emb.proj.1.weight", (0,))[0],
            "image_tokens": shapes.get("img_emb.emb_pos", (0, 0))[1],
        }
        return _build(values, source)


def _build(values: dict[str, Any], source: str = "the Wan DiT") -> WanDiTConfig:
    try:
        return WanDiTConfig(**values)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: invalid Wan DiT config ({exc})", _HINT_SUPPORTED) from exc


def _inputs_for(out_dim: int) -> tuple[int, ...]:
    """Input channel counts a DiT with ``out_dim`` output channels may take: the latent, and
    for the Wan 2.1 latent also latent + 4 mask + 16 image-latent channels (I2V)."""
    return (out_dim, out_dim + 20) if out_dim == 16 else (out_dim,)


WAN21_T2V_1_3B = WanDiTConfig(dim=1536, ffn_dim=8960, num_heads=12, num_layers=30)
WAN21_T2V_14B = WanDiTConfig(dim=5120, ffn_dim=13824, num_heads=40, num_layers=40)
WAN22_TI2V_5B = WanDiTConfig(
    dim=3072, ffn_dim=14336, num_heads=24, num_layers=30, in_dim=48, out_dim=48
)


def dit_config(shapes: Mapping[str, Sequence[int]], folder: Path,
               source: str = "the Wan DiT") -> WanDiTConfig:
    """Sizes from the tensor shapes, with the head count of a ``config.json`` beside the weights
    (original ``num_heads`` or diffusers ``num_attention_heads``) when there is one, else
    dim / 128 as in every release. ``source`` names the weights in error messages."""
    heads = config_heads(folder / "config.json")
    try:
        return WanDiTConfig.from_state_dict_shapes(shapes, heads, source)
    except CheckpointError as exc:
        if heads is None:
            raise
        raise CheckpointError(f"{exc.message} (num_heads {heads} from {folder / 'config.json'})",
                              exc.hint) from exc


def config_heads(path: Path) -> int | None:
    """The head count a ``config.json`` gives, or None (no file, unreadable, no such field)."""
    data = read_small_json(path)
    heads = data.get("num_heads", data.get("num_attention_heads")) if isinstance(data, dict) \
        else None
    return heads if isinstance(heads, int) and not isinstance(heads, bool) and heads > 0 else None
