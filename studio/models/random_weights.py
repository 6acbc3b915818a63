"""What every family's random-weight bench models share: a small word-level tokenizer made on
the spot (timing does not depend on which ids are looked up) and random initialisation straight
in the target precision."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

WORDS = ("a", "the", "cat", "dog", "fox", "bird", "runs", "walks", "flies", "jumps", "in", "on",
         "over", "under", "snow", "grass", "river", "sky", "red", "blue", "green", "slowly",
         "quickly", "big", "small", "sunny", "night", "day", "video", "of", "fps", "motion")
#: Ids of the word tokenizer's special tokens (CLIP pools at the first EOS).
PAD, EOS, UNK = 0, 1, 2
#: The tokenizer's vocabulary when no cap is given.
VOCAB_SIZE = 3 + len(WORDS)


def word_tokenizer(vocab_size: int = VOCAB_SIZE) -> Any:
    """A word-level fast tokenizer: pad 0, EOS 1 (appended), unknown 2, then :data:`WORDS`
    (as many as ``vocab_size`` leaves room for)."""
    vocab = {"<pad>": PAD, "</s>": EOS, "<unk>": UNK}
    for word in WORDS[: max(0, vocab_size - 3)]:
        vocab[word] = len(vocab)
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", EOS)]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>",
                                   eos_token="</s>", unk_token="<unk>")  # fmt: skip


@contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Create new parameters in ``dtype`` (random init straight in the target precision)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)
