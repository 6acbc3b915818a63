"""Tiny LTX-Video sets with random weights, written to disk in both published layouts.

Real module classes and real key names, widths of a few dozen, for tests and ``studio bench``:

* :func:`write_single_file_set` — ``ltxv-2b-<version>.safetensors`` (transformer under
  ``model.diffusion_model.``, VAE under ``vae.``, the header ``config`` with ``transformer``,
  ``vae`` and ``scheduler``; ``allowed_inference_steps`` for a distilled one) beside
  ``text_encoder/`` and ``tokenizer/`` folders;
* :func:`write_diffusers_set` — ``model_index.json`` (``LTXPipeline``), ``transformer/``,
  ``vae/``, ``text_encoder/``, ``tokenizer/`` and ``scheduler/`` with diffusers names and configs;
* a T5 encoder from a ``transformers`` config of the transformer's caption width, and a small
  word-level tokenizer (:func:`studio.models.random_weights.word_tokenizer`).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn
from transformers import T5Config, T5EncoderModel

from studio.engine.model import LoadedModel
from studio.models.ltx.transformer import LTXTransformer
from studio.models.ltx.transformer_config import TINY, LTXTransformerConfig
from studio.models.ltx.transformer_keys import diffusers_names
from studio.models.ltx.vae import LTXVideoVAE
from studio.models.ltx.vae_config import LTXVAEConfig, compress, res
from studio.models.ltx.vae_diffusers import config_to_diffusers
from studio.models.ltx.vae_keys import diffusers_names as vae_diffusers_names
from studio.models.ltx.vae_original import config_to_original
from studio.models.random_weights import EOS, PAD, VOCAB_SIZE, default_dtype, word_tokenizer

#: A tiny timestep-conditioned VAE (0.9.1-like): 16 latent channels, 32× / 8×, narrow; every
#: decoder stage has a residual block, as the published ones do, so that diffusers'
#: ``AutoencoderKLLTXVideo`` reads its diffusers copy strictly.
TINY_VAE = LTXVAEConfig(
    encoder_blocks=(res(1), compress("compress_all"), compress("compress_all"),
                    compress("compress_all"), res(1)),
    decoder_blocks=(res(1), compress("compress_all"), res(1), compress("compress_all"), res(1),
                    compress("compress_all"), res(1)),
    latent_channels=TINY.in_channels, encoder_base_channels=16, decoder_base_channels=16,
    timestep_conditioning=True,
)  # fmt: skip
#: The published scheduler of the dev checkpoints (``OURS_SCHEDULER_CONFIG``).
SCHEDULER = {"_class_name": "RectifiedFlowScheduler", "num_train_timesteps": 1000,
             "shifting": "SD3", "base_resolution": None, "target_shift_terminal": 0.1}
DIFFUSERS_SCHEDULER = {"_class_name": "FlowMatchEulerDiscreteScheduler",
                       "use_dynamic_shifting": True, "base_shift": 0.95, "max_shift": 2.05,
                       "base_image_seq_len": 1024, "max_image_seq_len": 4096,
                       "shift_terminal": 0.1, "num_train_timesteps": 1000}  # fmt: skip


def t5_config(width: int) -> T5Config:
    """A two-layer T5 v1.1 encoder ``width`` wide."""
    return T5Config(vocab_size=VOCAB_SIZE, d_model=width, d_kv=8, d_ff=2 * width, num_layers=2,
                    num_heads=max(1, width // 8), feed_forward_proj="gated-gelu",
                    dropout_rate=0.0, pad_token_id=PAD, eos_token_id=EOS,
                    decoder_start_token_id=PAD)  # fmt: skip


def random_state(module: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Seeded random weights of the module's shapes (scales around 1), contiguous float32."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, tensor in module.state_dict().items():
        noise = torch.randn(tensor.shape, generator=gen)
        if name.endswith("std-of-means"):
            state[name] = 0.5 + noise.abs()
        elif tensor.ndim == 1 and ("norm" in name or "scale" in name):
            state[name] = 1 + 0.1 * noise
        else:
            fan_in = tensor[0].numel() if tensor.ndim > 1 else 1
            state[name] = noise / fan_in**0.5 if tensor.ndim > 1 else 0.05 * noise
    return state


def write_t5(folder: Path, width: int = TINY.caption_channels, seed: int = 5) -> nn.Module:
    """A transformers T5 encoder folder with its tokenizer files."""
    torch.manual_seed(seed)
    model = T5EncoderModel(t5_config(width)).eval()
    model.save_pretrained(str(folder))
    word_tokenizer().save_pretrained(str(folder))
    return model


def write_tokenizer(folder: Path) -> None:
    """A tokenizer folder alone (diffusers ``tokenizer/``)."""
    word_tokenizer().save_pretrained(str(folder))


def transformer_state(config: LTXTransformerConfig, seed: int = 3) -> dict[str, torch.Tensor]:
    with torch.device("cpu"):
        return random_state(LTXTransformer(config), seed)


def vae_state(config: LTXVAEConfig, seed: int = 4) -> dict[str, torch.Tensor]:
    return random_state(LTXVideoVAE(config), seed)


def header(transformer: LTXTransformerConfig, vae: LTXVAEConfig,
           distilled: tuple[float, ...] | None = None) -> dict[str, str]:
    """The single file's header metadata: ``config`` JSON."""
    config: dict = {"transformer": transformer.to_original(), "vae": config_to_original(vae),
                    "scheduler": SCHEDULER}
    if distilled is not None:
        config["allowed_inference_steps"] = list(distilled)
    return {"config": json.dumps(config)}


