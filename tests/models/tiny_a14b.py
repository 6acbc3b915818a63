"""Tiny random-weight Wan 2.2 A14B sets (two experts) in the published layouts, for tests."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

from safetensors.torch import save_file

from tests.models.tiny_wan import (
    DIT_PREFIX,
    TINY_DIT_21,
    TinySet,
    dit_state,
    write_dit,
    write_wan_set,
)

I2V_DIT = replace(TINY_DIT_21, in_dim=36)
EXPERT_DIRS = {"original": ("high_noise_model", "low_noise_model"),
               "diffusers": ("transformer", "transformer_2")}


def write_a14b_set(root: Path, kind: str = "t2v", layout: str = "original",
                   boundary: float | None = None) -> TinySet:
    """A complete tiny A14B set: ``kind`` "t2v" (16 channels) or "i2v" (36); ``layout``
    "original" (high_noise_model/ + low_noise_model/), "diffusers" (transformer/ +
    transformer_2/, ``boundary`` in model_index.json) or "files" (…high_noise… and
    …low_noise… single files with the ``model.diffusion_model.`` prefix)."""
    tiny = write_wan_set(root, "t2v", "diffusers" if layout == "diffusers" else "original")
    for path in tiny.dit.parent.glob("diffusion_pytorch_model*"):
        path.unlink()
    if layout == "diffusers":
        shutil.rmtree(root / "transformer")
        index = {"_class_name": "WanPipeline"} | (
            {"boundary_ratio": boundary} if boundary is not None else {})
        (root / "model_index.json").write_text(json.dumps(index))
    config = I2V_DIT if kind == "i2v" else TINY_DIT_21
    high, low = dit_state(config, seed=10), dit_state(config, seed=11)
    if layout == "files":
        for name, state in (("high", high), ("low", low)):
            save_file({DIT_PREFIX + k: v.contiguous() for k, v in state.items()},
                      root / f"wan2.2_{kind}_{name}_noise_14B_tiny.safetensors")
    else:
        high_dir, low_dir = EXPERT_DIRS[layout]
        write_dit(root / high_dir, config, layout, high)
        write_dit(root / low_dir, config, layout, low)
    tiny.states["dit"], tiny.states["dit_low"] = high, low
    return tiny
