"""A tiny ComfyUI ``models/`` tree of Wan files, with ComfyUI's file names and key layouts.

* ``diffusion_models/``: a Wan 2.1 T2V DiT as one fp16 file with ``model.diffusion_model.``
  keys; a TI2V-shaped DiT (48 channels) whose text width is 48; a Wan 2.2 T2V A14B pair
  (``…high_noise…`` / ``…low_noise…``) in ComfyUI's scaled fp8.
* ``vae/``: both VAEs as safetensors with the original Wan keys (ComfyUI's ``WanVAE`` names).
* ``text_encoders/``: the UMT5 encoder with Hugging Face / ComfyUI ``T5`` keys (``shared.weight``,
  ``encoder.block.N.layer.0.SelfAttention.q.weight`` …) in fp16 and in scaled fp8, each with a
  ``spiece_model`` byte tensor as ComfyUI may store it, and a 48-wide encoder for the TI2V DiT.

Names are chosen so that choosing by name alone would pick the wrong part (``wan2.2_vae`` sorts
before ``wan_2.1_vae``, ``umt5_xxl_bf16_wide`` before ``umt5_xxl_fp16``): only shapes pair them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
from safetensors.torch import save_file

from studio.models.wan.text import umt5_config
from tests.models.tiny_wan import (
    DIT_PREFIX,
    TINY_DIT_21,
    TINY_DIT_22,
    TINY_UMT5,
    TINY_VAE_21,
    TINY_VAE_22,
    dit_state,
    umt5_state,
    vae_state,
    write_tokenizer,
)

State = dict[str, torch.Tensor]
WIDE_DIT_22 = replace(TINY_DIT_22, text_dim=48)
WIDE_UMT5 = umt5_config(vocab_size=40, d_model=48, d_kv=12, d_ff=48, num_layers=1, num_heads=4)
#: Stands in for the SentencePiece model bytes (never parsed by the studio).
SPIECE_BYTES = b"\x0a\x0bnot really a sentencepiece model"
E4M3 = torch.float8_e4m3fn


@dataclass
class ComfyTree:
    """The written tree: its ``models`` folder, each file, and a tokenizer folder outside it."""

    models: Path
    t2v: Path
    ti2v: Path
    high: Path
    low: Path
    vae21: Path
    vae22: Path
    umt5: Path
    umt5_fp8: Path
    umt5_wide: Path
    tokenizer: Path


def scaled_fp8(state: State) -> State:
    """ComfyUI's scaled fp8: each matrix stored as e4m3 with a float32 ``scale_weight``, the rest
    kept wide (embeddings and position biases carry no scale), plus the ``scaled_fp8`` marker."""
    out: State = {}
    for key, value in state.items():
        matrix = key.endswith(".weight") and value.ndim == 2 and "relative_attention" not in key \
            and key != "shared.weight"
        if not matrix:
            out[key] = value.to(torch.float16) if value.is_floating_point() else value
            continue
        scale = (value.abs().max() / torch.finfo(E4M3).max).float()
        out[key] = (value / scale).to(E4M3)
        out[key.removesuffix(".weight") + ".scale_weight"] = scale.reshape(())
    out["scaled_fp8"] = torch.empty(0, dtype=E4M3)
    return out


def _save(path: Path, tensors: State) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({key: value.contiguous() for key, value in tensors.items()}, path)
    return path


def _umt5_file(state: State, fp8: bool) -> State:
    """ComfyUI's text encoder file: T5 module names, no tied copy, the tokenizer bytes."""
    tensors = {k: v for k, v in state.items() if k != "encoder.embed_tokens.weight"}
    tensors = scaled_fp8(tensors) if fp8 else {k: v.half() for k, v in tensors.items()}
    return tensors | {"spiece_model": torch.frombuffer(bytearray(SPIECE_BYTES), dtype=torch.uint8)}


def write_comfy_tree(base: Path) -> ComfyTree:
    """The tree under ``base/ComfyUI/models`` and a tokenizer in ``base/google/umt5-xxl``."""
    models = base / "ComfyUI" / "models"
    dits, vaes, texts = models / "diffusion_models", models / "vae", models / "text_encoders"
    t2v = _save(dits / "wan2.1_t2v_1.3B_tiny_fp16.safetensors",
                {DIT_PREFIX + k: v.half() for k, v in dit_state(TINY_DIT_21, 0).items()})
    ti2v = _save(dits / "wan2.2_ti2v_5B_tiny_fp16.safetensors",
                 {k: v.half() for k, v in dit_state(WIDE_DIT_22, 1).items()})
    high, low = (_save(dits / f"wan2.2_t2v_{kind}_noise_14B_tiny_fp8_scaled.safetensors",
                       {DIT_PREFIX + k: v for k, v in scaled_fp8(dit_state(TINY_DIT_21, seed))
                        .items()})
                 for kind, seed in (("high", 2), ("low", 3)))  # fmt: skip
    return ComfyTree(
        models=models, t2v=t2v, ti2v=ti2v, high=high, low=low,
        vae21=_save(vaes / "wan_2.1_vae.safetensors", vae_state(TINY_VAE_21, 4)),
        vae22=_save(vaes / "wan2.2_vae.safetensors", vae_state(TINY_VAE_22, 5)),
        umt5=_save(texts / "umt5_xxl_fp16.safetensors", _umt5_file(umt5_state(TINY_UMT5, 6),
                                                                   fp8=False)),
        umt5_fp8=_save(texts / "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
                       _umt5_file(umt5_state(TINY_UMT5, 6), fp8=True)),
        umt5_wide=_save(texts / "umt5_xxl_bf16_wide.safetensors",
                        _umt5_file(umt5_state(WIDE_UMT5, 7), fp8=False)),
        tokenizer=write_tokenizer(base / "google" / "umt5-xxl"),
    )  # fmt: skip
