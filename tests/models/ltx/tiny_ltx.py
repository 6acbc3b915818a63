"""Tiny random LTX-Video sets on disk for the tests (both layouts; real key names)."""

from __future__ import annotations

from pathlib import Path

from studio.models.ltx.random_model import (
    TINY_VAE,
    write_diffusers_set,
    write_single_file_set,
    write_t5,
    write_tokenizer,
)

__all__ = ["TINY_VAE", "write_diffusers_set", "write_single_file_set", "write_t5",
           "write_tokenizer", "write_both"]


def write_both(root: Path) -> tuple[Path, Path]:
    """(the single-file set's checkpoint, the diffusers set's folder) under ``root``."""
    return write_single_file_set(root / "single"), write_diffusers_set(root / "diffusers")
