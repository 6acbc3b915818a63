"""Read a LoRA file: its tensors grouped by the module they change, in any common key format.

Formats (docs/lora.md §1):

* diffusers / PEFT — ``transformer.blocks.0.attn1.to_q.lora_A.weight`` / ``lora_B.weight``
  (alpha from an ``adapter_config.json`` beside the file, else none);
* original — ``diffusion_model.blocks.0.self_attn.q.lora_A.weight`` / ``lora_B.weight``, or
  ``lora_down`` / ``lora_up``, with ``….alpha``;
* kohya / ComfyUI — ``lora_unet_blocks_0_self_attn_q.lora_down.weight`` / ``lora_up.weight`` /
  ``alpha``: dots became underscores, so names are resolved against the model's own modules;
* full deltas — ``….diff`` (the weight), ``….diff_b`` (the bias), ``….diff_m`` (a block's
  modulation table), as step-distillation files carry them.

Nothing here knows a model: module names stay as the file spells them (prefix removed);
:mod:`studio.models.lora_match` resolves them against a family's denoiser.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from studio.errors import CheckpointError
from studio.media.json_file import read_small_json
from studio.models.checkpoint import damaged, load_torch_state, probe_checkpoint

#: Prefixes trainers put before the denoiser's module names (the longest match is removed).
PREFIXES = ("base_model.model.", "model.diffusion_model.", "diffusion_model.", "transformer.",
            "model.", "unet.")
KOHYA_PREFIXES = ("lora_unet_", "lora_transformer_")
#: Key ending → (the piece of a module's change it holds, the naming style it shows).
SUFFIXES = (
    (".lora_A.weight", "down", "lora_A/lora_B"), (".lora_B.weight", "up", "lora_A/lora_B"),
    (".lora_down.weight", "down", "lora_down/lora_up"),
    (".lora_up.weight", "up", "lora_down/lora_up"),
    (".lora_A", "down", "lora_A/lora_B"), (".lora_B", "up", "lora_A/lora_B"),
    (".lora_down", "down", "lora_down/lora_up"), (".lora_up", "up", "lora_down/lora_up"),
    (".alpha", "alpha", ""), (".diff_b", "diff_b", "full deltas"),
    (".diff_m", "diff_m", "full deltas"), (".diff", "diff", "full deltas"),
)  # fmt: skip
MAX_TENSORS = 20_000
_HINT = "use a LoRA .safetensors file as its trainer wrote it"


@dataclass(slots=True)
class ModulePieces:
    """One module's tensors: low-rank factors, alpha, full deltas (each may be absent)."""

    down: torch.Tensor | None = None
    up: torch.Tensor | None = None
    alpha: float | None = None
    diff: torch.Tensor | None = None
    diff_b: torch.Tensor | None = None
    diff_m: torch.Tensor | None = None

    @property
    def rank(self) -> int | None:
        return self.down.shape[0] if self.down is not None else None


@dataclass(slots=True)
class LoraFile:
    """A LoRA file read and grouped.

    Attributes:
        path: the file.
        kohya: module names are kohya-style (dots written as underscores).
        modules: module name (prefix removed) → its pieces.
        unsupported: keys of other adapter kinds (LoKr, LoHa, DoRA scales …), not applied.
        metadata: the safetensors ``__metadata__``.
        peft_scale: lora_alpha / r from an ``adapter_config.json`` beside the file (PEFT keeps
            alpha there, not in the weights).
    """

    path: Path
    kohya: bool = False
    modules: dict[str, ModulePieces] = field(default_factory=dict)
    unsupported: list[str] = field(default_factory=list)
    styles: set[str] = field(default_factory=set)
    metadata: dict[str, str] = field(default_factory=dict)
    peft_scale: float | None = None

    @property
    def ranks(self) -> list[int]:
        return sorted({p.rank for p in self.modules.values() if p.rank is not None})

    @property
    def format(self) -> str:
        """The key styles found, e.g. "kohya lora_down/lora_up + full deltas" (for reports)."""
        styles = " + ".join(sorted(self.styles, key=lambda s: s == "full deltas"))
        return f"kohya {styles}" if self.kohya else styles


