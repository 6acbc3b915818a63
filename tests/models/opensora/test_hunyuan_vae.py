"""HunyuanVideo VAE (Open-Sora 2.0's ``hunyuan_vae.safetensors``): parity with diffusers'
AutoencoderKLHunyuanVideo (test-only oracle) on a tiny random config, untiled and tiled;
causality; the published configuration's key set and parameter count on the meta device."""

from __future__ import annotations

import copy

import pytest
import torch
from diffusers import AutoencoderKLHunyuanVideo

from studio.engine.cancel import CancelToken
from studio.errors import Cancelled, CheckpointError, InvalidRequest
from studio.models.opensora.hunyuan_vae import HunyuanVAE, load_hunyuan_vae
from studio.models.opensora.hunyuan_vae_blocks import stage_factors
from studio.models.opensora.hunyuan_vae_config import (
    NO_TILING,
    OPENSORA_HUNYUAN_VAE,
    HunyuanVAEConfig,
    HunyuanVAETiling,
    config_from_state_dict,
)

TINY = HunyuanVAEConfig(
    latent_channels=4,
    block_out_channels=(8, 16, 16, 16),
    layers_per_block=1,
    norm_num_groups=4,
    scale_factor=0.7,
    shift_factor=0.1,
)
TOLERANCE = 1e-4


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def oracle_for(config: HunyuanVAEConfig) -> AutoencoderKLHunyuanVideo:
    return AutoencoderKLHunyuanVideo(
        latent_channels=config.latent_channels,
        block_out_channels=config.block_out_channels,
        layers_per_block=config.layers_per_block,
        norm_num_groups=config.norm_num_groups,
        scaling_factor=config.scale_factor,
    )


