"""The files of one model part: a single checkpoint, or the shards an index lists.

:func:`probe_weights` probes every file's header (:mod:`studio.models.checkpoint`) and checks
that the shards hold exactly the tensors their index places in them; :func:`read_index` reads
an ``*.index.json`` with its size bounded.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from studio.media.json_file import parse_json_text
from studio.models.checkpoint import (
    _UNREADABLE,
    INDEX_SUFFIXES,
    CheckpointHeader,
    TensorInfo,
    damaged,
    few,
    probe_checkpoint,
)
from studio.models.fp8 import fp8_problems, precision_name
from studio.safe_files import NotARegularFile, read_bytes_bounded

#: An index lists one line per tensor; even a 14B model's is well under 1 MB.
MAX_INDEX_BYTES = 64 << 20


@dataclass(frozen=True)
class WeightFiles:
    """The files holding one model part: a single file, or every shard an index lists.

    Attributes:
        headers: one probed header per file (shards in the index's order).
        index: the ``*.index.json`` that listed the shards, if any.
    """

    headers: tuple[CheckpointHeader, ...]
    index: Path | None = None

    @property
    def paths(self) -> tuple[Path, ...]:
        return tuple(header.path for header in self.headers)

    @property
    def label(self) -> str:
        """How messages name the part: its index, or its single file."""
        return str(self.index or self.headers[0].path)

    @property
    def format(self) -> str:
        return self.headers[0].format

    @property
    def size(self) -> int:
        """Bytes on disk, all shards together."""
        return sum(header.file_size for header in self.headers)

    def tensors(self) -> dict[str, TensorInfo]:
        merged: dict[str, TensorInfo] = {}
        for header in self.headers:
            merged.update(header.tensors)
        return merged

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: info.shape for name, info in self.tensors().items()}

    def dominant_dtype(self) -> str:
        """The dtype holding most bytes ("BF16", "F8_E4M3"), or "fp8_scaled" for a ComfyUI
        scaled fp8 checkpoint (fp8 weights with their scales)."""
        return precision_name(self.tensors())

    def fp8_problems(self) -> list[str]:
        """Why the fp8 scales of these files cannot be applied, each naming the file and
        tensor ([] when they can; :func:`studio.models.fp8.fp8_problems`)."""
        return fp8_problems(self.headers)


def is_index_file(path: Path) -> bool:
    return path.name.endswith(INDEX_SUFFIXES)


def probe_weights(path: str | os.PathLike[str]) -> WeightFiles:
    """Probe one weights file, or an index and every shard it lists.

    Raises:
        CheckpointError: a damaged file or index, a missing shard, or a shard whose tensors
            differ from those the index's ``weight_map`` assigns to it.
    """
    path = Path(path)
    if not is_index_file(path):
        return WeightFiles(headers=(probe_checkpoint(path),))
    weight_map = read_index(path)
    headers = []
    for shard in dict.fromkeys(weight_map.values()):
        header = probe_checkpoint(path.parent / shard)
        listed = {key for key, name in weight_map.items() if name == shard}
        absent, extra = sorted(listed - set(header.tensors)), sorted(set(header.tensors) - listed)
        if absent or extra:
            problem = (f"lacks {few(absent)}, which {path.name} places in it" if absent
                       else f"holds {few(extra)}, which {path.name} does not list")
            raise damaged(header.path, problem, "the shards and the index come from different "
                                                "downloads; download the whole folder again")
        headers.append(header)
    return WeightFiles(headers=tuple(headers), index=path)


def read_index(path: Path) -> dict[str, str]:
    """The ``weight_map`` (tensor name → shard file name) of a sharded checkpoint's index.

    Raises:
        CheckpointError: unreadable or invalid JSON, no weight map, a shard name that is not a
            plain file name in the index's folder, or a listed shard that is missing.
    """
    try:
        data = parse_json_text(read_bytes_bounded(path, MAX_INDEX_BYTES).decode("utf-8"))
    except NotARegularFile as exc:
        raise damaged(path, "is not a regular file", _UNREADABLE) from exc
    except OSError as exc:
        raise damaged(path, f"cannot be read ({exc.strerror or exc})", _UNREADABLE) from exc
    except ValueError as exc:  # not UTF-8, not JSON, too large, too deep, huge integers
        raise damaged(path, f"is not valid JSON ({exc})") from exc
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise damaged(path, "has no weight_map (tensor name → shard file)")
    for key, shard in weight_map.items():
        if not isinstance(shard, str) or shard in ("", ".", "..") or Path(shard).name != shard:
            raise damaged(path, f"maps {key!r} to {shard!r}, which is not a file beside the index")
    missing = sorted({s for s in weight_map.values() if not (path.parent / s).is_file()})
    if missing:
        raise damaged(path, f"lists shard(s) {few(missing)} missing from {path.parent}",
                      "the download is incomplete; fetch the missing shard files")
    return dict(weight_map)


def strip_prefix(keys: Iterable[str], candidates: Iterable[str]) -> str:
    """The first candidate prefix (e.g. ``model.diffusion_model.``) every key starts with, or ""."""
    keys = list(keys)
    for prefix in candidates:
        if keys and all(key.startswith(prefix) for key in keys):
            return prefix
    return ""
