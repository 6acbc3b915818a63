"""What a model family provides, and the plain records the registry keeps about files on disk.

A family is one folder under ``studio/models/`` with one object implementing
:class:`ModelFamily`: it says which files are its parts (from key names and shapes), assembles
them into :class:`ModelSet` entries with their pairing problems, loads a set into the engine's
:class:`~studio.engine.model.LoadedModel`, and describes what it needs before loading (dtype,
defaults, planned memory). :class:`FamilyBase` gives the optional parts their neutral defaults.
The registry (:mod:`studio.models.registry`) lists the families; nothing else knows them.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch

from studio.engine.cancel import NEVER, CancelToken
from studio.engine.memory_model import ModelMemory
from studio.engine.model import FamilyDefaults, FewStepPreset, LoadedModel
from studio.errors import CheckpointError
from studio.models.bench_config import BenchConfig
from studio.models.weight_files import WeightFiles

#: Roles of a set's parts. Families may use other names for parts of their own.
DIT, VAE, TEXT_ENCODER, TOKENIZER = "dit", "vae", "text_encoder", "tokenizer"


@dataclass(frozen=True, slots=True)
class Component:
    """One part of a model set as found on disk.

    Attributes:
        family: the family that recognised it.
        role: "dit", "vae", "text_encoder", "tokenizer" or a family's own part name.
        path: what names the part: its single file, its shard index, or its folder (tokenizer).
        files: every file on disk that belongs to it (all shards; the tokenizer's files).
        layout: key layout label ("original", "diffusers", "hf", …).
        variant: e.g. "t2v-1.3b", "wan2.1-vae" ("" when not applicable).
        dtype: dominant safetensors dtype name ("BF16"), "-" for a tokenizer.
        size: bytes on disk.
        channels: DiT latent channels in; VAE latent channels; text encoder output width.
        context_dim: the text width a DiT takes (0 for other parts).
        config: a ``config.json`` the part is read with, when there is one.
        problem: why this part cannot be loaded although it was recognised ("" = it can).
    """

    family: str
    role: str
    path: Path
    files: tuple[Path, ...]
    layout: str
    variant: str
    dtype: str
    size: int
    channels: int = 0
    context_dim: int = 0
    config: Path | None = None
    problem: str = ""

    def display(self, root: str) -> str:
        """The path relative to the set's folder, with the shard count when sharded."""
        try:
            shown = os.path.relpath(self.path, root) if Path(root).is_dir() else self.path.name
        except ValueError:  # another drive on Windows
            shown = str(self.path)
        extra = len(self.files) - 1 if self.role != TOKENIZER else 0
        return f"{shown} (+{extra} shards)" if extra > 0 else shown


@dataclass(frozen=True, slots=True)
class ModelSet:
    """The parts of one model found together, ready to load when ``usable``.

    Attributes:
        id: the set's folder (as scanned), a built-in set's name, or the DiT file when one
            folder holds several DiTs.
        family / variant: the family's name and the variant ("-" when unknown).
        components: the chosen part for each role found.
        dtype: dominant dtype of the denoiser's weights.
        size: bytes on disk of all chosen parts.
        complete: every role is present.
        problems: why the set cannot be used (missing parts, mismatches, damaged files).
        notes: things ignored on the way (unrecognised files, spare parts).
        name: human-readable name.
    """

    id: str
    family: str
    variant: str
    components: tuple[Component, ...] = ()
    dtype: str = "-"
    size: int = 0
    complete: bool = False
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    name: str = ""

    @property
    def files(self) -> dict[str, tuple[Path, ...]]:
        """Role → the files on disk (all shards; the folder for a tokenizer)."""
        return {c.role: c.files for c in self.components}

    def all_files(self) -> list[Path]:
        """Every file the set loads from, sorted: all shards and their index, the tokenizer's
        files, and the ``config.json`` files its parts are read with."""
        files = {path for c in self.components for path in c.files}
        for c in self.components:
            if c.path.is_file():  # a shard index
                files.add(c.path)
            if c.config is not None and c.config.is_file():
                files.add(c.config)
        return sorted(files)

    def component(self, role: str) -> Component | None:
        return next((c for c in self.components if c.role == role), None)

    @property
    def usable(self) -> bool:
        return self.complete and not self.problems


def check_loadable(model_set: ModelSet, family: str, title: str, hint: str) -> None:
    """Refuse, with :class:`~studio.errors.CheckpointError`, a set of another family or one
    with problems or missing parts (``title``: the family in words; ``hint``: what to do)."""
    if model_set.family != family:
        raise CheckpointError(f"{model_set.id} is a {model_set.family!r} set, not {title}",
                              "load it with its own family")
    if model_set.problems or not model_set.complete:
        raise CheckpointError(f"the {title} set in {model_set.id} cannot be loaded: "
                              + "; ".join(model_set.problems or ("incomplete",)), hint)


@dataclass
class FolderFindings:
    """What a scan found under one set folder: recognised parts, damaged files, ignored files,
    and ``shared`` parts (from the scan's shared folders, such as a tokenizer chosen in the
    settings) that a set may use for a role it has no part of its own for."""

    components: list[Component] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    shared: list[Component] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class FamilyCommand:
    """A command a family adds under ``studio <verb>`` (``studio train demo``).

    Attributes:
        verb: the top-level command it belongs to ("train", "eval").
        help: one line for ``--help``.
        add_arguments: adds the command's options to its parser.
        run: runs it with the parsed arguments; returns the exit status.
    """

    verb: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


class ModelFamily(Protocol):
    """One model family: everything the studio knows about it, behind one object."""

    name: str
    title: str

    def identify(self, weights: WeightFiles) -> Component | None:
        """The part these probed files hold, or None when they are none of this family's."""
        ...

    def identify_folder(self, folder: Path, names: Sequence[str]) -> Component | None:
        """A part that is a whole folder (a tokenizer), or None."""
        ...

    def set_root(self, folder: Path) -> Path | None:
        """The set folder a part found in ``folder`` belongs to, when this family's published
        layout nests parts (None: no opinion)."""
        ...

    def assemble(self, root: Path, found: FolderFindings) -> list[ModelSet]:
        """The sets in one folder from this family's parts found there, with their pairing
        problems; ``found.errors`` (damaged files) become problems or notes."""
        ...

    def builtin_sets(self) -> list[ModelSet]:
        """Sets that ship with the studio (listed without scanning)."""
        ...

    def dtype_for(self, device: torch.device) -> torch.dtype:
        """The compute precision the family's denoiser runs in on ``device``."""
        ...

    def defaults_for(self, model_set: ModelSet) -> FamilyDefaults | None:
        """The defaults of a set before it is loaded (None when unknown until loaded)."""
        ...

    def planned_memory(self, model_set: ModelSet, dtype: torch.dtype) -> ModelMemory | None:
        """The forecast inputs of a set before it is loaded (to choose an offload policy)."""
        ...

    def load(self, model_set: ModelSet, device: torch.device, dtype: torch.dtype,
             cancel: CancelToken = NEVER) -> LoadedModel:
        """Load a usable set; raises :class:`~studio.errors.CheckpointError` naming the file."""
        ...

    def lora_targets(self, model_set: ModelSet) -> dict[str, tuple[int, ...]]:
        """The denoiser's parameters a LoRA may change: name (the family's own layout, as in
        ``modules.parts["dit"]``) → shape, read from headers; empty when it takes no LoRA."""
        ...

    def lora_module_name(self, name: str) -> str | None:
        """A module name in another published layout (diffusers) → the family's own name."""
        ...

    def few_step_preset(self, model_set: ModelSet) -> FewStepPreset | None:
        """The settings step-distillation LoRAs of this family are made for (None: none)."""
        ...

    def lora_parts(self, model_set: ModelSet, file_name: str) -> tuple[tuple[str, ...], str]:
        """(the denoiser parts a LoRA file goes to, in words for its report; "" with one DiT):
        a two-expert model's LoRAs are often made for one expert."""
        ...

    def commands(self) -> Sequence[FamilyCommand]:
        """Commands the family adds to the command line."""
        ...

    def bench_configs(self) -> Sequence[BenchConfig]:
        """Named ``studio bench`` configurations."""
        ...


class FamilyBase:
    """Neutral answers for the optional parts of :class:`ModelFamily`."""

    name = ""
    title = ""

    def identify_folder(self, folder: Path, names: Sequence[str]) -> Component | None:
        return None

    def set_root(self, folder: Path) -> Path | None:
        return None

    def builtin_sets(self) -> list[ModelSet]:
        return []

    def dtype_for(self, device: torch.device) -> torch.dtype:
        return torch.bfloat16 if device.type == "cuda" else torch.float32

    def defaults_for(self, model_set: ModelSet) -> FamilyDefaults | None:
        return None

    def planned_memory(self, model_set: ModelSet, dtype: torch.dtype) -> ModelMemory | None:
        return None

    def lora_targets(self, model_set: ModelSet) -> dict[str, tuple[int, ...]]:
        return {}

    def lora_module_name(self, name: str) -> str | None:
        return None

    def few_step_preset(self, model_set: ModelSet) -> FewStepPreset | None:
        return None

    def lora_parts(self, model_set: ModelSet, file_name: str) -> tuple[tuple[str, ...], str]:
        return (DIT,), ""

    def commands(self) -> Sequence[FamilyCommand]:
        return ()

    def bench_configs(self) -> Sequence[BenchConfig]:
        return ()
