"""The UMT5 text encoder: both weight layouts, the original's trim-and-zero-pad, prompt cleaning,
and the published umt5-xxl configuration."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from transformers import UMT5EncoderModel

from studio.errors import CheckpointError
from studio.models.loading import parameters_on_meta
from studio.models.wan.keys import identify_layout, key_map
from studio.models.wan.text import (
    TEXT_LEN,
    clean_prompt,
    config_from_shapes,
    load_umt5_encoder,
    umt5_config,
)
from studio.models.weight_files import probe_weights
from tests.models.tiny_wan import TINY_UMT5, umt5_state, umt5_to_wan, write_tokenizer, write_umt5

PROMPTS = ["a cat runs", "a  red dog\n walks on the &amp;amp; snow slowly"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("umt5")
    state = umt5_state(seed=5)
    return {"hf": write_umt5(root / "hf", True, state),
            "wan": write_umt5(root / "wan", False, state),
            "tokenizer": write_tokenizer(root / "tok")}


@pytest.fixture(scope="module")
def reference() -> UMT5EncoderModel:
    """The transformers model with the same weights, loaded the ordinary way."""
    model = UMT5EncoderModel(TINY_UMT5)
    state = umt5_state(seed=5)
    model.load_state_dict(state)
    return model.eval()


def test_xxl_config_has_the_published_size() -> None:
    """docs/families/wan.md §4.1: 5,680,910,336 parameters; Wan's .pth has 242 tensors."""
    with parameters_on_meta():
        model = UMT5EncoderModel(umt5_config())
    assert sum(p.numel() for p in model.parameters()) == 5_680_910_336
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert len(umt5_to_wan(model.state_dict())) == 242
    bias = "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"
    assert shapes[bias] == (32, 64)
    assert shapes["encoder.block.0.layer.1.DenseReluDense.wi_0.weight"] == (10240, 4096)
    cfg = model.config
    assert (cfg.dense_act_fn, cfg.is_gated_act, cfg.relative_attention_max_distance) == (
        "gelu_new", True, 128)


def test_config_from_wan_shapes_is_xxl() -> None:
    """Sizes read from Wan-layout shapes (mapped to HF names) reproduce the umt5-xxl config."""
    with parameters_on_meta():
        model = UMT5EncoderModel(umt5_config())
    wan_shapes = {k: tuple(v.shape) for k, v in umt5_to_wan(model.state_dict()).items()}
    assert wan_shapes["blocks.0.ffn.gate.0.weight"] == (10240, 4096)
    assert wan_shapes["blocks.0.pos_embedding.embedding.weight"] == (32, 64)
    layout = identify_layout(wan_shapes)
    assert layout is not None and (layout.role, layout.layout) == ("text_encoder", "wan")
    mapping = key_map(layout, wan_shapes)
    derived = config_from_shapes({mapping[k]: s for k, s in wan_shapes.items()})
    expected = umt5_config()
    for name in ("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_heads",
                 "relative_attention_num_buckets", "relative_attention_max_distance"):
        assert getattr(derived, name) == getattr(expected, name), name


def test_clean_prompt() -> None:
    assert clean_prompt("  a &amp;amp; b\n\t  c  ") == "a & b c"
    assert clean_prompt("&lt;tag&gt;") == "<tag>"


@pytest.fixture(scope="module")
def encoders(files: dict[str, Path]) -> dict[str, object]:
    return {layout: load_umt5_encoder(probe_weights(files[layout]), files["tokenizer"],
                                      device="cpu", dtype=torch.float32)
            for layout in ("hf", "wan")}  # fmt: skip


def test_both_layouts_give_identical_contexts(encoders: dict[str, object]) -> None:
    hf, wan = (encoders[k].encode(PROMPTS) for k in ("hf", "wan"))
    assert hf.shape == (2, TEXT_LEN, TINY_UMT5.d_model)
    assert torch.equal(hf, wan)


def test_trim_and_zero_pad_like_the_original(encoders: dict[str, object],
                                             reference: UMT5EncoderModel) -> None:
    """Rows up to each prompt's token count (EOS included) equal the encoder run on that prompt
    alone without any padding; every row after it is exactly zero."""
    encoder = encoders["hf"]
    context = encoder.encode(PROMPTS)
    tokenizer = encoder.tokenizer
    for i, prompt in enumerate(PROMPTS):
        ids = tokenizer(clean_prompt(prompt), return_tensors="pt")["input_ids"]
        assert ids[0, -1].item() == tokenizer.eos_token_id
        n = ids.shape[1]
        with torch.no_grad():
            alone = reference(input_ids=ids).last_hidden_state[0]
        torch.testing.assert_close(context[i, :n], alone, rtol=1e-5, atol=1e-5)
        assert (context[i, :n].abs().sum(-1) > 0).all()
        assert torch.count_nonzero(context[i, n:]) == 0
    assert [len(tokenizer(clean_prompt(p))["input_ids"]) for p in PROMPTS] == [4, 10]


def test_long_prompts_are_truncated_with_eos(encoders: dict[str, object]) -> None:
    ids, mask = encoders["hf"].tokenize(["cat " * 700])
    assert ids.shape == (1, TEXT_LEN) and int(mask.sum()) == TEXT_LEN
    assert ids[0, -1].item() == encoders["hf"].tokenizer.eos_token_id


def test_loads_in_bfloat16(files: dict[str, Path]) -> None:
    encoder = load_umt5_encoder(probe_weights(files["wan"]), files["tokenizer"], device="cpu",
                                dtype=torch.bfloat16)
    assert encoder.model.shared.weight.dtype == torch.bfloat16
    assert encoder.model.encoder.embed_tokens.weight.data_ptr() == \
        encoder.model.shared.weight.data_ptr()
    expected = umt5_state(seed=5)["encoder.block.1.layer.1.DenseReluDense.wo.weight"]
    assert torch.equal(encoder.model.encoder.block[1].layer[1].DenseReluDense.wo.weight,
                       expected.to(torch.bfloat16))


def test_tokenizer_larger_than_vocabulary_is_refused(files: dict[str, Path],
                                                     tmp_path: Path) -> None:
    small = umt5_config(vocab_size=8, d_model=32, d_kv=8, d_ff=48, num_layers=1, num_heads=4)
    model = UMT5EncoderModel(small)
    path = write_umt5(tmp_path, False, dict(model.state_dict()), small)
    with pytest.raises(CheckpointError, match=r"tokenizer .* has \d+ tokens but the text encoder"):
        load_umt5_encoder(probe_weights(path), files["tokenizer"], device="cpu",
                          dtype=torch.float32)


def test_wrong_files_are_refused(files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="the tokenizer cannot be loaded"):
        load_umt5_encoder(probe_weights(files["hf"]), tmp_path, device="cpu",
                          dtype=torch.float32)
    other = tmp_path / "other.pth"
    torch.save({"conv2.weight": torch.zeros(1)}, other)
    with pytest.raises(CheckpointError, match=re.escape(f"{other} is not a UMT5 text encoder")):
        load_umt5_encoder(probe_weights(other), files["tokenizer"], device="cpu",
                          dtype=torch.float32)
