"""The configurations ``--config`` names: every registered family's, in family order."""

from __future__ import annotations

from studio.errors import InvalidRequest
from studio.models.bench_config import BenchConfig
from studio.models.registry import families


def all_configs() -> dict[str, BenchConfig]:
    """Name → configuration, over every family (a later family's name wins a clash)."""
    return {config.name: config for family in families() for config in family.bench_configs()}


def get_config(name: str) -> BenchConfig:
    configs = all_configs()
    try:
        return configs[name]
    except KeyError:
        raise InvalidRequest("config", f"{name!r} is not a benchmark configuration",
                             f"use one of {', '.join(configs)}") from None
