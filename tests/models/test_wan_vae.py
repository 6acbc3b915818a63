"""Wan 2.1 / 2.2 VAEs: parity with diffusers' AutoencoderKLWan, chunked = whole-clip processing,
causality, bounded cache, real-size checkpoints on the meta device, and the public contract."""

from __future__ import annotations

import json
import re
import threading

import pytest
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKLWan

from studio.engine.cancel import CancelToken
from studio.errors import Cancelled, CheckpointError, InvalidRequest
from studio.models.wan.vae import WAN21_VAE, WAN22_VAE, CausalVideoVAE, WanVAE21, WanVAEConfig
from studio.models.wan.vae22 import WanVAE22, patchify, unpatchify
from studio.models.wan.vae_blocks import CausalConv3d, FeatureCache, Resample
from studio.models.wan.vae_factory import build_vae

TINY21 = WanVAEConfig(
    "2.1", dim=8, z_dim=4, latent_mean=(0.1, -0.2, 0.3, 0.0), latent_std=(1.5, 0.5, 2.0, 1.0)
)
TINY22 = WanVAEConfig(
    "2.2",
    dim=8,
    dec_dim=16,
    z_dim=8,
    latent_mean=tuple(0.1 * i - 0.3 for i in range(8)),
    latent_std=tuple(0.5 + 0.1 * i for i in range(8)),
)
TINY = {"2.1": TINY21, "2.2": TINY22}
PIXELS = {"2.1": 32, "2.2": 64}  # 4×4 latent cells for both


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def random_vae(config: WanVAEConfig, seed: int = 0) -> CausalVideoVAE:
    """A VAE with random weights: default conv init, RMS gammas drawn from U(0.5, 1.5)."""
    torch.manual_seed(seed)
    vae = build_vae(config)
    with torch.no_grad():
        for name, p in vae.named_parameters():
            if name.endswith("gamma"):
                p.uniform_(0.5, 1.5)
    return vae


