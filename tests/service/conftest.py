"""Service-test fixtures: the tiny random-weight model (see ``tiny_model.py``) behind a real
:class:`~studio.service.catalog.ModelCache`, and a generation service writing into a temp folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from studio.service import catalog
from studio.service.catalog import ModelCache
from studio.service.generation import GenerationService
from studio.service.settings import Settings
from tests.service.tiny_model import catalog_functions, listing_function, write_tiny_weights


@pytest.fixture
def tiny_dir(tmp_path: Path) -> Path:
    """A model folder holding freshly written tiny weights."""
    folder = tmp_path / "tiny-model"
    write_tiny_weights(folder)
    return folder


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(output_dir=str(tmp_path / "outputs"), device="cpu", checkpoint_every=2)


@pytest.fixture
def tiny_catalog(tiny_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make the real catalogue (and so the CLI) find and load the tiny model."""
    find_model, load_model = catalog_functions(tiny_dir)
    monkeypatch.setattr(catalog, "find_model", find_model)
    monkeypatch.setattr(catalog, "load_model", load_model)
    monkeypatch.setattr(catalog, "list_models", listing_function(tiny_dir))
    return tiny_dir


@pytest.fixture
def service(settings: Settings, tiny_dir: Path) -> GenerationService:
    """A service whose cache loads the tiny model through injected finder/loader."""
    find_model, load_model = catalog_functions(tiny_dir)
    return GenerationService(settings, ModelCache(settings, finder=find_model, loader=load_model))
