"""Tiny random LTX-Video transformers for tests (ours, and diffusers' twin with the same weights).

Every parameter is drawn at random, the norms' weights and modulation tables included, so no
part of the network can be mistaken for an identity by a comparison.
"""

from __future__ import annotations

import torch

from studio.models.ltx.transformer import LTXTransformer
from studio.models.ltx.transformer_config import TINY, LTXTransformerConfig
from studio.models.ltx.transformer_keys import diffusers_names


def random_transformer(config: LTXTransformerConfig = TINY, seed: int = 0) -> LTXTransformer:
    """An :class:`LTXTransformer` (float32, CPU, eval) with N(0, 0.2²) weights, norms ≈ 1."""
    generator = torch.Generator().manual_seed(seed)
    model = LTXTransformer(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator) * 0.2
            param.copy_(noise + 1 if name.endswith("_norm.weight") else noise)
    return model


def diffusers_twin(model: LTXTransformer):  # noqa: ANN201 - diffusers is a test-only import
    """diffusers' ``LTXVideoTransformer3DModel`` built from ``to_diffusers()`` holding the same
    weights (renamed through :func:`diffusers_names`, loaded strictly)."""
    from diffusers import LTXVideoTransformer3DModel

    config = {k: v for k, v in model.config.to_diffusers().items() if not k.startswith("_")}
    twin = LTXVideoTransformer3DModel(**config).eval()
    twin.load_state_dict(diffusers_names(model.state_dict()), strict=True)
    return twin
