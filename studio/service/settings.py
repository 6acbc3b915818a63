"""Domain settings (model folders, outputs, device, preview cadence, the UMT5 tokenizer) as
versioned JSON.

Each key is validated on load and falls back to its default when invalid, so a damaged settings
file never stops the studio from starting. Saves are atomic.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from studio.media.atomic import atomic_write_json
from studio.media.json_file import MAX_JSON_BYTES, parse_json_text
from studio.paths import studio_home
from studio.safe_files import read_bytes_bounded

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DEVICES = ("auto", "cpu", "cuda")
OFFLOAD_POLICIES = ("auto", "none", "text-encoder", "model", "blocks")


@dataclass(frozen=True, slots=True)
class Settings:
    """What the user configured.

    Attributes:
        model_folders: folders scanned for model sets.
        output_dir: where finished videos go ("" = ``STUDIO_HOME/outputs``).
        device: "auto" (CUDA when present), "cpu" or "cuda".
        default_model: model id used when a request names none ("" = the first built-in
            model, the demo model).
        preview_every: send a live preview every this many steps.
        checkpoint_every: save the sampler state every this many steps so a job that is killed
            resumes there (0 = never).
        offload: where weights live on a GPU: "auto" (the fastest policy whose memory
            forecast fits the free VRAM), "none", "text-encoder", "model" or "blocks"
            (see :mod:`studio.engine.offload`).
        umt5_tokenizer: a ``google/umt5-xxl`` tokenizer folder for Wan sets that have none —
            ComfyUI's Wan files come without one ("" = none chosen).
    """

    model_folders: tuple[str, ...] = ()
    output_dir: str = ""
    device: str = "auto"
    default_model: str = ""
    preview_every: int = 1
    checkpoint_every: int = 5
    offload: str = "auto"
    umt5_tokenizer: str = ""

    @property
    def outputs(self) -> Path:
        path = Path(self.output_dir) if self.output_dir else studio_home() / "outputs"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def shared_model_folders(self) -> tuple[str, ...]:
        """Folders whose parts every scanned set may use when it lacks them (registry
        ``scan(..., shared=...)``): the UMT5 tokenizer, when one is chosen."""
        return (self.umt5_tokenizer,) if self.umt5_tokenizer else ()

    def with_changes(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["model_folders"] = list(self.model_folders)
        data["schema_version"] = SCHEMA_VERSION
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        """Parse leniently: an invalid key is logged and replaced by its default."""
        default = cls()
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            if _valid(f.name, value):
                values[f.name] = tuple(value) if f.name == "model_folders" else value
            else:
                log.warning("settings: ignoring invalid %s=%r (using %r)", f.name, value,
                            getattr(default, f.name))
        return cls(**values)


def _valid(name: str, value: object) -> bool:
    if name == "model_folders":
        return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
    if name in ("output_dir", "default_model", "umt5_tokenizer"):
        return isinstance(value, str)
    if name == "device":
        return value in DEVICES
    if name == "offload":
        return value in OFFLOAD_POLICIES
    if name == "preview_every":
        return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 1000
    if name == "checkpoint_every":
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 1000
    return False


def umt5_tokenizer_problem(folder: str | Path) -> str:
    """Why ``folder`` cannot be the ``umt5_tokenizer`` setting ("" when it can): a model family
    must identify it as a tokenizer folder, as scans do, and find nothing wrong with it."""
    from studio.models.family import TOKENIZER  # these import torch: only when asked
    from studio.models.registry import families

    path = Path(folder).expanduser()
    try:
        names = sorted(os.listdir(path)) if path.is_dir() else None
    except OSError as exc:
        return f"{path} cannot be read ({exc.strerror or exc})"
    if names is None:
        return f"{path} is not a folder"
    parts = [f.identify_folder(path, names) for f in families()]
    part = next((p for p in parts if p is not None and p.role == TOKENIZER), None)
    if part is None:
        return f"{path} is not a tokenizer folder: it holds neither tokenizer.json nor spiece.model"
    return part.problem


def settings_path() -> Path:
    return studio_home() / "settings.json"


def load_settings(path: Path | None = None) -> Settings:
    path = path or settings_path()
    try:
        data = parse_json_text(read_bytes_bounded(path, MAX_JSON_BYTES))
    except FileNotFoundError:
        return Settings()
    except (OSError, ValueError) as exc:  # not a regular file, too large, not plain JSON
        log.warning("settings file %s unreadable (%s); using defaults", path, exc)
        return Settings()
    if not isinstance(data, dict):
        log.warning("settings file %s is not a JSON object; using defaults", path)
        return Settings()
    return Settings.from_dict(data)


def save_settings(settings: Settings, path: Path | None = None) -> None:
    atomic_write_json(path or settings_path(), settings.to_dict())
