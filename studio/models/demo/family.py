"""The demo family: the small model that ships in ``resources/models/demo``.

It has one built-in set (the shipped folder: ``config.json``, ``dit.safetensors``,
``vae.safetensors``) and is never found by scanning; it runs in float32 everywhere, and adds
``studio train demo`` / ``studio eval demo`` (docs/families/demo.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from studio.engine.cancel import NEVER, CancelToken
from studio.engine.model import LoadedModel
from studio.errors import CheckpointError
from studio.media.json_file import read_small_json
from studio.models.bench_config import BenchConfig
from studio.models.demo.commands import COMMANDS
from studio.models.demo.config import DIT_FILE
from studio.models.demo.loader import FAMILY_NAME, demo_model_dir, load_demo_model
from studio.models.family import Component, FamilyBase, FamilyCommand, FolderFindings, ModelSet
from studio.models.wan.keys import diffusers_module_name
from studio.models.weight_files import WeightFiles, probe_weights


class DemoFamily(FamilyBase):
    """The shipped demo model (a small Wan DiT + Wan 2.1-style VAE + MiniLM)."""

    name = FAMILY_NAME
    title = "Demo (shapes)"

    def identify(self, weights: WeightFiles) -> Component | None:
        return None  # the demo set is the shipped folder, never a scanned file

    def assemble(self, root: Path, found: FolderFindings) -> list[ModelSet]:
        return []

    def builtin_sets(self) -> list[ModelSet]:
        model_set = demo_model_set()
        return [model_set] if model_set is not None else []

    def dtype_for(self, device: torch.device) -> torch.dtype:
        return torch.float32

    def load(self, model_set: ModelSet, device: torch.device, dtype: torch.dtype,
             cancel: CancelToken = NEVER) -> LoadedModel:
        cancel.check()
        return load_demo_model(device=device, dtype=dtype)  # always the shipped folder

    def lora_targets(self, model_set: ModelSet) -> dict[str, tuple[int, ...]]:
        """The demo DiT is a Wan DiT in the original layout: its header is the target list."""
        return probe_weights(demo_model_dir() / DIT_FILE).shapes()

    def lora_module_name(self, name: str) -> str | None:
        return diffusers_module_name(name)

    def commands(self) -> Sequence[FamilyCommand]:
        return COMMANDS

    def bench_configs(self) -> Sequence[BenchConfig]:
        from studio.models.demo.bench import BENCH_CONFIGS

        return BENCH_CONFIGS


def demo_model_set() -> ModelSet | None:
    """The shipped demo model, or None when this installation has no demo weights.

    Every ``*.safetensors`` in the folder is a part named by its stem (``dit``, ``vae``); the
    variant comes from ``config.json`` ("variant" or "name") if given.
    """
    try:
        folder = demo_model_dir()
    except FileNotFoundError:
        return None
    weights = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    if not weights:
        return None
    components, problems = [], []
    for path in weights:
        try:
            probed = probe_weights(path)
        except CheckpointError as exc:
            problems.append(exc.message)
            continue
        components.append(Component(family=FAMILY_NAME, role=path.stem, path=path, files=(path,),
                                    layout="demo", variant="", dtype=probed.dominant_dtype(),
                                    size=probed.size))  # fmt: skip
    return ModelSet(
        id=FAMILY_NAME, family=FAMILY_NAME, variant=_variant(folder),
        components=tuple(components), dtype=components[0].dtype if components else "-",
        size=sum(c.size for c in components), complete=bool(components),
        problems=tuple(problems), name="Demo model",
    )  # fmt: skip


def _variant(folder: Path) -> str:
    config = read_small_json(folder / "config.json")
    if isinstance(config, dict):
        return str(config.get("variant") or config.get("name") or FAMILY_NAME)
    return FAMILY_NAME


DEMO_FAMILY = DemoFamily()