def read_lora(path: Path) -> LoraFile:
    """Read and group a LoRA file (.safetensors, or a torch pickle read weights-only).

    Raises:
        CheckpointError: the file is not a readable weights file, or holds no LoRA keys.
    """
    header = probe_checkpoint(path)  # validated header: sizes bounded, regular file only
    if len(header.tensors) > MAX_TENSORS:
        raise damaged(path, f"holds {len(header.tensors)} tensors; a LoRA holds at most "
                      f"{MAX_TENSORS}", _HINT)
    tensors = _load_tensors(path, header.format)
    lora = LoraFile(path=path, metadata=dict(header.metadata), peft_scale=_peft_scale(path))
    for key, tensor in tensors.items():
        _file(lora, key, tensor)
    if not lora.modules:
        raise CheckpointError(
            f"{path} is not a LoRA: none of its {len(tensors)} tensors is a lora_A/lora_B, "
            "lora_down/lora_up or diff key", "choose a LoRA file (.safetensors)")
    for module, pieces in lora.modules.items():
        problem = _pieces_problem(pieces)
        if problem:
            raise damaged(path, f"the LoRA's {module} {problem}", _HINT)
    return lora


def _pieces_problem(pieces: ModulePieces) -> str:
    """Why one module's tensors cannot be applied ("" when they can): factors that do not
    multiply, an odd alpha, values that are not finite."""
    up, down = pieces.up, pieces.down
    if up is not None and down is not None and (
            up.ndim < 2 or down.ndim < 2 or up.shape[1] != down.shape[0] or down.shape[0] < 1):
        return (f"has factors that do not multiply (lora_up {tuple(up.shape)}, lora_down "
                f"{tuple(down.shape)})")
    if pieces.alpha is not None and not (math.isfinite(pieces.alpha) and pieces.alpha > 0):
        return f"has alpha {pieces.alpha!r}; it must be a positive number"
    tensors = [t for t in (up, down, pieces.diff, pieces.diff_b, pieces.diff_m) if t is not None]
    if any(not torch.isfinite(t.float()).all() for t in tensors):
        return "holds values that are not finite (NaN or infinity)"
    return ""


def _load_tensors(path: Path, fmt: str) -> dict[str, torch.Tensor]:
    if fmt == "torch":
        return load_torch_state(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as exc:
        raise damaged(path, f"cannot be read ({exc})", _HINT) from exc


def _file(lora: LoraFile, key: str, tensor: torch.Tensor) -> None:
    """Put one tensor where it belongs in ``lora`` (or among the unsupported keys)."""
    split = _split(key)
    if split is None:
        lora.unsupported.append(key)
        return
    module, piece, style = split
    if style:
        lora.styles.add(style)
    if module.startswith(KOHYA_PREFIXES):
        lora.kohya = True
        module = module.split("_", 2)[2]
    else:
        module = _without_prefix(module)
    pieces = lora.modules.setdefault(module, ModulePieces())
    if piece == "alpha":
        pieces.alpha = float(tensor.float().reshape(-1)[0]) if tensor.numel() else None
    else:
        setattr(pieces, piece, tensor)


def _split(key: str) -> tuple[str, str, str] | None:
    for suffix, piece, style in SUFFIXES:
        if key.endswith(suffix):
            return key[: -len(suffix)], piece, style
    return None


def _without_prefix(module: str) -> str:
    for prefix in sorted(PREFIXES, key=len, reverse=True):
        if module.startswith(prefix):
            return module[len(prefix):]
    return module


def _peft_scale(path: Path) -> float | None:
    """lora_alpha / r from PEFT's ``adapter_config.json`` in the file's folder, if there."""
    config = path.parent / "adapter_config.json"
    if not config.is_file():
        return None
    data = read_small_json(config)
    if not isinstance(data, dict):
        return None
    alpha, rank = data.get("lora_alpha"), data.get("r")
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (alpha, rank))
    return float(alpha) / float(rank) if numbers and rank else None
