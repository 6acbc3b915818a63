"""Find model sets on disk: probe every weights file, say what it is, pair the parts.

:func:`scan` walks folders, probes each ``.safetensors`` / ``.pth`` / ``*.index.json`` header
(:mod:`studio.models.checkpoint`; no tensor data is read), tells from key names and shapes alone
which part of which Wan release a file is (models.md §0.3), and assembles the parts of one
folder into a :class:`ModelSet`. A published Wan folder holds the DiT (often sharded with an
index), ``Wan2.x_VAE.pth``, ``models_t5_umt5-xxl-enc-bf16.pth`` and ``google/umt5-xxl/``; a
diffusers folder holds ``transformer/``, ``vae/``, ``text_encoder/`` and ``tokenizer/``. Pairing
is checked before anything loads (latent channels DiT ↔ VAE, text width DiT ↔ encoder). Damaged,
truncated and unrecognised files never stop a scan: they become ``problems`` (when the set
cannot be used) or ``notes`` (when they are simply ignored).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from studio.errors import CheckpointError
from studio.models.checkpoint import (
    INDEX_SUFFIXES,
    SAFETENSORS_SUFFIXES,
    TORCH_SUFFIXES,
    WeightFiles,
    probe_weights,
    read_index,
)
from studio.models.wan.identify import (
    TOKENIZER_FILES,
    Component,
    describe_tokenizer,
    describe_weights,
)
from studio.models.wan.keys import DIT, TEXT_ENCODER, TOKENIZER, VAE
from studio.models.wan.presets import VARIANTS, WanVariant
from studio.paths import demo_model_dir

log = logging.getLogger(__name__)

ROLES = (DIT, VAE, TEXT_ENCODER, TOKENIZER)
_ROLE_NAMES = {DIT: "Wan DiT", VAE: "VAE", TEXT_ENCODER: "UMT5 text encoder",
               TOKENIZER: "tokenizer folder"}  # fmt: skip
_DIFFUSERS_DIRS = {"transformer", "vae", "text_encoder", "tokenizer"}
_WEIGHT_SUFFIXES = SAFETENSORS_SUFFIXES + TORCH_SUFFIXES
_MAX_DEPTH = 8


@dataclass(frozen=True, slots=True)
class ModelSet:
    """The parts of one model found together, ready to load when ``complete`` and problem-free.

    Attributes:
        id: the set's folder (as scanned), "demo" for the shipped model, or the DiT file when
            one folder holds several DiTs.
        family / variant: ("wan", "t2v-1.3b"), ("demo", …); variant "-" when there is no DiT.
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
        files, and the ``config.json`` beside a DiT or text encoder (read when loading)."""
        files = {path for c in self.components for path in c.files}
        for c in self.components:
            if c.path.is_file():  # a shard index
                files.add(c.path)
            config = c.path.parent / "config.json"
            if c.role in (DIT, TEXT_ENCODER) and config.is_file():
                files.add(config)
        return sorted(files)

    def component(self, role: str) -> Component | None:
        return next((c for c in self.components if c.role == role), None)

    @property
    def usable(self) -> bool:
        return self.complete and not self.problems

    def to_row(self) -> dict[str, str]:
        """Display strings: id, name, family, variant, files, layout, dtype, size, complete,
        problems."""
        return {
            "id": self.id,
            "name": self.name or self.id,
            "family": self.family,
            "variant": self.variant,
            "files": "; ".join(f"{c.role}: {c.display(self.id)}" for c in self.components),
            "layout": ", ".join(dict.fromkeys(c.layout for c in self.components if c.layout)),
            "dtype": self.dtype,
            "size": format_size(self.size),
            "complete": "yes" if self.complete else "no",
            "problems": "; ".join(self.problems),
        }


def format_size(size: int) -> str:
    """Bytes in decimal units: "508 MB", "5.7 GB"."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if value >= 100 or unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


@dataclass
class _Found:
    """Everything seen under one set root."""

    components: list[Component] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def scan(folders: Iterable[str | os.PathLike[str]]) -> list[ModelSet]:
    """Every model set found in ``folders`` (recursively), sorted by id.

    A file given instead of a folder scans the folder it is in. Never raises for what is on
    disk: unreadable folders are skipped, damaged files are reported on their set.
    """
    found: dict[Path, _Found] = {}
    visited: set[str] = set()
    for folder in folders:
        folder = Path(folder).expanduser()
        for directory, names in _walk(folder.parent if folder.is_file() else folder, visited):
            _scan_directory(directory, names, found)
    sets = [s for root, items in found.items() for s in _assemble(root, items)]
    return sorted(sets, key=lambda s: s.id)


