"""The list of model families, and the scan that finds their sets on disk.

:func:`scan` walks folders, probes each ``.safetensors`` / ``.pth`` / ``*.index.json`` header
(:mod:`studio.models.checkpoint`; no tensor data is read) and asks every registered family what
each file is; each family then assembles its parts in a folder into :class:`ModelSet` entries
and checks their pairing before anything loads. Damaged, truncated and unrecognised files never
stop a scan: they become ``problems`` (when the set cannot be used) or ``notes``.

The families shipped with the studio are listed in :func:`_shipped_families`; another one (a
plug-in, a test's toy family) joins with :func:`register_family`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from studio.errors import CheckpointError
from studio.models.checkpoint import INDEX_SUFFIXES, SAFETENSORS_SUFFIXES, TORCH_SUFFIXES
from studio.models.family import Component, FolderFindings, ModelFamily, ModelSet
from studio.models.weight_files import WeightFiles, probe_weights, read_index
from studio.safe_files import kind_of

log = logging.getLogger(__name__)

_DIFFUSERS_DIRS = {"transformer", "transformer_2", "vae", "text_encoder", "tokenizer",
                   "image_encoder"}
_WEIGHT_SUFFIXES = SAFETENSORS_SUFFIXES + TORCH_SUFFIXES
_MAX_DEPTH = 8
_registered: dict[str, ModelFamily] = {}


def _shipped_families() -> list[ModelFamily]:
    """The families that ship with the studio, the one with a built-in set first."""
    from studio.models.demo.family import DEMO_FAMILY
    from studio.models.ltx.family import LTX_FAMILY
    from studio.models.opensora.family import OPENSORA_FAMILY
    from studio.models.wan.family import WAN_FAMILY

    # LTX-Video first: it claims T5 folders, T5 files and tokenizer folders only beside an LTX
    # checkpoint or inside an LTX diffusers pipeline, which Open-Sora (any T5 folder) and Wan
    # (any T5 weights or tokenizer) would otherwise claim. Open-Sora before Wan: its T5 / CLIP
    # folders hold tokenizer files and a T5 that Wan would claim as a UMT5 tokenizer and encoder.
    return [DEMO_FAMILY, LTX_FAMILY, OPENSORA_FAMILY, WAN_FAMILY]


def register_family(family: ModelFamily) -> None:
    """Add (or replace, by name) a family; scans, loads and the GUI include it from now on."""
    if not family.name or not family.name.isidentifier():
        raise ValueError(f"a family needs a name that is an identifier, not {family.name!r}")
    families()  # the shipped ones keep their place in front
    _registered[family.name] = family


def unregister_family(name: str) -> None:
    """Remove a family added with :func:`register_family` (tests clean up with this)."""
    _registered.pop(name, None)


def families() -> list[ModelFamily]:
    """Every family, shipped ones first."""
    if not _registered:
        for family in _shipped_families():
            _registered[family.name] = family
    return list(_registered.values())


def family(name: str) -> ModelFamily:
    """The family called ``name``; a :class:`CheckpointError` lists the known ones."""
    for candidate in families():
        if candidate.name == name:
            return candidate
    known = ", ".join(f.name for f in families())
    raise CheckpointError(f"model family {name!r} is not supported", f"known families: {known}")


def builtin_sets() -> list[ModelSet]:
    """The sets that ship with the studio, in family order."""
    return [s for f in families() for s in f.builtin_sets()]


def default_model_id() -> str:
    """The set the studio opens on when nothing is configured: the first built-in one."""
    sets = builtin_sets()
    if not sets:
        raise CheckpointError("this installation ships no model",
                              "add a model folder in the settings, or reinstall Flow Studio")
    return sets[0].id


def scan(folders: Iterable[str | os.PathLike[str]],
         shared: Iterable[str | os.PathLike[str]] = ()) -> list[ModelSet]:
    """Every model set found in ``folders`` (recursively), sorted by id.

    A file given instead of a folder scans the set folder it belongs to. ``shared`` folders
    (not searched below; "" is none) hold parts any set may use for a role it has no part of
    its own for — the UMT5 tokenizer chosen in the settings, which ComfyUI's Wan files lack.
    Never raises for what is on disk: unreadable folders are skipped, damaged files are
    reported on their set.
    """
    found: dict[Path, FolderFindings] = {}
    visited: set[str] = set()
    for folder in folders:
        folder = Path(folder).expanduser()
        top = folder if folder.is_dir() or not folder.exists() else _set_root(folder.parent)
        for directory, names in _walk(top, visited):
            _scan_directory(directory, names, found)
    common = _shared_parts(shared)
    sets = [s for root, items in found.items() for s in _assemble(root, items, common)]
    return sorted(sets, key=lambda s: s.id)


def _shared_parts(folders: Iterable[str | os.PathLike[str]]) -> list[Component]:
    """The parts identified in each shared folder itself; a folder that is gone, unreadable or
    holds no part adds nothing (the sets then say which part they lack)."""
    found: dict[Path, FolderFindings] = {}
    for folder in folders:
        if not str(folder).strip():
            continue  # Path("") would be the working folder
        path = Path(folder).expanduser()
        try:
            names = sorted(os.listdir(path))
        except OSError:
            continue
        _scan_directory(path, names, found)
    return [c for items in found.values() for c in items.components]


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
    """The folder a part belongs to: diffusers sub-folders join their parent set; a family
    may nest parts further (Wan's ``google/umt5-xxl``)."""
    if directory.name in _DIFFUSERS_DIRS and (
        (directory.parent / "model_index.json").is_file()
        or sum((directory.parent / d).is_dir() for d in _DIFFUSERS_DIRS) >= 2
    ):
        return directory.parent
    for candidate in families():
        root = candidate.set_root(directory)
        if root is not None:
            return root
    return directory


def _scan_directory(directory: Path, names: list[str], found: dict[Path, FolderFindings]) -> None:
    items = found.setdefault(_set_root(directory), FolderFindings())
    names = _regular_files(directory, names, items)
    for candidate in families():
        folder_part = candidate.identify_folder(directory, names)
        if folder_part is not None:
            items.components.append(folder_part)
            break
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


def _regular_files(directory: Path, names: list[str], items: FolderFindings) -> list[str]:
    """``names`` without what is not a regular file (a FIFO would block the first read); each
    weights-like name left out gets a note."""
    kept = []
    for name in names:
        kind = kind_of(directory / name)
        if kind in ("regular file", "missing"):
            kept.append(name)
        elif name.endswith(_WEIGHT_SUFFIXES + INDEX_SUFFIXES):
            items.errors.append(f"{directory / name} is a {kind}, not a regular file; skipped")
    return kept


def _shard_names(index: Path) -> set[str]:
    try:
        return set(read_index(index).values())
    except CheckpointError:
        return set()


def _looks_like_shard(name: str) -> bool:
    stem = name.split(".")[0]
    return name.endswith(_WEIGHT_SUFFIXES) and "-of-" in stem and stem[-5:].isdigit()


def _probe(path: Path, items: FolderFindings) -> None:
    try:
        weights = probe_weights(path)
    except CheckpointError as exc:
        items.errors.append(exc.message)
        return
    except Exception as exc:  # noqa: BLE001 - a scan reports, it never crashes
        log.exception("unexpected error probing %s", path)
        items.errors.append(f"{path}: could not be probed ({exc})")
        return
    component = _identify(weights)
    if component is None:
        items.ignored.append(f"{weights.label}: not a part of any known model family "
                             f"({len(weights.tensors())} tensors); ignored")
    else:
        items.components.append(component)


def _identify(weights: WeightFiles) -> Component | None:
    for candidate in families():
        component = candidate.identify(weights)
        if component is not None:
            return component
    return None


def _assemble(root: Path, items: FolderFindings, shared: list[Component]) -> list[ModelSet]:
    """Each family assembles its own parts (and the shared ones of its family); damaged files
    go with them (or stand alone)."""
    if not items.components and not items.errors:
        return []
    present = list(dict.fromkeys(c.family for c in items.components))
    if not present:
        return [ModelSet(id=str(root), family="unknown", variant="-", problems=tuple(items.errors),
                         notes=tuple(items.ignored), name=root.name)]  # fmt: skip
    sets = []
    for name in present:
        own = FolderFindings([c for c in items.components if c.family == name],
                             items.errors, items.ignored,
                             [c for c in shared if c.family == name])  # fmt: skip
        sets.extend(family(name).assemble(root, own))
    return sets