def seeded_state(model: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights of the module's shapes (GroupNorm scales around 1, the rest small)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, tensor in model.state_dict().items():
        noise = torch.randn(tensor.shape, generator=gen)
        fan_in = tensor[0].numel() if tensor.ndim > 1 else 1
        if "norm" in name and name.endswith("weight"):
            state[name] = 1 + 0.1 * noise
        else:
            state[name] = noise / fan_in**0.5 if tensor.ndim > 1 else 0.05 * noise
    return state


@pytest.fixture(scope="module")
def pair() -> tuple[HunyuanVAE, AutoencoderKLHunyuanVideo]:
    torch.manual_seed(0)
    oracle = oracle_for(TINY).eval()
    state = seeded_state(oracle)
    oracle.load_state_dict(state, strict=True)
    oracle.use_framewise_encoding = oracle.use_framewise_decoding = False
    ours = load_hunyuan_vae(state, config=TINY, tiling=NO_TILING).eval()
    return ours, oracle


def clip(frames: int = 9, size: int = 32, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand((1, 3, frames, size, size), generator=gen) * 2 - 1


def test_names_match_diffusers_and_load_strictly(pair) -> None:
    ours, oracle = pair
    shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in oracle.state_dict().items()}
    assert config_from_state_dict(ours.state_dict(), norm_num_groups=4) == HunyuanVAEConfig(
        latent_channels=4, block_out_channels=(8, 16, 16, 16), layers_per_block=1, norm_num_groups=4
    )


def test_encode_equals_diffusers_latent_mean(pair) -> None:
    ours, oracle = pair
    video = clip()
    with torch.no_grad():
        mean = oracle.encode(video).latent_dist.mode()
    expected = TINY.scale_factor * (mean - TINY.shift_factor)
    got = ours.encode(video)
    assert got.shape == (1, 4, 3, 4, 4)
    error = relative_error(got, expected)
    print(f"encode relative error {error:.2e}")
    assert error < TOLERANCE


def test_decode_equals_diffusers(pair) -> None:
    ours, oracle = pair
    latent = torch.randn((1, 4, 3, 4, 4), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = oracle.decode(latent / TINY.scale_factor + TINY.shift_factor).sample
    got = ours.decode(latent)
    assert got.shape == (1, 3, 9, 32, 32)
    error = relative_error(got, expected)
    print(f"decode relative error {error:.2e}")
    assert error < TOLERANCE


def test_single_frame_equals_diffusers(pair) -> None:
    """An image (T = 1) encodes and decodes as diffusers does."""
    ours, oracle = pair
    image = clip()[:, :, :1]
    with torch.no_grad():
        mean = oracle.encode(image).latent_dist.mode()
        pixels = oracle.decode(mean).sample
    latent = ours.encode(image)
    assert relative_error(latent, TINY.scale_factor * (mean - TINY.shift_factor)) < TOLERANCE
    assert relative_error(ours.decode(latent), pixels) < TOLERANCE


def test_layers_are_causal_but_group_norm_spans_the_clip(pair) -> None:
    """Convolutions and the mid-block attention never look at later frames; the GroupNorms
    take their statistics over the whole clip (time included), in Open-Sora and diffusers
    alike, so frame 0's latent still depends slightly on the frames after it."""
    ours, oracle = pair
    x = torch.randn((1, 16, 3, 4, 4), generator=torch.Generator().manual_seed(5))
    changed = x.clone()
    changed[:, :, 1:] += 1.0
    conv = ours.encoder.down_blocks[2].resnets[0].conv1
    attention = copy.deepcopy(ours.encoder.mid_block.attentions[0])
    attention.group_norm = torch.nn.Identity()  # its own GroupNorm spans the clip too
    with torch.no_grad():
        for layer in (conv, attention, ours.decoder.up_blocks[1].upsamplers[0]):
            first = layer(x)[:, :, 0]
            torch.testing.assert_close(layer(changed)[:, :, 0], first, rtol=0, atol=1e-6)
        whole = oracle.encode(clip()).latent_dist.mode()[:, :, 0]
        alone = oracle.encode(clip()[:, :, :1]).latent_dist.mode()[:, :, 0]
    assert relative_error(alone, whole) > 1e-3  # the oracle is not frame-0-causal either
    got = ours.encode(clip()[:, :, :1])[:, :, 0]
    assert relative_error(got, TINY.scale_factor * (alone - TINY.shift_factor)) < TOLERANCE


@pytest.mark.parametrize("size, stride", [(32, 24), (32, 16)])
def test_tiled_decode_equals_diffusers_tiled_decode(pair, size: int, stride: int) -> None:
    ours, oracle = pair
    latent = torch.randn((1, 4, 2, 10, 7), generator=torch.Generator().manual_seed(3))
    oracle.enable_tiling(size, size, None, stride, stride)
    try:
        with torch.no_grad():
            expected = oracle.decode(latent / TINY.scale_factor + TINY.shift_factor).sample
    finally:
        oracle.disable_tiling()
    ours.tiling = HunyuanVAETiling(size=size, stride=stride)
    try:
        got = ours.decode(latent)
    finally:
        ours.tiling = NO_TILING
    assert got.shape == (1, 3, 5, 80, 56)
    error = relative_error(got, expected)
    print(f"tiled decode ({size}/{stride}) relative error {error:.2e}")
    assert error < TOLERANCE
    assert relative_error(ours.decode(latent), expected) > 10 * TOLERANCE  # tiling did something


def test_tiled_encode_equals_diffusers_tiled_encode(pair) -> None:
    ours, oracle = pair
    video = clip(frames=5, size=80, seed=4)[..., :56]
    oracle.enable_tiling(32, 32, None, 24, 24)
    try:
        with torch.no_grad():
            mean = oracle.encode(video).latent_dist.mode()
    finally:
        oracle.disable_tiling()
    ours.tiling = HunyuanVAETiling(size=32, stride=24)
    try:
        got = ours.encode(video)
    finally:
        ours.tiling = NO_TILING
    error = relative_error(got, TINY.scale_factor * (mean - TINY.shift_factor))
    print(f"tiled encode relative error {error:.2e}")
    assert got.shape == (1, 4, 2, 10, 7) and error < TOLERANCE


def test_cancel_is_checked_between_tiles(pair) -> None:
    ours, _ = pair
    token = CancelToken()
    token.set()
    ours.tiling = HunyuanVAETiling(size=32, stride=24)
    try:
        with pytest.raises(Cancelled):
            ours.decode(torch.zeros((1, 4, 1, 8, 8)), token)
    finally:
        ours.tiling = NO_TILING


def test_bad_shapes_are_refused(pair) -> None:
    ours, _ = pair
    with pytest.raises(InvalidRequest):
        ours.encode(torch.zeros((1, 3, 8, 32, 32)))
    with pytest.raises(InvalidRequest):
        ours.encode(torch.zeros((1, 3, 9, 30, 32)))
    with pytest.raises(InvalidRequest):
        ours.decode(torch.zeros((1, 5, 1, 4, 4)))
    with pytest.raises(CheckpointError):
        HunyuanVAEConfig(block_out_channels=(8, 12, 16, 16), norm_num_groups=8)


def test_published_config_on_meta_device() -> None:
    """Open-Sora's ``AutoencoderKLCausal3D`` and diffusers' model have the same module tree
    (read from both sources), so the key set and shapes of diffusers' default model are the
    ones ``hunyuan_vae.safetensors`` must hold."""
    with torch.device("meta"):
        ours = HunyuanVAE(OPENSORA_HUNYUAN_VAE)
        oracle = AutoencoderKLHunyuanVideo()
    shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in oracle.state_dict().items()}
    count = sum(p.numel() for p in ours.parameters())
    print(f"published HunyuanVideo VAE: {count:,} parameters, {len(shapes)} tensors")
    assert count == sum(p.numel() for p in oracle.parameters())
    assert config_from_state_dict(ours.state_dict()) == OPENSORA_HUNYUAN_VAE
    assert stage_factors(4, 8, 4) == [(1, 2, 2), (2, 2, 2), (2, 2, 2), (1, 1, 1)]


def test_wrong_file_is_a_checkpoint_error() -> None:
    with pytest.raises(CheckpointError):
        load_hunyuan_vae({"encoder.conv1.weight": torch.zeros(1)})
