"""The shipped demo model: it loads, and it does what held-out prompts ask (few steps, CPU)."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from safetensors import safe_open

from studio.engine.memory_forecast import forecast_memory
from studio.engine.memory_model import measure_vae_bytes_per_pixel
from studio.engine.pipeline import generate
from studio.engine.request import ConditioningItem, GenerationRequest
from studio.errors import CheckpointError
from studio.models.demo.analysis import analyse_clip, psnr
from studio.models.demo.config import DIT_FILE, VAE_FILE, DemoConfig
from studio.models.demo.data import evaluation_examples, render
from studio.models.demo.loader import VAE_BYTES_PER_PIXEL, demo_model_dir, load_demo_model
from studio.models.wan.dit import WanDiT
from studio.models.wan.vae_factory import build_vae

STEPS = 12
"""Fewer than the default 20 steps keeps the test quick; the model holds up at this count."""


@pytest.fixture(scope="module")
def model():
    return load_demo_model()


def test_shipped_files_are_small_and_documented() -> None:
    folder = demo_model_dir()
    sizes = [(folder / name).stat().st_size for name in (DIT_FILE, VAE_FILE)]
    assert sum(sizes) <= 30 * 2**20
    config = DemoConfig.load(folder)
    assert config.vae.z_dim == config.dit.in_dim == 16
    assert config.defaults.frames == 17 and config.defaults.fps >= 8
    with safe_open(str(folder / DIT_FILE), "pt") as f:
        recipe = json.loads(f.metadata()["recipe"])
    assert recipe["command"] == "studio train demo" and "dit" in recipe and "vae" in recipe


def test_loaded_model_matches_the_family_contract(model) -> None:
    assert (model.id, model.family) == ("demo", "demo")
    assert model.supports_image
    g = model.geometry
    assert (g.channels, g.temporal_factor, g.spatial_factor) == (16, 4, 8)
    assert model.geometry.latent_shape(17, 128, 128) == (1, 16, 5, 16, 16)
    context = model.text_encoder.encode(["a red circle moving left"])
    x = torch.zeros(1, 16, 5, 16, 16)
    v = model.denoiser(x, torch.ones(1, 5, 16, 16), context)
    assert v.shape == x.shape and v.isfinite().all()


def test_the_model_describes_itself_for_offload_and_the_forecast(model) -> None:
    """Modules, blocks and memory come from the family, and the VAE's working set constant is
    what a run on the meta device measures."""
    assert isinstance(model.modules.parts["dit"], WanDiT)
    assert len(model.modules.block_list("dit")) == DemoConfig.load(demo_model_dir()).dit.num_layers
    vae = model.modules.parts["vae"]
    with torch.device("meta"):
        meta_vae = build_vae(vae.config)
    assert measure_vae_bytes_per_pixel(meta_vae, model.geometry) == VAE_BYTES_PER_PIXEL
    memory = model.memory
    assert memory is not None and memory.dit_bytes == sum(
        p.numel() * p.element_size() for p in model.modules.parts["dit"].parameters())
    request = GenerationRequest(prompt="x", width=128, height=128, frames=17)
    assert forecast_memory(memory, request).ram_bytes > memory.weight_bytes


def test_missing_weights_are_reported(tmp_path) -> None:
    (tmp_path / "config.json").write_text((demo_model_dir() / "config.json").read_text())
    with pytest.raises(CheckpointError, match="missing"):
        load_demo_model(tmp_path)


def _generate(model, prompt: str, seed: int, conditioning=()) -> np.ndarray:
    request = GenerationRequest(prompt=prompt, seed=seed, steps=STEPS, guidance=5.0, shift=2.0,
                                conditioning=conditioning)  # fmt: skip
    return generate(model, request).video


@pytest.mark.slow
def test_held_out_prompts_get_their_colour_and_direction(model) -> None:
    """Six held-out prompts at 12 steps: a quick guard, not the 50-prompt evaluation (README)."""
    examples = evaluation_examples(50)[:6]
    colours = directions = 0
    for i, example in enumerate(examples):
        found = analyse_clip(_generate(model, example.caption, seed=i))
        colours += found.colour == example.spec.colour
        directions += found.direction == example.spec.direction
    assert colours >= 5, f"{colours}/6 colours right"
    assert directions >= 4, f"{directions}/6 directions right"


@pytest.mark.slow
def test_image_to_video_keeps_the_first_frame_and_moves_as_asked(model, tmp_path) -> None:
    """Six held-out prompts, each with its rendered first frame: the frame is kept, and the
    tracker reads the asked colour and direction over the whole clip (the pinned frame alone
    would pass whatever the model did after it)."""
    colours = directions = 0
    for i, example in enumerate(evaluation_examples(50)[:6]):
        reference = tmp_path / f"first-{i}.png"
        iio.imwrite(reference, render(example.spec)[0])
        video = _generate(model, example.caption, i, (ConditioningItem(str(reference), 0, 1.0),))
        assert psnr(video[0], iio.imread(reference)) >= 30.0
        found = analyse_clip(video)
        assert found.found_frames == len(video)
        colours += found.colour == example.spec.colour
        directions += found.direction == example.spec.direction
    assert colours >= 5, f"{colours}/6 colours right"
    assert directions >= 5, f"{directions}/6 directions right"
