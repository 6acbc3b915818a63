"""LTX-Video's T5: 256 tokens padded to max length, the attention mask passed to the encoder
and carried as the context's last channel; the folder and the single-file forms agree."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from studio.models.ltx.text import (
    TEXT_LEN,
    LTXTextEncoder,
    load_t5_file,
    load_t5_folder,
    split_context,
)
from tests.models.ltx.tiny_ltx import write_t5, write_tokenizer

PROMPTS = ["a cat runs in the snow", "the dog"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    root = tmp_path_factory.mktemp("t5")
    model = write_t5(root / "text_encoder", 24)
    return root / "text_encoder", model


def test_context_carries_the_mask_at_256(folder: tuple[Path, torch.nn.Module]) -> None:
    path, reference = folder
    t5, tokenizer = load_t5_folder(path, torch.device("cpu"), torch.float32)
    context = LTXTextEncoder(t5, tokenizer).encode(PROMPTS)
    assert context.shape == (2, TEXT_LEN, 25)
    batch = tokenizer(PROMPTS, padding="max_length", max_length=256, truncation=True,
                      return_tensors="pt")
    states, mask = split_context(context)
    assert mask.tolist() == batch["attention_mask"].float().tolist()
    assert mask[0].sum() == 7 and mask[1].sum() == 3  # words + EOS
    with torch.no_grad():
        expected = reference(input_ids=batch["input_ids"],
                             attention_mask=batch["attention_mask"]).last_hidden_state
    torch.testing.assert_close(states, expected, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        unmasked = reference(input_ids=batch["input_ids"]).last_hidden_state
    assert not torch.allclose(states[1, :3], unmasked[1, :3], atol=1e-4)  # the mask matters


def test_long_prompts_are_truncated_to_256(folder: tuple[Path, torch.nn.Module]) -> None:
    t5, tokenizer = load_t5_folder(folder[0], torch.device("cpu"), torch.float32)
    context = LTXTextEncoder(t5, tokenizer).encode(["cat " * 400])
    assert context.shape[1] == TEXT_LEN and split_context(context)[1].sum() == TEXT_LEN


def test_single_file_matches_the_folder(folder: tuple[Path, torch.nn.Module],
                                        tmp_path: Path) -> None:
    path, reference = folder
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()
               if k != "encoder.embed_tokens.weight"}, str(tmp_path / "t5xxl_tiny.safetensors"))
    write_tokenizer(tmp_path / "tokenizer")
    t5, tokenizer = load_t5_file(tmp_path / "t5xxl_tiny.safetensors", tmp_path / "tokenizer",
                                 torch.device("cpu"), torch.float32)
    one = LTXTextEncoder(t5, tokenizer).encode(PROMPTS)
    t5b, tokenizer_b = load_t5_folder(path, torch.device("cpu"), torch.float32)
    torch.testing.assert_close(one, LTXTextEncoder(t5b, tokenizer_b).encode(PROMPTS))
