"""LTX-Video's text encoder: T5-v1.1-XXL through ``transformers`` (never a folder's own code).

Each prompt is tokenized with its EOS, truncated and padded to 256 tokens, and the encoder runs
**with** the attention mask; the transformer's cross-attention then ignores the padding rows
(Lightricks/LTX-Video ``pipeline_ltx_video.py`` ``encode_prompt``: ``padding="max_length"``,
``max_length`` = ``text_encoder_max_tokens`` = 256, ``attention_mask`` passed; docs/families/ltx.md
§3).

**Context layout.** The engine takes one context tensor per prompt batch and zero-pads contexts
it stacks, so the mask travels as one extra channel: :meth:`LTXTextEncoder.encode` returns
``[B, 256, D + 1]`` with ``context[..., :D]`` T5's hidden states and ``context[..., D]`` 1 for a
token, 0 for padding (rows the engine pads with zeros read as padding). :func:`split_context`
gives the denoiser both back.

T5 comes as a transformers folder (:func:`load_t5_folder`, read by
:mod:`studio.models.text_encoder_folder`, which Open-Sora's T5 shares) or as one file such as
``t5xxl_fp16.safetensors`` whose configuration is read from its shapes (:func:`load_t5_file`),
with a tokenizer folder beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import T5Config, T5EncoderModel

from studio.engine.cancel import NEVER, CancelToken
from studio.errors import CheckpointError
from studio.models import hf_folder
from studio.models.loading import load_module
from studio.models.text_encoder_folder import T5_KIND, load_encoder
from studio.models.weight_files import probe_weights

#: T5 tokens per prompt.
TEXT_LEN = 256
LTX_T5 = replace(T5_KIND, hint="use the T5-v1.1-XXL text_encoder/ and tokenizer/ folders "
                               "published with LTX-Video (PixArt-alpha/PixArt-XL-2-1024-MS)")


def with_mask(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """States ``[B, L, D]`` and mask ``[B, L]`` (1 token / 0 padding) → ``[B, L, D + 1]``."""
    return torch.cat((hidden, mask.to(hidden.dtype)[..., None]), dim=-1)


def split_context(context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, L, D + 1]`` → (states ``[B, L, D]``, mask ``[B, L]`` as 0 / 1 in the states'
    dtype); the inverse of :func:`with_mask`."""
    return context[..., :-1], (context[..., -1] > 0.5).to(context.dtype)


class LTXTextEncoder:
    """Prompts → context ``[B, text_len, D + 1]`` (module docstring for the layout)."""

    def __init__(self, t5: nn.Module, tokenizer: Any, text_len: int = TEXT_LEN) -> None:
        self.t5, self.tokenizer, self.text_len = t5.eval(), tokenizer, text_len

    @property
    def device(self) -> torch.device:
        return next(self.t5.parameters()).device

    @property
    def width(self) -> int:
        """D: T5's hidden width (the context carries D + 1 channels)."""
        return int(self.t5.config.d_model)

    def tokenize(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, mask), each ``[B, text_len]`` int64 on the CPU: EOS added, truncated, padded."""
        batch = self.tokenizer(list(prompts), truncation=True, max_length=self.text_len,
                               padding="max_length", add_special_tokens=True,
                               return_tensors="pt")  # fmt: skip
        return batch["input_ids"], batch["attention_mask"]

    @torch.no_grad()
    def encode(self, prompts: Sequence[str]) -> torch.Tensor:
        """``[B, text_len, D + 1]`` on the T5's device: masked states and the mask channel."""
        ids, mask = (t.to(self.device) for t in self.tokenize(prompts))
        hidden = self.t5(input_ids=ids, attention_mask=mask).last_hidden_state
        return with_mask(hidden, mask)


def load_t5_folder(folder: Path, device: torch.device, dtype: torch.dtype,
                   cancel: CancelToken = NEVER) -> tuple[nn.Module, Any]:
    """T5 and its tokenizer from one transformers folder."""
    return load_encoder(Path(folder), LTX_T5, device=device, dtype=dtype, cancel=cancel)


def t5_config_from_shapes(shapes: Mapping[str, tuple[int, ...]], label: str) -> T5Config:
    """A T5 v1.1 encoder configuration read from a single file's tensor shapes.

    Raises:
        CheckpointError: the shapes are not a gated-GELU T5 encoder's.
    """
    try:
        vocab, width = shapes.get("shared.weight") or shapes["encoder.embed_tokens.weight"]
        heads = shapes["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"][1]
        inner = shapes["encoder.block.0.layer.0.SelfAttention.q.weight"][0]
        d_ff = shapes["encoder.block.0.layer.1.DenseReluDense.wi_0.weight"][0]
    except (KeyError, ValueError, IndexError) as exc:
        raise CheckpointError(f"{label} is not a T5 v1.1 encoder (no {exc})", LTX_T5.hint) \
            from exc
    layers = len({k.split(".")[2] for k in shapes if k.startswith("encoder.block.")})
    return T5Config(vocab_size=vocab, d_model=width, d_kv=inner // heads, d_ff=d_ff,
                    num_layers=layers, num_heads=heads, feed_forward_proj="gated-gelu",
                    dropout_rate=0.0, is_encoder_decoder=False)  # fmt: skip


def load_t5_file(path: Path, tokenizer_dir: Path, device: torch.device, dtype: torch.dtype,
                 cancel: CancelToken = NEVER) -> tuple[nn.Module, Any]:
    """T5 from one safetensors file (encoder keys; a decoder is not read) and the tokenizer
    from ``tokenizer_dir``."""
    weights = probe_weights(path)
    keep = {k: k for k in weights.tensors() if k == "shared.weight" or k.startswith("encoder.")}
    weights = replace(weights, headers=tuple(
        replace(h, tensors={k: v for k, v in h.tensors.items() if k in keep})
        for h in weights.headers))  # fmt: skip
    config = t5_config_from_shapes(weights.shapes(), weights.label)
    tokenizer = hf_folder.load_tokenizer(Path(tokenizer_dir))
    if len(tokenizer) > config.vocab_size:
        raise CheckpointError(f"the tokenizer in {tokenizer_dir} has {len(tokenizer)} tokens but "
                              f"{path.name} knows {config.vocab_size}", LTX_T5.hint)
    model = load_module(lambda: T5EncoderModel(config), weights, keep, device=device,
                        dtype=dtype, tied=LTX_T5.tied, what="T5 text encoder",
                        cancel=cancel)  # fmt: skip
    return model.eval().requires_grad_(False), tokenizer
