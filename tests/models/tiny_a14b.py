"""Tiny random-weight Wan image-to-video sets for tests: Wan 2.2 A14B (two experts) in the
published layouts, and Wan 2.1 I2V/FLF2V-14B (the CLIP image branch and its encoder)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import torch
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


#: The tiny CLIP tower is 160 wide (two 80-dim heads, as ViT-H's); the DiT's branch reads that.
CLIP_DIM = 160
CLIP_FILE = "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"
I2V14B_DIT = replace(TINY_DIT_21, in_dim=36, image_dim=CLIP_DIM)
FLF2V_DIT = replace(I2V14B_DIT, image_tokens=2 * 5)  # two images of 1 + 2·2 tokens


def wan_clip_state(dim: int = 160, layers: int = 3, patch: int = 14, side: int = 2,
                   seed: int = 0) -> dict[str, torch.Tensor]:
    """A tiny random vision tower in the original ``visual.*`` layout (plus a text key)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int, scale: float = 0.05) -> torch.Tensor:
        return scale * torch.randn(*shape, generator=g)

    state = {"visual.patch_embedding.weight": r(dim, 3, patch, patch),
             "visual.cls_embedding": r(1, 1, dim), "visual.pos_embedding": r(1, side**2 + 1, dim),
             "visual.pre_norm.weight": 1 + r(dim), "visual.pre_norm.bias": r(dim),
             "visual.post_norm.weight": 1 + r(dim), "visual.post_norm.bias": r(dim),
             "visual.head": r(dim, 32), "textual.token_embedding.weight": r(10, 8),
             "log_scale": torch.tensor(2.0)}  # fmt: skip
    for i in range(layers):
        block = f"visual.transformer.{i}."
        state.update({f"{block}norm1.weight": 1 + r(dim), f"{block}norm1.bias": r(dim),
                      f"{block}attn.to_qkv.weight": r(3 * dim, dim),
                      f"{block}attn.to_qkv.bias": r(3 * dim),
                      f"{block}attn.proj.weight": r(dim, dim),
                      f"{block}attn.proj.bias": r(dim), f"{block}norm2.weight": 1 + r(dim),
                      f"{block}norm2.bias": r(dim), f"{block}mlp.0.weight": r(4 * dim, dim),
                      f"{block}mlp.0.bias": r(4 * dim), f"{block}mlp.2.weight": r(dim, 4 * dim),
                      f"{block}mlp.2.bias": r(dim)})  # fmt: skip
    return state


def write_i2v14b_set(root: Path, flf2v: bool = False, clip: bool = True) -> TinySet:
    """A complete tiny Wan 2.1 I2V-14B (or FLF2V-14B) set in the original layout: the DiT with
    its image branch, the CLIP file (unless ``clip`` is False), VAE, UMT5 and tokenizer."""
    tiny = write_wan_set(root, "t2v", "original")
    tiny.dit.unlink()
    config = FLF2V_DIT if flf2v else I2V14B_DIT
    tiny.states["dit"] = dit_state(config, seed=12)
    write_dit(root, config, "original", tiny.states["dit"])
    if clip:
        torch.save(wan_clip_state(), root / CLIP_FILE)
    return tiny