def _walk(top: Path, visited: set[str]) -> Iterator[tuple[Path, list[str]]]:
    """(folder, file names) below ``top``: symlinks followed once, hidden folders skipped."""
    for current, dirs, names in os.walk(top, followlinks=True, onerror=_log_walk_error):
        path = Path(current)
        real = os.path.realpath(current)
        depth = len(path.relative_to(top).parts)
        if real in visited or depth > _MAX_DEPTH:
            dirs[:] = []
            continue
        visited.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        yield path, sorted(names)


def _log_walk_error(error: OSError) -> None:
    log.warning("skipping %s: %s", error.filename, error.strerror)


def _set_root(directory: Path) -> Path:
    """The folder a part belongs to: diffusers sub-folders and ``google/umt5-xxl`` join their
    parent set."""
    if directory.name in _DIFFUSERS_DIRS and (
        (directory.parent / "model_index.json").is_file()
        or sum((directory.parent / d).is_dir() for d in _DIFFUSERS_DIRS) >= 2
    ):
        return directory.parent
    if directory.parent.name == "google":
        return directory.parent.parent
    return directory


def _scan_directory(directory: Path, names: list[str], found: dict[Path, _Found]) -> None:
    items = found.setdefault(_set_root(directory), _Found())
    if any(name in TOKENIZER_FILES for name in names):
        items.components.append(describe_tokenizer(directory, names))
    consumed: set[str] = set()
    for name in names:
        if name.endswith(INDEX_SUFFIXES):
            consumed |= _shard_names(directory / name)
            _probe(directory / name, items)
    shards = [n for n in names if n not in consumed and _looks_like_shard(n)]
    if shards:
        items.errors.append(f"{directory}: {len(shards)} shard file(s) such as {shards[0]} but no "
                            "index (*.index.json) lists them; download the index as well")
    for name in names:
        if name.endswith(_WEIGHT_SUFFIXES) and name not in consumed and name not in shards:
            _probe(directory / name, items)


def _shard_names(index: Path) -> set[str]:
    try:
        return set(read_index(index).values())
    except CheckpointError:
        return set()


def _looks_like_shard(name: str) -> bool:
    stem = name.split(".")[0]
    return name.endswith(_WEIGHT_SUFFIXES) and "-of-" in stem and stem[-5:].isdigit()


def _probe(path: Path, items: _Found) -> None:
    try:
        weights = probe_weights(path)
    except CheckpointError as exc:
        items.errors.append(exc.message)
        return
    except Exception as exc:  # noqa: BLE001 - a scan reports, it never crashes
        log.exception("unexpected error probing %s", path)
        items.errors.append(f"{path}: could not be probed ({exc})")
        return
    component = describe_weights(weights)
    if component is None:
        items.ignored.append(_unrecognised(weights))
    else:
        items.components.append(component)


def _unrecognised(weights: WeightFiles) -> str:
    return (f"{weights.label}: not a Wan DiT, VAE or UMT5 text encoder "
            f"({len(weights.tensors())} tensors); ignored")


def _assemble(root: Path, items: _Found) -> list[ModelSet]:
    dits = [c for c in items.components if c.role == DIT]
    if not items.components and not items.errors:
        return []
    if len(dits) <= 1:
        return [_make_set(str(root), root, dits[0] if dits else None, items)]
    return [_make_set(str(dit.path), root, dit, items) for dit in dits]


def _make_set(set_id: str, root: Path, dit: Component | None, items: _Found) -> ModelSet:
    variant = VARIANTS.get(dit.variant) if dit else None
    chosen = [dit] if dit else []
    for role in (VAE, TEXT_ENCODER, TOKENIZER):
        candidates = [c for c in items.components if c.role == role]
        if candidates:
            chosen.append(min(candidates, key=lambda c: c.preference(dit)))
    spare = [c for c in items.components if c not in chosen and c.role != DIT]
    problems = _pairing_problems(root, dit, variant, chosen)
    complete = all(any(c.role == role for c in chosen) for role in ROLES)
    notes = list(items.ignored) + [f"{c.path}: spare {_ROLE_NAMES[c.role]}, not used"
                                   for c in spare]
    (problems if not complete or problems else notes).extend(items.errors)
    family = "wan" if chosen else "unknown"
    return ModelSet(
        id=set_id, family=family, variant=dit.variant if dit else "-",
        components=tuple(chosen), dtype=dit.dtype if dit else "-",
        size=sum(c.size for c in chosen), complete=complete, problems=tuple(problems),
        notes=tuple(notes), name=f"{variant.title} — {root.name}" if variant else root.name,
    )  # fmt: skip


