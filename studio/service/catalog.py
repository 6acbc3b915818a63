"""The model catalogue: the built-in sets plus every set found in the configured folders, and the
one place that turns a catalogue entry into a :class:`~studio.engine.model.LoadedModel`."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from studio.engine.cancel import NEVER, CancelToken
from studio.engine.fastpath import accelerate
from studio.engine.lora import AUTO as LORA_AUTO
from studio.engine.lora import DenoiserPatch, merge_parts
from studio.engine.model import LoadedModel
from studio.engine.offload import AUTO, OffloadPolicy, apply_offload
from studio.errors import CheckpointError
from studio.models.family import ModelSet
from studio.models.registry import builtin_sets, default_model_id, family, scan

__all__ = ["ModelCache", "default_model_id", "find_model", "list_models", "load_model",
           "pick_device"]
from studio.service.forecast import plan_offload
from studio.service.lora_apply import check_patch, denoiser_modules, merge_wanted
from studio.service.settings import Settings

log = logging.getLogger(__name__)


def pick_device(setting: str = "auto") -> torch.device:
    """"auto" → CUDA when present, else CPU; "cuda" without a GPU is refused clearly."""
    if setting == "cuda" and not torch.cuda.is_available():
        raise CheckpointError(
            "CUDA was requested but no CUDA GPU is available",
            "set the device to auto or cpu in the settings",
        )
    if setting in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def list_models(settings: Settings) -> list[ModelSet]:
    """The built-in sets first, then every set found in ``settings.model_folders`` (a set
    without a tokenizer folder uses the one chosen in the settings)."""
    sets = builtin_sets()
    folders = [Path(f) for f in settings.model_folders]
    if folders:
        sets.extend(scan(folders, shared=settings.shared_model_folders))
    return sets


def find_model(settings: Settings, model_id: str) -> ModelSet:
    """The set for ``model_id`` ("" = the configured default, else the first built-in set).

    A folder path that is not in the configured folders is scanned on its own, so
    ``studio generate --model DIR`` works without configuring anything.
    """
    model_id = model_id or settings.default_model or default_model_id()
    builtin = [s for s in builtin_sets() if s.id == model_id]
    if builtin:
        return _usable(builtin[0])
    path = Path(model_id).expanduser()
    candidates = [s for s in list_models(settings) if s.id == str(path)] or scan(
        [path], shared=settings.shared_model_folders)
    if not candidates:
        raise CheckpointError(
            f"no model set was found in {path}",
            "point to a folder with a supported checkpoint (see `studio models scan`)",
        )
    exact = [s for s in candidates if s.id == str(path)]
    return _usable((exact or candidates)[0])


def _usable(model_set: ModelSet) -> ModelSet:
    if not model_set.complete or model_set.problems:
        problems = "; ".join(model_set.problems) or "the set is incomplete"
        raise CheckpointError(f"the model set in {model_set.id} cannot be used: {problems}",
                              "add the missing or matching files and rescan")
    return model_set


def load_model(model_set: ModelSet, device: torch.device, cancel: CancelToken = NEVER, *,
               offload: str = AUTO) -> LoadedModel:
    """Load a catalogue entry onto ``device`` in its family's precision for that device.

    On CUDA the set is loaded under an offload policy (``offload``: a policy name, or "auto"
    for the fastest whose memory forecast fits the free VRAM); when it keeps parts in host
    memory the weights are read into RAM first (see :mod:`studio.engine.offload`).
    """
    cancel.check()
    owner = family(model_set.family)
    dtype = owner.dtype_for(device)
    policy = plan_offload(owner, model_set, dtype, device, offload).policy
    if policy is OffloadPolicy.NONE:
        model = owner.load(model_set, device, dtype, cancel)
    else:
        model = apply_offload(owner.load(model_set, torch.device("cpu"), dtype, cancel), policy,
                              device)  # fmt: skip
    return accelerate(model)  # explicit attention kernels on CUDA; unchanged on the CPU


ModelFinder = Callable[[Settings, str], ModelSet]
"""``finder(settings, model_id)`` → the catalogue entry (:func:`find_model` by default)."""
ModelLoader = Callable[..., LoadedModel]
"""``loader(model_set, device, cancel, offload=…)`` → the loaded model (:func:`load_model`)."""


@dataclass(frozen=True, slots=True)
class CacheKey:
    """Everything that changes what is loaded: the set, the device and the offload setting
    (the dtype follows from the family and the device)."""

    model_id: str
    device: str
    offload: str


class ModelCache:
    """Keeps one model loaded (weights stay warm between jobs); thread-safe.

    ``finder`` and ``loader`` replace :func:`find_model` and :func:`load_model` (tests inject
    tiny models this way).
    """

    def __init__(self, settings: Settings, *, finder: ModelFinder | None = None,
                 loader: ModelLoader | None = None) -> None:
        self.settings = settings
        self._finder = finder
        self._loader = loader
        self._lock = threading.Lock()
        self._key: CacheKey | None = None
        self._model: LoadedModel | None = None
        self._set: ModelSet | None = None
        self._merged = ""

    @property
    def loaded(self) -> LoadedModel | None:
        return self._model

    @property
    def loaded_set(self) -> ModelSet | None:
        """The catalogue entry the loaded model came from (its files, for recipes)."""
        return self._set

    def find(self, model_id: str) -> ModelSet:
        """The catalogue entry for ``model_id`` ("" = the default model)."""
        return (self._finder or find_model)(self.settings, model_id)

    def get(self, model_id: str, cancel: CancelToken = NEVER, *,
            patch: DenoiserPatch | None = None, lora_mode: str = LORA_AUTO,
            keep_patch: bool = False) -> LoadedModel:
        """The loaded model for ``model_id``, loading it (one scan) when the key changed.

        ``patch`` (a job's LoRAs) is merged into the weights when ``lora_mode`` and the offload
        policy allow it (:func:`~studio.service.lora_apply.merge_wanted`); :attr:`merged` then
        names it, and a later job with other LoRAs, or none, gets freshly loaded weights.
        ``keep_patch`` accepts whatever is merged (decoding again uses only the VAE).
        """
        model_set = self.find(model_id)
        device = pick_device(self.settings.device)
        key = CacheKey(model_set.id, str(device), self.settings.offload)
        with self._lock:
            wanted = patch.fingerprint if patch else ""
            stale = self._merged not in ("", wanted) and not keep_patch
            if self._key != key or self._model is None or stale:
                self._unload_locked()
                log.info("loading model %s on %s (offload %s)", model_set.id, device,
                         key.offload)
                self._model = (self._loader or load_model)(model_set, device, cancel,
                                                           offload=key.offload)
                self._key, self._set = key, model_set
            if patch and self._merged != wanted and merge_wanted(lora_mode, self._model.offload):
                self._merge_locked(patch)
            return self._model

    @property
    def merged(self) -> str:
        """The fingerprint of the LoRA patch merged into the loaded weights ("" = none)."""
        return self._merged

    def _merge_locked(self, patch: DenoiserPatch) -> None:
        assert self._model is not None
        check_patch(self._model, patch)
        self._merged = "(merging)"  # a failure half-way leaves weights to be reloaded
        merge_parts(denoiser_modules(self._model, patch), patch)
        self._merged = patch.fingerprint
        log.info("merged LoRA patch %s into %s", patch.fingerprint, self._model.id)

    def unload(self) -> None:
        with self._lock:
            self._unload_locked()

    def _unload_locked(self) -> None:
        if self._model is not None:
            log.info("unloading model %s", self._model.id)
        self._model = None
        self._key = None
        self._set = None
        self._merged = ""
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
