"""The model catalogue: the demo model plus every set found in the configured folders, and the
one place that turns a catalogue entry into a :class:`~studio.models.family.LoadedModel`."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import torch

from studio.engine.cancel import NEVER, CancelToken
from studio.errors import CheckpointError
from studio.models.family import LoadedModel
from studio.models.registry import ModelSet, demo_model_set, scan
from studio.service.settings import Settings

log = logging.getLogger(__name__)

DEMO_ID = "demo"


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
    """Demo model first, then every set found in ``settings.model_folders``."""
    sets: list[ModelSet] = []
    demo = demo_model_set()
    if demo is not None:
        sets.append(demo)
    folders = [Path(f) for f in settings.model_folders]
    if folders:
        sets.extend(scan(folders))
    return sets


def find_model(settings: Settings, model_id: str) -> ModelSet:
    """The set for ``model_id`` ("" = the configured default, else the demo model).

    A folder path that is not in the configured folders is scanned on its own, so
    ``studio generate --model DIR`` works without configuring anything.
    """
    model_id = model_id or settings.default_model or DEMO_ID
    if model_id == DEMO_ID:
        demo = demo_model_set()
        if demo is None:
            raise CheckpointError(
                "the demo model's weights are missing from this installation",
                "reinstall Flow Studio, or run `studio train demo` to rebuild them",
            )
        return demo
    path = Path(model_id).expanduser()
    candidates = [s for s in list_models(settings) if s.id == str(path)] or scan([path])
    if not candidates:
        raise CheckpointError(
            f"no model set was found in {path}",
            "point to a folder with a Wan 2.1 / 2.2 checkpoint (see `studio models scan`)",
        )
    exact = [s for s in candidates if s.id == str(path)]
    chosen = (exact or candidates)[0]
    if not chosen.complete or chosen.problems:
        problems = "; ".join(chosen.problems) or "the set is incomplete"
        raise CheckpointError(f"the model set in {chosen.id} cannot be used: {problems}",
                              "add the missing or matching files and rescan")
    return chosen


def load_model(model_set: ModelSet, device: torch.device, cancel: CancelToken = NEVER, *,
               offload: str = "auto") -> LoadedModel:
    """Load a catalogue entry onto ``device`` (bf16 for Wan on CUDA, float32 otherwise).

    On CUDA a Wan set is loaded under an offload policy (``offload``: a policy name, or "auto"
    for the fastest whose memory forecast fits the free VRAM); when it keeps parts in host
    memory the weights are read into RAM first (see :mod:`studio.engine.offload`).
    """
    cancel.check()
    if model_set.family == DEMO_ID:
        from studio.models.demo.family import load_demo_model

        return load_demo_model(device=device)  # the demo set is always the shipped folder
    if model_set.family == "wan":
        from studio.engine.fastpath import accelerate
        from studio.engine.offload import OffloadPolicy, apply_offload
        from studio.models.wan.family import load_wan_model
        from studio.service.forecast import plan_offload

        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        policy = plan_offload(model_set.variant, dtype, device, offload).policy
        if policy is OffloadPolicy.NONE:
            model = load_wan_model(model_set, device, dtype)
        else:
            model = apply_offload(load_wan_model(model_set, torch.device("cpu"), dtype), policy,
                                  device)  # fmt: skip
        return accelerate(model)  # explicit attention kernels on CUDA; unchanged on the CPU
    raise CheckpointError(f"model family {model_set.family!r} is not supported",
                          "supported families: demo, wan")


ModelFinder = Callable[[Settings, str], ModelSet]
"""``finder(settings, model_id)`` → the catalogue entry (:func:`find_model` by default)."""
ModelLoader = Callable[[ModelSet, torch.device, CancelToken], LoadedModel]
"""``loader(model_set, device, cancel)`` → the loaded model (:func:`load_model` by default)."""


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
        self._key: tuple[str, str] | None = None
        self._model: LoadedModel | None = None

    @property
    def loaded(self) -> LoadedModel | None:
        return self._model

    def find(self, model_id: str) -> ModelSet:
        """The catalogue entry for ``model_id`` ("" = the default model)."""
        return (self._finder or find_model)(self.settings, model_id)

    def get(self, model_id: str, cancel: CancelToken = NEVER) -> LoadedModel:
        model_set = self.find(model_id)
        device = pick_device(self.settings.device)
        key = (model_set.id, str(device))
        with self._lock:
            if self._key != key or self._model is None:
                self._unload_locked()
                log.info("loading model %s on %s", model_set.id, device)
                offload = self.settings.offload  # passed on only when it is not the default
                options = {} if offload == "auto" else {"offload": offload}
                self._model = (self._loader or load_model)(model_set, device, cancel, **options)
                self._key = key
            return self._model

    def unload(self) -> None:
        with self._lock:
            self._unload_locked()

    def _unload_locked(self) -> None:
        if self._model is not None:
            log.info("unloading model %s", self._model.id)
        self._model = None
        self._key = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
