"""The demo recipe's decoder stage: a new decoder on a frozen encoder, the same DiT exported."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from studio.errors import CheckpointError, StudioError
from studio.models.demo.config import DIT_FILE, VAE_ARCH, VAE_FILE, DemoConfig
from studio.models.demo.loader import demo_model_dir
from studio.models.demo.train import continue_from_model, exported_steps, train_demo
from studio.models.demo.train_decoder import train_decoder_stage
from studio.models.demo.train_vae import (
    DECODER_RECIPE,
    ENCODER_PARTS,
    VaeRecipe,
    init_vae,
    load_encoder,
)
from studio.models.wan.vae_factory import build_vae


def test_load_encoder_copies_the_encoder_and_leaves_the_decoder() -> None:
    source = init_vae(VAE_ARCH, seed=1).state_dict()
    model = init_vae(VAE_ARCH, seed=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    load_encoder(model, source)
    for key, value in model.state_dict().items():
        expected = source[key] if key.startswith(ENCODER_PARTS) else before[key]
        assert torch.equal(value, expected), key
    assert any(not torch.equal(before[k], source[k]) for k in source if k.startswith("encoder."))


def test_load_encoder_refuses_weights_of_another_encoder() -> None:
    source = init_vae(VAE_ARCH, seed=1).state_dict()
    del source["encoder.conv1.weight"]
    with pytest.raises(CheckpointError, match="1 weights missing"):
        load_encoder(init_vae(VAE_ARCH, seed=2), source)


def test_the_rate_decays_along_a_half_cosine_to_lr_final() -> None:
    recipe = dataclasses.replace(DECODER_RECIPE, warmup=10)
    assert recipe.learning_rate(0) == pytest.approx(recipe.lr / 10)
    assert recipe.learning_rate(10) == pytest.approx(recipe.lr)
    middle = 10 + (recipe.steps - 10) // 2
    assert recipe.learning_rate(middle) == pytest.approx((recipe.lr + 1e-4) / 2, rel=1e-3)
    assert recipe.learning_rate(recipe.steps) == pytest.approx(1e-4)
    assert VaeRecipe().learning_rate(VaeRecipe().steps - 1) == VaeRecipe().lr  # constant
    assert not any(phase.train_encoder for phase in DECODER_RECIPE.phases)


def _encode(folder, video: torch.Tensor) -> torch.Tensor:
    config = DemoConfig.load(folder).vae
    vae = build_vae(config)
    vae.load_state_dict(load_file(str(folder / VAE_FILE)), strict=True)
    return vae.encode(video)


def test_the_decoder_stage_keeps_the_latents_and_the_dit(tmp_path) -> None:
    source = demo_model_dir()
    exported = train_decoder_stage(tmp_path, source, steps=2, resume=True,
                                   device=torch.device("cpu"), seed=0)  # fmt: skip
    config, original = DemoConfig.load(exported), DemoConfig.load(source)
    assert config.vae.decoder_dim == VAE_ARCH.decoder_dim and config.vae.dim == original.vae.dim
    assert config.vae.latent_mean == original.vae.latent_mean and config.dit == original.dit
    assert config.preview == original.preview
    dit, shipped_dit = load_file(str(exported / DIT_FILE)), load_file(str(source / DIT_FILE))
    assert dit.keys() == shipped_dit.keys()
    assert all(torch.equal(dit[k], shipped_dit[k]) for k in dit)
    video = torch.rand(1, 3, 5, 32, 32) * 2 - 1
    with torch.inference_mode():
        assert torch.equal(_encode(exported, video), _encode(source, video))
    assert exported_steps(exported) == exported_steps(source)  # it can be continued from
    with safe_open(str(exported / VAE_FILE), "pt") as handle:
        record = json.loads(handle.metadata()["recipe"])
    assert record["decoder"]["steps"] == 2 and record["decoder"]["source"] == str(source)
    assert json.loads((tmp_path / "decoder.json").read_text())["step"] == 2


def test_the_decoder_stage_needs_a_source_model(tmp_path) -> None:
    with pytest.raises(StudioError, match="--continue-from"):
        train_demo(tmp_path, stage="decoder", evaluate=False)


def test_the_decoder_stage_refuses_a_source_with_another_encoder(tmp_path) -> None:
    config = DemoConfig.load(demo_model_dir())
    other = dataclasses.replace(config, vae=dataclasses.replace(config.vae, dim=12))
    other.save(tmp_path)
    with pytest.raises(CheckpointError, match=r"VAE encoder \(dim\)"):
        train_decoder_stage(tmp_path / "out", tmp_path, steps=1, resume=True,
                            device=torch.device("cpu"), seed=0)  # fmt: skip


def test_continuing_refuses_an_export_with_another_decoder_width(tmp_path) -> None:
    config = DemoConfig.load(demo_model_dir())
    narrow = dataclasses.replace(config, vae=dataclasses.replace(config.vae, dec_dim=4))
    narrow.save(tmp_path)
    with pytest.raises(CheckpointError, match="--stage decoder"):
        continue_from_model(tmp_path / "out", tmp_path)