def statistics(config: WanVAEConfig) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(config.latent_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(config.latent_std).view(1, -1, 1, 1, 1)
    return mean, std


# --- key mapping original → diffusers (docs/families/wan.md §8.2; 2.2's nesting derived) ---

_RESIDUAL = (
    ("residual.0.gamma", "norm1.gamma"),
    ("residual.2.", "conv1."),
    ("residual.3.gamma", "norm2.gamma"),
    ("residual.6.", "conv2."),
    ("shortcut.", "conv_shortcut."),
)
_COMMON = (
    (r"^conv1\.", "quant_conv."),
    (r"^conv2\.", "post_quant_conv."),
    (r"^(encoder|decoder)\.conv1\.", r"\1.conv_in."),
    (r"\.middle\.0\.", ".mid_block.resnets.0."),
    (r"\.middle\.1\.", ".mid_block.attentions.0."),
    (r"\.middle\.2\.", ".mid_block.resnets.1."),
    (r"\.head\.0\.", ".norm_out."),
    (r"\.head\.2\.", ".conv_out."),
)


def diffusers_key(key: str, config: WanVAEConfig) -> str:
    n = config.num_res_blocks
    for pattern, repl in _COMMON:
        key = re.sub(pattern, repl, key)
    if config.version == "2.2":
        key = re.sub(
            r"^encoder\.downsamples\.(\d+)\.downsamples\.(\d+)\.",
            lambda m: (
                f"encoder.down_blocks.{m[1]}."
                + (f"resnets.{m[2]}." if int(m[2]) < n else "downsampler.")
            ),
            key,
        )
        key = re.sub(
            r"^decoder\.upsamples\.(\d+)\.upsamples\.(\d+)\.",
            lambda m: (
                f"decoder.up_blocks.{m[1]}."
                + (f"resnets.{m[2]}." if int(m[2]) <= n else "upsampler.")
            ),
            key,
        )
    else:
        key = re.sub(r"^encoder\.downsamples\.", "encoder.down_blocks.", key)

        def up_block(m: re.Match[str]) -> str:  # flat index → (stage, position in stage)
            stage, j = divmod(int(m[1]), n + 2)
            return f"decoder.up_blocks.{stage}." + (f"resnets.{j}." if j <= n else "upsamplers.0.")

        key = re.sub(r"^decoder\.upsamples\.(\d+)\.", up_block, key)
    for old, new in _RESIDUAL:
        key = key.replace(old, new)
    return key


def diffusers_twin(vae: CausalVideoVAE) -> AutoencoderKLWan:
    """diffusers' AutoencoderKLWan with the same weights (loaded with strict=True)."""
    cfg = vae.config
    kwargs = dict(
        base_dim=cfg.dim,
        decoder_base_dim=cfg.dec_dim,
        z_dim=cfg.z_dim,
        dim_mult=list(cfg.dim_mult),
        num_res_blocks=cfg.num_res_blocks,
        temperal_downsample=list(cfg.temporal_downsample),
        latents_mean=list(cfg.latent_mean),
        latents_std=list(cfg.latent_std),
    )
    if cfg.version == "2.2":
        kwargs.update(
            is_residual=True, in_channels=12, out_channels=12, patch_size=2, scale_factor_spatial=16
        )
    twin = AutoencoderKLWan(**kwargs).eval()
    state = {diffusers_key(k, cfg): v for k, v in vae.state_dict().items()}
    twin.load_state_dict(state, strict=True)
    return twin


@pytest.fixture(scope="module", params=["2.1", "2.2"])
def pair(request: pytest.FixtureRequest) -> tuple[CausalVideoVAE, AutoencoderKLWan]:
    vae = random_vae(TINY[request.param])
    return vae, diffusers_twin(vae)


# --- 1. parity with diffusers ---


@pytest.mark.parametrize("frames", [1, 5, 9])
def test_encode_and_decode_match_diffusers(pair, frames: int) -> None:
    vae, twin = pair
    cfg = vae.config
    mean, std = statistics(cfg)
    size = PIXELS[cfg.version]
    g = torch.Generator().manual_seed(frames)
    video = torch.rand(1, 3, frames, size, size, generator=g) * 2 - 1

    z = vae.encode(video)
    with torch.no_grad():
        mu = twin.encode(video).latent_dist.mode()  # raw μ; normalise it ourselves
    t_lat = 1 + (frames - 1) // 4
    assert z.shape == (1, cfg.z_dim, t_lat, 4, 4) and z.dtype == torch.float32
    assert relative_error(z, (mu - mean) / std) < 1e-4

    latent = torch.randn(1, cfg.z_dim, t_lat, 4, 4, generator=g)
    out = vae.decode(latent)
    with torch.no_grad():
        expected = twin.decode(latent * std + mean).sample
    assert out.shape == (1, 3, frames, size, size) and out.dtype == torch.float32
    assert (out.abs() < 1).float().mean() > 0.9  # the clamp does not hide the comparison
    assert relative_error(out, expected) < 1e-4


# --- 2. chunked/cached processing equals whole-clip processing; causality; bounded cache ---


@pytest.mark.parametrize("version", ["2.1", "2.2"])
def test_chunked_encode_and_decode_equal_whole_clip(version: str) -> None:
    """One pass over all frames with a fresh cache is plain causal processing with zero
    padding at the clip start; the chunked calls must reproduce it."""
    vae = random_vae(TINY[version], seed=1)
    cfg = vae.config
    mean, std = statistics(cfg)
    g = torch.Generator().manual_seed(0)
    size = PIXELS[version]
    video = torch.rand(1, 3, 9, size // 2, size // 2, generator=g) * 2 - 1
    with torch.no_grad():
        whole = vae.encoder(vae.patchify(video), FeatureCache())
        mu = F.conv3d(whole, vae.conv1.weight, vae.conv1.bias)[:, : cfg.z_dim]
    assert relative_error(vae.encode(video), (mu - mean) / std) < 1e-5

    latent = torch.randn(1, cfg.z_dim, 3, 3, 5, generator=g)  # odd latent sizes decode too
    with torch.no_grad():
        whole = vae.unpatchify(vae.decoder(vae.conv2(latent * std + mean), FeatureCache()))
    s = cfg.spatial_factor
    out = vae.decode(latent)
    assert out.shape == (1, 3, 9, 3 * s, 5 * s)
    assert relative_error(out, whole.clamp(-1, 1)) < 1e-5


@pytest.mark.parametrize("version", ["2.1", "2.2"])
def test_decode_is_causal_in_time(version: str) -> None:
    vae = random_vae(TINY[version], seed=2)
    latent = torch.randn(1, vae.config.z_dim, 4, 2, 2, generator=torch.Generator().manual_seed(3))
    full = vae.decode(latent)
    for k in (1, 2):
        prefix = vae.decode(latent[:, :, :k])
        torch.testing.assert_close(prefix, full[:, :, : 1 + 4 * (k - 1)], rtol=1e-5, atol=1e-6)
    changed = latent.clone()
    changed[:, :, 3] += 1.0  # a later latent frame never changes earlier pixels
    again = vae.decode(changed)
    torch.testing.assert_close(again[:, :, :9], full[:, :, :9], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(again[:, :, 9:], full[:, :, 9:])


def _cache_sizes(module: torch.nn.Module, run) -> list[tuple[int, int]]:
    """(tensors, bytes) in the call's FeatureCache after each chunk through ``module``."""
    sizes: list[tuple[int, int]] = []

    def hook(_module, args, _output) -> None:
        cache = args[1]
        sizes.append((cache.tensors, cache.nbytes))

    handle = module.register_forward_hook(hook)
    try:
        run()
    finally:
        handle.remove()
    return sizes


@pytest.mark.parametrize("version", ["2.1", "2.2"])
def test_feature_cache_does_not_grow_with_frames(version: str) -> None:
    vae = random_vae(TINY[version])
    cfg = vae.config
    dec = _cache_sizes(vae.decoder, lambda: vae.decode(torch.randn(1, cfg.z_dim, 7, 2, 2)))
    assert len(dec) == 7  # one decoder call per latent frame
    temporal_convs = sum(
        1 for m in vae.decoder.modules() if isinstance(m, CausalConv3d) and m.past > 0
    )
    assert dec[1] == dec[-1] and all(d == dec[1] for d in dec[1:])
    assert dec[-1][0] == temporal_convs  # every temporal conv keeps one small tensor

    size = PIXELS[version]
    video = torch.zeros(1, 3, 13, size // 2, size // 2)
    enc = _cache_sizes(vae.encoder, lambda: vae.encode(video))
    assert len(enc) == 4  # frame 0, then 3 chunks of 4 frames
    enc_layers = sum(1 for m in vae.encoder.modules() if isinstance(m, CausalConv3d) and m.past)
    enc_layers += sum(
        1 for m in vae.encoder.modules() if isinstance(m, Resample) and m.mode == "downsample3d"
    )
    assert all(e == enc[1] for e in enc[1:]) and enc[-1][0] == enc_layers


# --- 3. real-size configurations on the meta device ---


@pytest.mark.parametrize(
    ("config", "cls", "params", "tensors", "shapes"),
    [
        (
            WAN21_VAE,
            WanVAE21,
            126_892_531,
            194,
            {
                "encoder.conv1.weight": (96, 3, 3, 3, 3),
                "encoder.downsamples.0.residual.0.gamma": (96, 1, 1, 1),
                "decoder.middle.0.residual.0.gamma": (384, 1, 1, 1),
                "decoder.middle.1.to_qkv.weight": (1152, 384, 1, 1),
                "decoder.upsamples.4.shortcut.weight": (384, 192, 1, 1, 1),
                "decoder.upsamples.3.time_conv.weight": (768, 384, 3, 1, 1),
                "decoder.upsamples.11.resample.1.weight": (96, 192, 3, 3),
                "conv1.weight": (32, 32, 1, 1, 1),
                "conv2.weight": (16, 16, 1, 1, 1),
            },
        ),
        (
            WAN22_VAE,
            WanVAE22,
            704_688_668,
            196,
            {
                "encoder.conv1.weight": (160, 12, 3, 3, 3),
                "encoder.head.2.weight": (96, 640, 3, 3, 3),
                "encoder.downsamples.1.downsamples.2.time_conv.weight": (320, 320, 3, 1, 1),
                "conv1.weight": (96, 96, 1, 1, 1),
                "conv2.weight": (48, 48, 1, 1, 1),
                "decoder.conv1.weight": (1024, 48, 3, 3, 3),
                "decoder.upsamples.0.upsamples.3.resample.1.weight": (1024, 1024, 3, 3),
                "decoder.head.2.weight": (12, 256, 3, 3, 3),
            },
        ),
    ],
)
def test_real_size_models_on_meta(config, cls, params, tensors, shapes) -> None:
    with torch.device("meta"):
        vae = build_vae(config)
    assert type(vae) is cls and not vae.training
    state = vae.state_dict()
    assert len(state) == tensors
    assert sum(t.numel() for t in state.values()) == params
    for key, shape in shapes.items():
        assert tuple(state[key].shape) == shape, key
    assert not any("mean" in k or "std" in k for k in state)
    if config.version == "2.1":  # docs/families/wan.md §5: 26 causal convs in, 33 out
        assert sum(isinstance(m, CausalConv3d) for m in vae.encoder.modules()) == 26
        assert sum(isinstance(m, CausalConv3d) for m in vae.decoder.modules()) == 33


# --- the public contract ---


def test_config_factors_and_round_trip() -> None:
    assert (WAN21_VAE.spatial_factor, WAN21_VAE.temporal_factor) == (8, 4)
    assert (WAN22_VAE.spatial_factor, WAN22_VAE.temporal_factor) == (16, 4)
    assert WAN21_VAE.latent_mean[:2] == (-0.7571, -0.7089) and WAN21_VAE.latent_std[-1] == 1.9160
    assert WAN22_VAE.latent_mean[19] == 0.5109 and WAN22_VAE.latent_std[39] == 1.6887
    for cfg in (WAN21_VAE, WAN22_VAE, TINY22):
        assert WanVAEConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


@pytest.mark.parametrize(
    "change",
    [
        {"version": "3.0"},
        {"z_dim": 8},
        {"temporal_downsample": [True]},
        {"colour": "red"},
        {"latent_std": [0.0] * 16},
    ],
)
def test_config_rejects_bad_values(change: dict) -> None:
    with pytest.raises(CheckpointError):
        WanVAEConfig.from_dict({**WAN21_VAE.to_dict(), **change})


def test_patchify_order_and_inverse() -> None:
    x = torch.randn(2, 3, 5, 8, 6)
    y = patchify(x)
    assert y.shape == (2, 12, 5, 4, 3)
    for c, q, r in [(0, 0, 0), (1, 1, 0), (2, 0, 1), (2, 1, 1)]:  # channel c·4 + r·2 + q
        torch.testing.assert_close(y[:, c * 4 + r * 2 + q], x[:, c, :, q::2, r::2])
    torch.testing.assert_close(unpatchify(y), x)


@pytest.mark.parametrize("version", ["2.1", "2.2"])
def test_invalid_inputs_raise_actionable_errors(version: str) -> None:
    vae = random_vae(TINY[version])
    s = vae.config.spatial_factor
    with pytest.raises(InvalidRequest, match="1 \\+ 4·k") as info:
        vae.encode(torch.zeros(1, 3, 4, s, s))
    assert "1 or 5" in info.value.hint
    with pytest.raises(InvalidRequest, match=f"multiples of {s}"):
        vae.encode(torch.zeros(1, 3, 1, s + 4, s))
    with pytest.raises(InvalidRequest, match="latent"):
        vae.decode(torch.zeros(1, vae.config.z_dim + 1, 1, 2, 2))
    with pytest.raises(InvalidRequest, match="latent"):
        vae.decode(torch.zeros(1, vae.config.z_dim, 0, 2, 2))


def test_cancellation_between_chunks() -> None:
    vae = random_vae(TINY21)
    token = CancelToken()
    calls: list[int] = []

    def cancel_after_first(_module, _args, _output) -> None:
        calls.append(1)
        token.set()

    handle = vae.decoder.register_forward_hook(cancel_after_first)
    with pytest.raises(Cancelled):
        vae.decode(torch.randn(1, 4, 5, 2, 2), cancel=token)
    handle.remove()
    assert len(calls) == 1
    with pytest.raises(Cancelled):
        vae.encode(torch.zeros(1, 3, 5, 32, 32), cancel=token)


def test_concurrent_calls_share_the_module_safely() -> None:
    vae = random_vae(TINY22)
    latents = [
        torch.randn(1, 8, 3, 2, 2, generator=torch.Generator().manual_seed(i)) for i in range(2)
    ]
    expected = [vae.decode(z) for z in latents]
    before = set(vars(vae))
    results: dict[int, torch.Tensor] = {}
    threads = [
        threading.Thread(target=lambda i=i: results.__setitem__(i, vae.decode(latents[i])))
        for i in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(2):
        torch.testing.assert_close(results[i], expected[i], rtol=0, atol=0)
    assert set(vars(vae)) == before  # nothing stored on the module


def test_low_precision_module_takes_and_returns_float32() -> None:
    vae = random_vae(TINY21)
    half = random_vae(TINY21).to(torch.bfloat16)  # the same weights, rounded to bfloat16
    g = torch.Generator().manual_seed(0)
    video = torch.rand(1, 3, 5, 16, 16, generator=g) * 2 - 1
    latent = torch.randn(1, 4, 2, 2, 2, generator=g)
    z16, x16 = half.encode(video.double()), half.decode(latent)
    assert z16.dtype == x16.dtype == torch.float32
    assert relative_error(z16, vae.encode(video)) < 0.05
    assert relative_error(x16, vae.decode(latent)) < 0.05
