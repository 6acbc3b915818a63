"""LTX-Video causal video VAE: encode/decode parity with diffusers' AutoencoderKLLTXVideo
(test-only oracle) on tiny random 0.9.0 / 0.9.1 / 0.9.5 configurations, the single-file key
layout (strict loading, statistics rows), diffusers names both ways (checked against diffusers'
own single-file converter on the published configurations), config round trips and refusals."""

from __future__ import annotations

import pytest
import torch
from diffusers import AutoencoderKLLTXVideo
from diffusers.loaders.single_file_utils import convert_ltx_vae_checkpoint_to_diffusers

from studio.errors import CheckpointError, InvalidRequest
from studio.models.ltx.vae import LTXVideoVAE
from studio.models.ltx.vae_config import LTXVAEConfig
from studio.models.ltx.vae_diffusers import config_from_diffusers, config_to_diffusers
from studio.models.ltx.vae_keys import DIFFUSERS, ORIGINAL, diffusers_names, layout, own_vae_state
from studio.models.ltx.vae_original import config_from_original, config_to_original
from studio.models.ltx.vae_presets import LTXV_090, PUBLISHED, published_for
from tests.models.ltx.tiny_ltx_vae import TINY, TINY_090, TINY_091

TOLERANCE = 1e-4
#: ``OURS_VAE_CONFIG`` as LTX-Video's ``ltx_video/utils/diffusers_config_mapping.py`` writes it.
ORIGINAL_090 = {
    "_class_name": "CausalVideoAutoencoder", "dims": 3, "in_channels": 3, "out_channels": 3,
    "latent_channels": 128,
    "blocks": [["res_x", 4], ["compress_all", 1], ["res_x_y", 1], ["res_x", 3],
               ["compress_all", 1], ["res_x_y", 1], ["res_x", 3], ["compress_all", 1],
               ["res_x", 3], ["res_x", 4]],
    "scaling_factor": 1.0, "norm_layer": "pixel_norm", "patch_size": 4,
    "latent_log_var": "uniform", "use_quant_conv": False, "causal_decoder": False,
}


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def random_vae(config: LTXVAEConfig, seed: int = 0) -> LTXVideoVAE:
    """Random weights large enough that every path (noise scales, tables) matters."""
    vae = LTXVideoVAE(config).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in vae.state_dict().items():
            if name.endswith("timestep_scale_multiplier"):
                continue
            scale = 0.3 if tensor.ndim > 1 else 0.1
            tensor.copy_(torch.randn(tensor.shape, generator=generator) * scale)
        vae.per_channel_statistics.std().abs_().add_(0.5)
    return vae


def oracle_for(vae: LTXVideoVAE) -> AutoencoderKLLTXVideo:
    oracle = AutoencoderKLLTXVideo(**config_to_diffusers(vae.config)).eval()
    oracle.load_state_dict(diffusers_names(vae.state_dict(), vae.config), strict=True)
    return oracle