def write_single_file_set(root: Path, version: str = "0.9.1", *, distilled: bool = False,
                          transformer: LTXTransformerConfig = TINY,
                          vae: LTXVAEConfig = TINY_VAE) -> Path:
    """``root/ltxv-2b-<version>[-distilled].safetensors`` with ``text_encoder/`` and
    ``tokenizer/`` beside it; returns the checkpoint's path."""
    root.mkdir(parents=True, exist_ok=True)
    name = f"ltxv-2b-{version}{'-distilled' if distilled else ''}.safetensors"
    state = {f"model.diffusion_model.{k}": v for k, v in transformer_state(transformer).items()}
    state.update({f"vae.{k}": v for k, v in vae_state(vae).items()})
    steps = (1.0, 0.9937, 0.9875, 0.9812, 0.975, 0.9094, 0.725) if distilled else None
    save_file(state, str(root / name), metadata=header(transformer, vae, steps))
    write_t5(root / "text_encoder", transformer.caption_channels)
    write_tokenizer(root / "tokenizer")
    return root / name


def write_diffusers_set(root: Path, *, transformer: LTXTransformerConfig = TINY,
                        vae: LTXVAEConfig = TINY_VAE) -> Path:
    """A diffusers ``LTXPipeline`` folder of tiny random parts; returns ``root``."""
    for folder in ("transformer", "vae", "scheduler"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    index = {"_class_name": "LTXPipeline",
             "transformer": ["diffusers", "LTXVideoTransformer3DModel"],
             "vae": ["diffusers", "AutoencoderKLLTXVideo"],
             "text_encoder": ["transformers", "T5EncoderModel"],
             "tokenizer": ["transformers", "T5Tokenizer"],
             "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"]}
    (root / "model_index.json").write_text(json.dumps(index), encoding="utf-8")
    save_file(diffusers_names(transformer_state(transformer)),
              str(root / "transformer" / "diffusion_pytorch_model.safetensors"))
    (root / "transformer" / "config.json").write_text(json.dumps(transformer.to_diffusers()))
    save_file(vae_diffusers_names(vae_state(vae), vae),
              str(root / "vae" / "diffusion_pytorch_model.safetensors"))
    (root / "vae" / "config.json").write_text(json.dumps(config_to_diffusers(vae)))
    (root / "scheduler" / "scheduler_config.json").write_text(json.dumps(DIFFUSERS_SCHEDULER))
    write_t5(root / "text_encoder", transformer.caption_channels)
    write_tokenizer(root / "tokenizer")
    return root


def tiny_vae(version: str = "0.9.1") -> LTXVAEConfig:
    """The tiny VAE, timestep-conditioned (0.9.1 and later) or not (0.9.0)."""
    return TINY_VAE if version != "0.9.0" else replace(TINY_VAE, timestep_conditioning=False)


def random_model(device: torch.device | str, dtype: torch.dtype, *,
                 transformer: LTXTransformerConfig = TINY, vae: LTXVAEConfig = TINY_VAE,
                 variant: str = "2b-0.9.1", seed: int = 0) -> LoadedModel:
    """A :class:`LoadedModel` of random modules built in memory (``studio bench``): the
    transformer and T5 in ``dtype``, the VAE in float32, a word-level tokenizer; the defaults
    of ``variant``."""
    from studio.models.ltx.assemble import LTXParts, assemble_ltx_model
    from studio.models.ltx.text import LTXTextEncoder

    device = torch.device(device)
    torch.manual_seed(seed)
    with torch.device(device), default_dtype(dtype):
        dit = LTXTransformer(transformer)
        t5 = T5EncoderModel(t5_config(transformer.caption_channels))
    with torch.device(device):
        video_vae = LTXVideoVAE(vae)
        video_vae.load_state_dict(vae_state(vae, seed + 1))
    parts = LTXParts(dit.to(dtype).eval().requires_grad_(False),
                     video_vae.float().eval().requires_grad_(False),
                     LTXTextEncoder(t5.to(dtype).eval().requires_grad_(False), word_tokenizer()))
    return assemble_ltx_model(parts, model_id=f"random:ltx-{variant}",
                              name=f"random LTX {variant}", variant=variant, device=device,
                              dtype=dtype)  # fmt: skip
