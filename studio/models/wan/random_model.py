"""A complete Wan model set with random weights, built in memory for benchmarks.

Same classes and calls as a loaded checkpoint (WanDiT — through ``velocity_uniform`` for the
text-to-video sizes, as the Wan family does — the Wan VAE, transformers' UMT5 encoder behind
:class:`~studio.models.wan.text.UMT5TextEncoder`), same dtypes (DiT and text encoder in the
compute dtype with the DiT's float32 groups, VAE in float32), seeded weights. The tokenizer is a
small word-level one made on the spot (timing does not depend on which ids are looked up).
"""

from __future__ import annotations

import logging

import torch
from transformers import UMT5EncoderModel

from studio.engine.memory_model import TextEncoderShape
from studio.engine.model import (
    DIT,
    FIRST_FRAME,
    KEYFRAME,
    TEXT_ENCODER,
    VAE,
    AttentionShape,
    Capabilities,
    FamilyDefaults,
    LoadedModel,
    ModelModules,
)
from studio.models.random_weights import default_dtype, word_tokenizer
from studio.models.wan.bench_sizes import WanBenchSizes
from studio.models.wan.dit import WanDiT
from studio.models.wan.identify import FAMILY_NAME
from studio.models.wan.memory import loaded_memory
from studio.models.wan.presets import (
    NEGATIVE_PROMPT,
    PROMPT_EXAMPLES,
    WAN21_PREVIEW,
    WAN22_PREVIEW,
)
from studio.models.wan.text import UMT5TextEncoder, umt5_config
from studio.models.wan.vae import CausalVideoVAE
from studio.models.wan.vae_factory import build_vae

log = logging.getLogger(__name__)

def random_dit(spec: WanBenchSizes, device: torch.device, dtype: torch.dtype,
               seed: int = 0) -> WanDiT:
    """The spec's DiT with seeded random weights, cast like a loaded checkpoint."""
    torch.manual_seed(seed)
    with torch.device(device), default_dtype(dtype):  # no float32 copy of a 5B model first
        dit = WanDiT(spec.dit)
    return dit.to_dtype(dtype).eval().requires_grad_(False)


def random_vae(spec: WanBenchSizes, device: torch.device, seed: int = 1) -> CausalVideoVAE:
    """The spec's VAE with seeded random weights, float32."""
    torch.manual_seed(seed)
    with torch.device(device):
        return build_vae(spec.vae)


def random_text_encoder(spec: WanBenchSizes, device: torch.device, dtype: torch.dtype,
                        seed: int = 2) -> UMT5TextEncoder:
    """A UMT5 encoder of the spec's sizes with seeded random weights and a word tokenizer."""
    torch.manual_seed(seed)
    config = umt5_config(**spec.text.to_dict())
    with torch.device(device), default_dtype(dtype):  # UMT5-XXL is 23 GB in float32
        model = UMT5EncoderModel(config)
    model = model.to(dtype).eval().requires_grad_(False)
    return UMT5TextEncoder(model, word_tokenizer(spec.text.vocab_size), text_len=spec.text_len)


def random_model(spec: WanBenchSizes, device: torch.device | str, dtype: torch.dtype,
                 seed: int = 0) -> LoadedModel:
    """A :class:`LoadedModel` of random weights for ``spec`` on ``device``."""
    device = torch.device(device)
    dit = random_dit(spec, device, dtype, seed)
    vae = random_vae(spec, device, seed + 1)
    encoder = random_text_encoder(spec, device, dtype, seed + 2)
    wan22 = spec.geometry.channels == 48
    defaults = FamilyDefaults(steps=50, guidance=5.0, shift=5.0, fps=24.0 if wan22 else 16.0,
                              frames=spec.frames, sizes=((spec.width, spec.height),),
                              negative_prompt=NEGATIVE_PROMPT)  # fmt: skip
    text_blocks = "encoder.block"
    modules = ModelModules(
        parts={TEXT_ENCODER: encoder.model, DIT: dit, VAE: vae},
        blocks={DIT: "blocks", TEXT_ENCODER: text_blocks},
        attention=AttentionShape(dit.config.num_heads, dit.config.head_dim),
    )
    text = TextEncoderShape(encoder.width, encoder.model.config.num_heads, dit.config.text_len)
    memory = loaded_memory(dit, vae, encoder.model, text, spec.geometry, per_token_time=wan22,
                           text_blocks=text_blocks)  # fmt: skip
    log.info("random %s model on %s (%s)", spec.name, device, dtype)
    return LoadedModel(
        id=f"random:{spec.name}", name=f"random {spec.name}", family=FAMILY_NAME,
        variant=spec.variant, geometry=spec.geometry, defaults=defaults,
        preview=WAN22_PREVIEW if wan22 else WAN21_PREVIEW, text_encoder=encoder,
        denoiser=dit.velocity if wan22 else dit.velocity_uniform, vae=vae, device=device,
        dtype=dtype, modules=modules, memory=memory,
        capabilities=Capabilities(conditioning=(FIRST_FRAME, KEYFRAME) if wan22 else ()),
        prompt_examples=PROMPT_EXAMPLES,
    )  # fmt: skip