def clip(batch: int = 1) -> torch.Tensor:
    return torch.rand(batch, 3, 9, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1


@pytest.mark.parametrize("version", sorted(TINY))
def test_encode_matches_diffusers(version: str) -> None:
    vae = random_vae(TINY[version])
    oracle = oracle_for(vae)
    video = clip(2)
    with torch.no_grad():
        ours = vae.encode(video)
        theirs = oracle.encode(video).latent_dist.mean
    assert ours.shape == (2, 16, 2, 2, 2)
    assert relative_error(ours, theirs) < TOLERANCE


@pytest.mark.parametrize("version", sorted(TINY))
def test_decode_matches_diffusers(version: str) -> None:
    vae = random_vae(TINY[version])
    oracle = oracle_for(vae)
    z = torch.randn(2, 16, 2, 2, 2, generator=torch.Generator().manual_seed(2))
    timestep = torch.tensor([0.05, 0.4]) if vae.timestep_conditioning else None
    with torch.no_grad():
        torch.manual_seed(3)  # 0.9.1 injects noise from the global generator, in the same order
        ours = vae.decode(z, timestep)
        torch.manual_seed(3)
        theirs = oracle.decode(z, timestep).sample
    assert ours.shape == (2, 3, 9, 64, 64)
    assert relative_error(ours, theirs) < TOLERANCE


def test_decode_timestep_and_noise_matter() -> None:
    vae = random_vae(TINY_091)
    z = torch.randn(1, 16, 2, 2, 2)
    with torch.no_grad():
        first = vae.decode(z, 0.05, torch.Generator().manual_seed(0))
        again = vae.decode(z, 0.05, torch.Generator().manual_seed(0))
        later = vae.decode(z, 0.5, torch.Generator().manual_seed(0))
        noisier = vae.decode(z, 0.05, torch.Generator().manual_seed(1))
    assert torch.equal(first, again)
    assert relative_error(later, first) > 1e-3
    assert relative_error(noisier, first) > 1e-5


def test_encoder_is_causal() -> None:
    vae = random_vae(TINY_090)
    video = clip()
    changed = video.clone()
    changed[:, :, 1:] = -changed[:, :, 1:]
    with torch.no_grad():
        a, b = vae.encode(video), vae.encode(changed)
    assert torch.allclose(a[:, :, 0], b[:, :, 0], atol=1e-6)
    assert not torch.allclose(a[:, :, 1], b[:, :, 1], atol=1e-3)


def test_timestep_required_and_refused() -> None:
    z = torch.randn(1, 16, 2, 2, 2)
    with pytest.raises(InvalidRequest, match="no timestep-conditioned decoder"):
        random_vae(TINY_090).decode(z, torch.tensor([0.05]))
    with pytest.raises(InvalidRequest, match="needs one"):
        random_vae(TINY_091).decode(z)
    assert not LTXVideoVAE(TINY_090).timestep_conditioning
    assert LTXVideoVAE(TINY_091).timestep_conditioning
    assert LTXVideoVAE(TINY_091).latent_channels == 16


def test_bad_clip_refused() -> None:
    vae = LTXVideoVAE(TINY_090)
    with pytest.raises(InvalidRequest, match="1 \\+ 8k"):
        vae.encode(torch.zeros(1, 3, 8, 64, 64))
    with pytest.raises(InvalidRequest, match="multiples of 32"):
        vae.encode(torch.zeros(1, 3, 9, 48, 64))


def test_normalise_uses_statistics() -> None:
    vae = random_vae(TINY_090)
    mean, std = vae.per_channel_statistics.mean(), vae.per_channel_statistics.std()
    z = torch.randn(2, 16, 2, 3, 4)
    expected = (z - mean[None, :, None, None, None]) / std[None, :, None, None, None]
    assert torch.allclose(vae.normalise(z), expected, atol=1e-6)
    assert torch.allclose(vae.denormalise(vae.normalise(z)), z, atol=1e-5)
    assert torch.allclose(vae.normalise(z)[:, 3], (z[:, 3] - mean[3]) / std[3], atol=1e-6)


def single_file_state(vae: LTXVideoVAE) -> dict[str, torch.Tensor]:
    """What a single file holds: ``vae.``-prefixed names, five statistics rows, other parts."""
    state = {"vae." + k: v for k, v in vae.state_dict().items()}
    channels = vae.latent_channels
    state["vae.per_channel_statistics.channel"] = torch.arange(channels, dtype=torch.float32)
    state["vae.per_channel_statistics.mean-of-stds"] = torch.rand(channels)
    state["vae.per_channel_statistics.mean-of-stds_over_std-of-means"] = torch.rand(channels)
    state["model.diffusion_model.patchify_proj.weight"] = torch.zeros(4, 4)
    return state


def test_single_file_loads_strictly() -> None:
    source = random_vae(TINY_091)
    state = own_vae_state(single_file_state(source))
    assert state.keys() == source.state_dict().keys()  # other parts and rows left out
    target = LTXVideoVAE(TINY_091)
    target.load_state_dict(state, strict=True)
    prefixed = {k: v for k, v in single_file_state(source).items() if k.startswith("vae.")}
    target.load_state_dict({k[4:]: v for k, v in prefixed.items()}, strict=True)  # extra rows
    for name, tensor in source.state_dict().items():
        assert torch.equal(target.state_dict()[name], tensor), name
    del state["per_channel_statistics.mean-of-means"]
    target.load_state_dict(state, strict=True)  # the original takes a missing mean as zeros
    assert torch.equal(target.per_channel_statistics.mean(), torch.zeros(16))
    del state["encoder.conv_in.conv.weight"]
    with pytest.raises(RuntimeError, match="encoder.conv_in.conv.weight"):
        target.load_state_dict(state, strict=True)


@pytest.mark.parametrize("version", sorted(TINY))
def test_diffusers_names_round_trip(version: str) -> None:
    state = random_vae(TINY[version]).state_dict()
    theirs = diffusers_names(state, TINY[version])
    assert layout(list(theirs)) == DIFFUSERS and layout(list(state)) == ORIGINAL
    back = own_vae_state(theirs)
    assert back.keys() == state.keys()
    assert all(torch.equal(back[k], state[k]) for k in state)


@pytest.mark.parametrize("version", sorted(PUBLISHED))
def test_published_matches_diffusers_on_meta(version: str) -> None:
    config = PUBLISHED[version]
    assert config.version == version
    with torch.device("meta"):
        ours = LTXVideoVAE(config)
        theirs = AutoencoderKLLTXVideo(**config_to_diffusers(config))
    count = sum(p.numel() for p in ours.parameters())
    assert count == sum(p.numel() for p in theirs.parameters())
    assert diffusers_names(ours.state_dict(), config).keys() == theirs.state_dict().keys()
    # diffusers' own single-file converter names a published file's tensors as we do
    converted = convert_ltx_vae_checkpoint_to_diffusers(single_file_state_meta(ours))
    assert converted.keys() == theirs.state_dict().keys()
    assert own_vae_state(converted).keys() == ours.state_dict().keys()


def single_file_state_meta(vae: LTXVideoVAE) -> dict[str, torch.Tensor]:
    state = {"vae." + k: v for k, v in vae.state_dict().items()}
    for row in ("channel", "mean-of-stds", "mean-of-stds_over_std-of-means"):
        state[f"vae.per_channel_statistics.{row}"] = torch.empty(128, device="meta")
    return state


def test_published_090_parameter_count() -> None:
    with torch.device("meta"):
        count = sum(p.numel() for p in LTXVideoVAE(LTXV_090).parameters())
    assert count == sum(p.numel() for p in _meta_oracle(LTXV_090).parameters())
    assert 300e6 < count < 500e6


def _meta_oracle(config: LTXVAEConfig) -> AutoencoderKLLTXVideo:
    with torch.device("meta"):
        return AutoencoderKLLTXVideo(**config_to_diffusers(config))


@pytest.mark.parametrize("config", [*TINY.values(), *PUBLISHED.values()])
def test_config_round_trips(config: LTXVAEConfig) -> None:
    assert config_from_original(config_to_original(config)) == config
    assert config_from_diffusers(config_to_diffusers(config)) == config
    assert (config.spatial_ratio, config.temporal_ratio) == (32, 8)


def test_original_090_config_reads() -> None:
    assert config_from_original(ORIGINAL_090) == LTXV_090
    assert config_from_diffusers({}) == LTXV_090  # diffusers' defaults are 0.9.0's
    assert [c.version for c in TINY.values()] == sorted(TINY)


@pytest.mark.parametrize(("change", "message"), [
    ({"norm_layer": "group_norm"}, "norm_layer 'group_norm' is not supported"),
    ({"dims": 2}, "dims 2 is not 3"),
    ({"use_quant_conv": True}, "use_quant_conv must be false"),
    ({"blocks": [["res_x", 4], ["attn_res_x", 2]]}, "unknown encoder block 'attn_res_x'"),
    ({"blocks": [["res_x", {}]]}, "res_x block needs num_layers"),
    ({"latent_log_var": "gaussian"}, "latent_log_var 'gaussian'"),
    ({"decoder_blocks": ORIGINAL_090["blocks"][:-3] + [["res_x", 4]]},
     "does not mirror"),
])
def test_bad_field_is_named(change: dict, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        config_from_original({**ORIGINAL_090, **change})


@pytest.mark.parametrize("version", sorted(PUBLISHED))
def test_published_told_from_shapes(version: str) -> None:
    with torch.device("meta"):
        state = LTXVideoVAE(PUBLISHED[version]).state_dict()
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert published_for(shapes) is PUBLISHED[version]
    shapes["decoder.conv_out.conv.weight"] = (48, 64, 3, 3, 3)
    with pytest.raises(CheckpointError, match="decoder.conv_out.conv.weight is"):
        published_for(shapes)


def test_bad_diffusers_field_is_named() -> None:
    with pytest.raises(CheckpointError, match="upsample_factor 3 does not divide"):
        config_from_diffusers({**config_to_diffusers(PUBLISHED["0.9.1"]),
                                     "upsample_factor": [3, 2, 2]})
    with pytest.raises(CheckpointError, match="decoder_inject_noise needs 4 entries"):
        config_from_diffusers({**config_to_diffusers(PUBLISHED["0.9.1"]),
                                     "decoder_inject_noise": [True]})
