"""The demo model's MiniLM text encoder: shapes, zeroed padding, determinism, meaning."""

from __future__ import annotations

import pytest
import torch

from studio.models.demo.text import TEXT_DIM, MiniLMTextEncoder, encode_in_batches, minilm_folder


@pytest.fixture(scope="module")
def encoder() -> MiniLMTextEncoder:
    return MiniLMTextEncoder(length=24)


def test_folder_is_the_packaged_model() -> None:
    folder = minilm_folder()
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()


def test_shape_and_zeroed_padding(encoder: MiniLMTextEncoder) -> None:
    prompts = ["a red circle moving left", "", "a " + "very " * 40 + "long prompt"]
    context = encoder.encode(prompts)
    assert context.shape == (3, 24, TEXT_DIM) and context.dtype == torch.float32
    rows = context.abs().sum(-1) > 0
    n_tokens = len(encoder.tokenizer("a red circle moving left")["input_ids"])  # with CLS/SEP
    assert rows[0].tolist() == [True] * n_tokens + [False] * (24 - n_tokens)
    assert rows[1].tolist() == [True, True] + [False] * 22  # [CLS] [SEP]
    assert rows[2].all()  # truncated to the fixed length


def test_deterministic_and_batch_independent(encoder: MiniLMTextEncoder) -> None:
    a = encoder.encode(["a blue square rising", "a white dot"])
    b = encoder.encode(["a white dot"])
    torch.testing.assert_close(a[1:], b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(encoder.encode(["a blue square rising"]), a[:1])
    many = encode_in_batches(encoder, ["a white dot"] * 5, batch=2)
    assert many.shape == (5, 24, TEXT_DIM)
    torch.testing.assert_close(many[4:], b, atol=1e-5, rtol=1e-5)


def test_embeddings_carry_meaning(encoder: MiniLMTextEncoder) -> None:
    """Mean-pooled embeddings: a paraphrase is closer than a different colour and motion."""

    def pooled(text: str) -> torch.Tensor:
        context = encoder.encode([text])[0]
        keep = context.abs().sum(-1) > 0
        return torch.nn.functional.normalize(context[keep].mean(0), dim=0)

    anchor = pooled("a red circle moving left")
    paraphrase = pooled("a crimson disc drifting to the left")
    other = pooled("a green square moving up")
    assert anchor @ paraphrase > anchor @ other
