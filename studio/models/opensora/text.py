"""Open-Sora 2.0's two text encoders, run through ``transformers`` (never a folder's own code).

* ``google/t5-v1_1-xxl`` (``T5EncoderModel``): each prompt is tokenized with EOS, truncated and
  padded to 512 tokens, and the encoder runs on those ids with **no attention mask**, so the
  padding rows are real encoder outputs the MMDiT attends to; ``last_hidden_state`` is kept.
* ``openai/clip-vit-large-patch14`` (``CLIPTextModel``): 77 tokens, padded the same way, no
  mask; ``pooler_output`` (the final-norm state at the EOS token, before any projection) is kept.

Source: hpcaitech/Open-Sora ``opensora/models/text/conditioner.py`` (``HFEmbedder.forward``,
commit c4f981b4e62e07abd2fb4ac5a2d5efc173fc56b1: ``padding="max_length"``, ``truncation=True``,
``attention_mask=None``; the output key is ``pooler_output`` for CLIP, else
``last_hidden_state``) and ``configs/diffusion/inference/256px.py`` (commit
79df8a53b7ddc649194c26c22d0b32d9f7dd5e37: ``max_length=512`` for T5, ``77`` for CLIP). The
original loads T5's slow SentencePiece tokenizer with ``legacy=True``; the studio loads the
folder's tokenizer with ``AutoTokenizer`` (same vocabulary; the two modes differ only in text
that follows a special token, which prompts do not contain).

**Context layout.** The engine takes one context tensor per prompt batch
(:class:`studio.engine.model.TextEncoder`): it stacks the conditional and unconditional contexts
along B and pads L, so both encoders' outputs must travel in one tensor. :meth:`encode` returns

* ``context[:, :512, :]`` — T5's hidden states ``[B, 512, D_t5]`` (4096 for XXL);
* ``context[:, 512, :P]`` — CLIP-L's pooled vector ``[B, P]`` (768 for ViT-L/14), the rest of that
  row zero;

so ``[B, 513, D_t5]``. :func:`split_context` gives the denoiser both parts back. The pooled row
sits at a fixed index, so rows the engine might append after it are ignored.

The prompt suffix Open-Sora adds before encoding (:func:`prompt_with_suffix`) is applied by the
caller to the positive prompt only: the original appends it before the empty negative prompts
are added to the batch (``opensora/utils/sampling.py``, ``I2VDenoiser.prepare_guidance``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from studio.engine.cancel import NEVER, CancelToken
from studio.errors import CheckpointError
from studio.models.text_encoder_folder import CLIP_KIND, T5_KIND, load_encoder

#: T5 tokens per prompt (the MMDiT's text sequence length).
T5_LEN = 512
#: CLIP tokens per prompt.
CLIP_LEN = 77
#: CLIP-L's pooled width, the MMDiT's ``vec_in_dim``; the default for :func:`split_context`.
CLIP_L_WIDTH = 768

_FPS_ADDED = re.compile(r"\d+ FPS\.$")


def prompt_with_suffix(prompt: str, fps: int = 24, motion_score: int | str | None = "4") -> str:
    """The prompt as Open-Sora 2.0 encodes it: ``"raining, sea"`` → ``"raining, sea. 24 FPS.
    4 motion score."``.

    Stripped, made to end with ``"."``, then ``" {fps} FPS."`` unless it already ends with
    ``"<digits> FPS."``, then ``" {motion_score} motion score."`` (skipped for None, as the
    original skips it when the config has no ``motion_score``). Source: hpcaitech/Open-Sora
    ``opensora/utils/inference.py`` (``ensure_sentence_ends_with_period``,
    ``add_fps_info_to_text``, ``add_motion_score_to_text``; commit
    47dc4caf7a5e72c2ca0dafd303241072621c96dc), called in that order from
    ``scripts/diffusion/inference.py`` (commit aaeca9d3494b9895209d21f3b3230b8fc8e05e7b) with
    ``fps_save`` 24 and ``motion_score`` ``"4"`` (``configs/diffusion/inference/256px.py``).

    Raises:
        ValueError: for ``motion_score="dynamic"``, which the original asks a language model for.
    """
    if motion_score == "dynamic":
        raise ValueError("a 'dynamic' motion score needs a language model; give a number")
    text = prompt.strip()
    if not text.endswith("."):
        text += "."
    if not _FPS_ADDED.search(text):
        text += f" {fps} FPS."
    return text if motion_score is None else f"{text} {motion_score} motion score."


def pack_context(hidden: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
    """T5 states ``[B, L, D]`` + pooled ``[B, P]`` (P ≤ D) → context ``[B, L + 1, D]``.

    The pooled vector fills the first P entries of row L, zeros the rest; it takes the
    states' dtype.
    """
    batch, _, width = hidden.shape
    if pooled.shape[0] != batch or pooled.shape[1] > width:
        raise ValueError(f"pooled {list(pooled.shape)} does not fit states {list(hidden.shape)}")
    row = hidden.new_zeros(batch, 1, width)
    row[:, 0, : pooled.shape[1]] = pooled.to(hidden.dtype)
    return torch.cat((hidden, row), dim=1)


def split_context(
    context: torch.Tensor, pooled_width: int = CLIP_L_WIDTH, text_len: int = T5_LEN
) -> tuple[torch.Tensor, torch.Tensor]:
    """The inverse of :func:`pack_context`: ``[B, ≥ text_len + 1, D]`` → (T5 states
    ``[B, text_len, D]``, pooled ``[B, pooled_width]``), both views of ``context``."""
    if context.shape[1] <= text_len or context.shape[2] < pooled_width:
        raise ValueError(f"context {list(context.shape)} holds no {text_len} text rows and a "
                         f"pooled row of {pooled_width}")  # fmt: skip
    return context[:, :text_len], context[:, text_len, :pooled_width]


class OpenSoraTextEncoder:
    """Prompts → context ``[B, t5_len + 1, D_t5]`` (module docstring for the layout)."""

    def __init__(self, t5: nn.Module, t5_tokenizer: Any, clip: nn.Module, clip_tokenizer: Any,
                 *, t5_len: int = T5_LEN, clip_len: int = CLIP_LEN) -> None:  # fmt: skip
        self.t5, self.t5_tokenizer = t5.eval(), t5_tokenizer
        self.clip, self.clip_tokenizer = clip.eval(), clip_tokenizer
        self.t5_len, self.clip_len = t5_len, clip_len

    @property
    def device(self) -> torch.device:
        return next(self.t5.parameters()).device

    @property
    def width(self) -> int:
        """D_t5: the context's last dimension."""
        return int(self.t5.config.d_model)

    @property
    def pooled_width(self) -> int:
        """P: the pooled vector's width (CLIP's text hidden size)."""
        return int(self.clip.config.hidden_size)

    @staticmethod
    def tokenize(tokenizer: Any, prompts: Sequence[str], length: int) -> torch.Tensor:
        """Ids ``[B, length]`` int64 on the CPU: special tokens added, truncated, padded."""
        batch = tokenizer(list(prompts), truncation=True, max_length=length,
                          padding="max_length", return_tensors="pt")  # fmt: skip
        return batch["input_ids"]

    @torch.no_grad()
    def encode_t5(self, prompts: Sequence[str]) -> torch.Tensor:
        """``[B, t5_len, D_t5]``: ``last_hidden_state`` over the padded ids, no mask."""
        ids = self.tokenize(self.t5_tokenizer, prompts, self.t5_len).to(self.device)
        return self.t5(input_ids=ids, attention_mask=None).last_hidden_state

    @torch.no_grad()
    def encode_clip(self, prompts: Sequence[str]) -> torch.Tensor:
        """``[B, P]``: ``pooler_output`` over the padded ids, no mask."""
        device = next(self.clip.parameters()).device
        ids = self.tokenize(self.clip_tokenizer, prompts, self.clip_len).to(device)
        return self.clip(input_ids=ids, attention_mask=None).pooler_output

    def encode(self, prompts: Sequence[str]) -> torch.Tensor:
        """Encode prompts to the packed context ``[B, t5_len + 1, D_t5]`` on the T5's device."""
        return pack_context(self.encode_t5(prompts), self.encode_clip(prompts).to(self.device))