def _pairing_problems(
    root: Path, dit: Component | None, variant: WanVariant | None, chosen: list[Component]
) -> list[str]:
    parts = {c.role: c for c in chosen}
    problems: list[str] = []
    if dit is None:
        if chosen:
            problems.append(f"no Wan DiT (diffusion_pytorch_model*.safetensors) in {root}")
        return problems
    if variant is None:
        problems.append(f"the DiT in {dit.path} takes {dit.channels} latent channels, which no "
                        "Wan VAE produces")
    elif not variant.supported:
        problems.append(f"{dit.path} is {variant.title}, which Flow Studio does not run (it "
                        "needs a CLIP image encoder); use Wan 2.1 T2V or Wan 2.2 TI2V-5B")
    vae, text, tokenizer = parts.get(VAE), parts.get(TEXT_ENCODER), parts.get(TOKENIZER)
    needs = f"{variant.title} needs the Wan {variant.vae_version} VAE ({variant.vae_file})" \
        if variant else "use the VAE published with this DiT"
    if vae is None:
        problems.append(f"no VAE in {root}: {needs}")
    elif vae.channels != dit.channels:
        problems.append(f"the VAE in {vae.path} has {vae.channels} latent channels but the DiT "
                        f"in {dit.path} takes {dit.channels}: {needs}")
    if text is None:
        problems.append(f"no UMT5 text encoder in {root}: Wan needs "
                        "models_t5_umt5-xxl-enc-bf16.pth (or a text_encoder/ folder)")
    elif text.channels != dit.context_dim:
        problems.append(f"the text encoder in {text.path} gives {text.channels}-wide features "
                        f"but the DiT in {dit.path} takes {dit.context_dim}: Wan needs the "
                        "UMT5-XXL encoder (models_t5_umt5-xxl-enc-bf16.pth)")
    if tokenizer is None:
        problems.append(f"no tokenizer folder in {root}: Wan needs google/umt5-xxl "
                        "(tokenizer.json / spiece.model)")
    return problems


def demo_model_set() -> ModelSet | None:
    """The shipped demo model, or None when this installation has no demo weights.

    Every ``*.safetensors`` in :func:`~studio.paths.demo_model_dir` is a part named by its stem
    (``dit``, ``vae``); the variant comes from ``config.json`` ("variant" or "name") if given.
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
        components.append(Component(role=path.stem, path=path, files=(path,), layout="demo",
                                    variant="", dtype=probed.dominant_dtype(), size=probed.size))
    variant = _demo_variant(folder)
    return ModelSet(
        id="demo", family="demo", variant=variant, components=tuple(components),
        dtype=components[0].dtype if components else "-",
        size=sum(c.size for c in components), complete=bool(components),
        problems=tuple(problems), name="Demo model",
    )  # fmt: skip


def _demo_variant(folder: Path) -> str:
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "demo"
    if isinstance(config, dict):
        return str(config.get("variant") or config.get("name") or "demo")
    return "demo"


_COLUMNS = ("FAMILY", "VARIANT", "ROLE / FILES", "LAYOUT", "DTYPE", "SIZE", "COMPLETE",
            "PROBLEMS")  # fmt: skip


def format_scan_table(sets: Iterable[ModelSet]) -> str:
    """A plain-text table for ``studio models scan``: one line per set, one per part, then its
    problems and notes in full."""
    rows: list[tuple[str, ...]] = []
    details: dict[int, list[str]] = {}
    for model_set in sets:
        count = len(model_set.problems)
        rows.append((model_set.family, model_set.variant, model_set.id, "", model_set.dtype,
                     format_size(model_set.size), "yes" if model_set.complete else "no",
                     f"{count}" if count else "-"))  # fmt: skip
        for c in model_set.components:
            rows.append(("", "", f"  {c.role}: {c.display(model_set.id)}", c.layout, c.dtype,
                         format_size(c.size), "", ""))  # fmt: skip
        details[len(rows) - 1] = [f"    problem: {p}" for p in model_set.problems] + [
            f"    note: {n}" for n in model_set.notes
        ]
    if not rows:
        return "no model sets found"
    widths = [max(len(row[i]) for row in (*rows, _COLUMNS)) for i in range(len(_COLUMNS))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(_COLUMNS, widths, strict=True)).rstrip()]
    for i, row in enumerate(rows):
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        lines.extend(details.get(i, []))
    return "\n".join(lines)
