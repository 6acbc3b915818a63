"""Open-Sora 2.0's text encoders: tiny random T5 and CLIP folders loaded through the studio."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
)

from studio.errors import CheckpointError
from studio.models.opensora.text import (
    CLIP_LEN,
    T5_LEN,
    load_opensora_text,
    pack_context,
    prompt_with_suffix,
    split_context,
)
from tests.models.opensora.tiny_opensora import TINY_CLIP, TINY_T5, write_clip, write_t5

PROMPTS = ["a cat runs in the snow", "raining, sea"]


def ids(encoder_tokenizer, prompts: list[str], length: int) -> torch.Tensor:
    return encoder_tokenizer(prompts, truncation=True, max_length=length, padding="max_length",
                             return_tensors="pt")["input_ids"]  # fmt: skip


@pytest.mark.parametrize("full", [False, True], ids=["encoders", "full-models"])
def test_context_is_unmasked_t5_states_and_clip_pooled(tmp_path: Path, full: bool) -> None:
    t5_ref = write_t5(tmp_path / "t5", full)
    clip_ref = write_clip(tmp_path / "clip", full)
    encoder = load_opensora_text(tmp_path / "t5", tmp_path / "clip", "cpu", torch.float32)
    context = encoder.encode(PROMPTS)
    assert context.shape == (2, T5_LEN + 1, TINY_T5["d_model"])

    t5_ids = ids(encoder.t5_tokenizer, PROMPTS, T5_LEN)
    clip_ids = ids(encoder.clip_tokenizer, PROMPTS, CLIP_LEN)
    assert (t5_ids[:, -1] == 0).all() and (clip_ids[:, -1] == 1).all()  # padded, not just cut
    t5_net = t5_ref.encoder if full else t5_ref
    clip_net = clip_ref.text_model if full else clip_ref
    with torch.no_grad():
        hidden = t5_net(input_ids=t5_ids).last_hidden_state
        masked = t5_net(input_ids=t5_ids, attention_mask=(t5_ids != 0).long()).last_hidden_state
        pooled = clip_net(input_ids=clip_ids).pooler_output
    assert not torch.allclose(hidden, masked, atol=1e-4)  # the mask would matter: none is used
    states, vector = split_context(context, pooled_width=TINY_CLIP["hidden_size"])
    torch.testing.assert_close(states, hidden, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(vector, pooled, rtol=1e-5, atol=1e-5)
    assert (context[:, T5_LEN, TINY_CLIP["hidden_size"] :] == 0).all()


def test_split_context_inverts_packing() -> None:
    hidden, pooled = torch.randn(3, 7, 12), torch.randn(3, 5)
    context = pack_context(hidden, pooled)
    assert context.shape == (3, 8, 12)
    states, vector = split_context(context, pooled_width=5, text_len=7)
    assert torch.equal(states, hidden) and torch.equal(vector, pooled)
    padded = torch.nn.functional.pad(context, (0, 0, 0, 2))  # as the engine pads L
    assert torch.equal(split_context(padded, pooled_width=5, text_len=7)[1], pooled)
    with pytest.raises(ValueError):
        pack_context(hidden, torch.randn(3, 13))


def test_prompt_suffix_matches_open_sora() -> None:
    assert prompt_with_suffix("raining, sea") == "raining, sea. 24 FPS. 4 motion score."
    assert prompt_with_suffix("A cat runs.  ") == "A cat runs. 24 FPS. 4 motion score."
    assert prompt_with_suffix("a dog", fps=16, motion_score=7) == "a dog. 16 FPS. 7 motion score."
    assert prompt_with_suffix("sea. 30 FPS.") == "sea. 30 FPS. 4 motion score."  # FPS kept
    assert prompt_with_suffix("sea", motion_score=None) == "sea. 24 FPS."
    with pytest.raises(ValueError):
        prompt_with_suffix("sea", motion_score="dynamic")


def test_folder_without_weights_is_refused(tmp_path: Path) -> None:
    write_t5(tmp_path / "t5")
    write_clip(tmp_path / "clip")
    (tmp_path / "t5" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors") as info:
        load_opensora_text(tmp_path / "t5", tmp_path / "clip", "cpu", torch.float32)
    assert str(tmp_path / "t5") in str(info.value)


def test_t5_where_clip_is_expected_is_refused(tmp_path: Path) -> None:
    write_t5(tmp_path / "t5")
    with pytest.raises(CheckpointError, match="'t5' model") as info:
        load_opensora_text(tmp_path / "t5", tmp_path / "t5", "cpu", torch.float32)
    assert str(tmp_path / "t5") in str(info.value)


def test_clip_weights_under_a_t5_config_are_refused(tmp_path: Path) -> None:
    write_t5(tmp_path / "t5")
    clip = CLIPTextModel(CLIPTextConfig(**TINY_CLIP))
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()},
              str(tmp_path / "t5" / "model.safetensors"))  # fmt: skip
    write_clip(tmp_path / "clip")
    with pytest.raises(CheckpointError, match="T5 text encoder") as info:
        load_opensora_text(tmp_path / "t5", tmp_path / "clip", "cpu", torch.float32)
    assert str(tmp_path / "t5") in str(info.value)


def test_folder_asking_for_custom_code_is_refused(tmp_path: Path) -> None:
    write_t5(tmp_path / "t5")
    write_clip(tmp_path / "clip")
    config_path = tmp_path / "clip" / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["auto_map"] = {"AutoModel": "evil.Model"}
    config_path.write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(CheckpointError, match="code"):
        load_opensora_text(tmp_path / "t5", tmp_path / "clip", "cpu", torch.float32)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_load(tmp_path: Path, dtype: torch.dtype) -> None:
    write_t5(tmp_path / "t5")
    write_clip(tmp_path / "clip")
    encoder = load_opensora_text(tmp_path / "t5", tmp_path / "clip", "cpu", dtype)
    context = encoder.encode(["a cat"])
    assert context.dtype == dtype and context.shape == (1, T5_LEN + 1, 32)
    assert torch.isfinite(context).all()
    wo = encoder.t5.encoder.block[0].layer[1].DenseReluDense.wo.weight
    # as transformers loads T5 in float16: the feed-forward output projection stays float32
    assert wo.dtype == (torch.float32 if dtype == torch.float16 else dtype)