def load_opensora_text(
    t5_dir: str | Path,
    clip_dir: str | Path,
    device: torch.device | str,
    dtype: torch.dtype,
    cancel: CancelToken = NEVER,
) -> OpenSoraTextEncoder:
    """Both encoders from their transformers-layout folders, onto ``device`` in ``dtype``.

    Raises:
        CheckpointError: naming the folder when a part is missing or of the wrong kind, or when
            the two do not fit together (CLIP wider than T5, too few CLIP positions).
    """
    # CLIP first: it is small, so a wrong CLIP folder is reported before T5-XXL's ~9 GB load.
    clip, clip_tokenizer = load_encoder(Path(clip_dir), CLIP_KIND, device=device, dtype=dtype,
                                        cancel=cancel)  # fmt: skip
    t5, t5_tokenizer = load_encoder(Path(t5_dir), T5_KIND, device=device, dtype=dtype,
                                    cancel=cancel)  # fmt: skip
    _check_pair(t5.config, clip.config, Path(clip_dir))
    return OpenSoraTextEncoder(t5, t5_tokenizer, clip, clip_tokenizer)


def _check_pair(t5_config: Any, clip_config: Any, clip_dir: Path) -> None:
    """The pooled vector must fit one context row; CLIP must have a position per token."""
    if clip_config.hidden_size > t5_config.d_model:
        raise CheckpointError(
            f"the CLIP text encoder in {clip_dir} is {clip_config.hidden_size} wide, wider than "
            f"the T5's {t5_config.d_model}", CLIP_KIND.hint)  # fmt: skip
    if clip_config.max_position_embeddings < CLIP_LEN:
        raise CheckpointError(
            f"the CLIP text encoder in {clip_dir} has {clip_config.max_position_embeddings} "
            f"positions; Open-Sora encodes {CLIP_LEN} tokens", CLIP_KIND.hint)  # fmt: skip
