"""Open-Sora 2.0's packing, image channels, guidance rule and final latent against direct
implementations of hpcaitech/Open-Sora @ 7ad6a96a135f (``opensora/utils/sampling.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from studio.engine.model import GuidanceInputs
from studio.engine.offload import OffloadPolicy, apply_offload
from studio.engine.pipeline import generate
from studio.engine.request import ConditioningItem, GenerationRequest
from studio.engine.schedule import make_schedule
from studio.models.opensora.conditioning import finish_latent, guidance_rule
from studio.models.opensora.loader import load_opensora_model
from studio.models.opensora.packing import pack, unpack
from studio.models.registry import scan
from tests.models.opensora.tiny_opensora import write_set


def test_pack_is_channel_major_over_each_2x2_cell() -> None:
    x = torch.randn(2, 3, 2, 4, 6)
    tokens = pack(x)
    assert tokens.shape == (2, 2 * 2 * 3, 12)
    # token (t=1, h=1, w=2), feature (c=2, ph=1, pw=0) = x[b, 2, 1, 3, 4]
    assert tokens[1, 1 * 6 + 1 * 3 + 2, 2 * 4 + 1 * 2 + 0] == x[1, 2, 1, 3, 4]
    assert torch.equal(unpack(tokens, tuple(x.shape)), x)


def _fake_denoise(x: torch.Tensor, t_tok: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """A velocity that depends on the latent, the extra channels, t and the context."""
    latent, extra = x[:, :16], x[:, 16:]
    cond = extra.sum(1, keepdim=True) if extra.shape[1] else torch.zeros_like(latent[:, :1])
    text = context.mean(dim=(1, 2)).view(-1, 1, 1, 1, 1)
    return 0.3 * latent + 0.7 * cond + text + t_tok.unsqueeze(1)


def _oscillation_gs(scale: float, i: int) -> float:
    return scale if i < 10 or i % 2 == 0 else 1.0


def _reference(x, channels, context, uncond, schedule, g_txt0, g_img0, osc) -> torch.Tensor:
    """The original's I2VDenoiser loop (euler update), written out."""
    for i, (t_curr, t_prev) in enumerate(zip(schedule[:-1], schedule[1:], strict=True)):
        t_tok = torch.full((1, *x.shape[2:]), t_curr)
        zero = torch.zeros_like(channels)
        v1 = _fake_denoise(torch.cat([x, channels], 1), t_tok, context)
        v2 = _fake_denoise(torch.cat([x, channels], 1), t_tok, uncond)
        v3 = _fake_denoise(torch.cat([x, zero], 1), t_tok, uncond)
        g_txt = _oscillation_gs(g_txt0, i) if "text" in osc else g_txt0
        g_img = _oscillation_gs(g_img0, i) if "image" in osc else g_img0
        if g_img > 1.0 and "temporal" in osc:
            upper = torch.linspace(g_img, 1.0, len(schedule))[i]
            g_img = torch.linspace(1.0, upper, x.shape[2]).view(1, 1, -1, 1, 1)
        v = v3 + g_img * (v2 - v3) + g_txt * (v1 - v2)
        x = x + (t_prev - t_curr) * v
    return x


@pytest.mark.parametrize("osc", [(), ("text", "image"), ("text", "image", "temporal")])
def test_guidance_rule_equals_the_original_loop(osc: tuple[str, ...]) -> None:
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(1, 16, 3, 4, 4, generator=gen)
    channels = torch.randn(1, 17, 3, 4, 4, generator=gen)
    context, uncond = torch.randn(1, 5, 8, generator=gen), torch.randn(1, 5, 8, generator=gen)
    schedule = tuple(make_schedule(14, 3.0))  # 14 steps: past the 10 forced ones
    rule = guidance_rule(GuidanceInputs(_fake_denoise, context, uncond, channels, None, 7.5, 3.0,
                                        osc, schedule))  # fmt: skip
    x = x0.clone()
    for t_curr, t_prev in zip(schedule[:-1], schedule[1:], strict=True):
        x = x + (t_prev - t_curr) * rule(x, torch.full((1, *x.shape[2:]), t_curr))
    expected = _reference(x0, channels, context, uncond, schedule, 7.5, 3.0, osc)
    torch.testing.assert_close(x, expected, rtol=1e-5, atol=1e-5)


def test_text_to_video_is_cfg_with_text_oscillation() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 16, 2, 4, 4, generator=gen)
    context, uncond = torch.randn(1, 5, 8, generator=gen), torch.randn(1, 5, 8, generator=gen)
    schedule = tuple(make_schedule(12, 1.0))
    rule = guidance_rule(GuidanceInputs(_fake_denoise, context, uncond, None, None, 5.0, 3.0,
                                        ("text",), schedule))  # fmt: skip
    for step, scale in ((2, 5.0), (10, 5.0), (11, 1.0)):
        t_tok = torch.full((1, 2, 4, 4), schedule[step])
        cond, neg = _fake_denoise(x, t_tok, context), _fake_denoise(x, t_tok, uncond)
        torch.testing.assert_close(rule(x, t_tok), neg + scale * (cond - neg))


def test_finish_latent_overwrites_exactly_the_conditioned_frames() -> None:
    latent = torch.randn(1, 16, 4, 2, 2)
    channels = torch.zeros(1, 17, 4, 2, 2)
    channels[:, 0, [0, 3]] = 1.0
    channels[:, 1:, [0, 3]] = torch.randn(1, 16, 2, 2, 2)
    out = finish_latent()(latent, channels)
    assert torch.equal(out[:, :, [0, 3]], channels[:, 1:, [0, 3]])
    assert torch.equal(out[:, :, 1:3], latent[:, :, 1:3])
    assert finish_latent()(latent, None) is latent


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory):
    root = write_set(tmp_path_factory.mktemp("os") / "Open-Sora-v2").root
    image = root.parent / "ref.png"
    Image.new("RGB", (32, 32), (200, 40, 90)).save(image)
    return scan([root])[0], image


def test_image_channels_mark_the_first_and_last_latent_frames(loaded) -> None:
    model_set, image = loaded
    model = load_opensora_model(model_set, "cpu", torch.float32)
    pixels = torch.rand(1, 3, 32, 32) * 2 - 1
    channels = model.image_channels({0: pixels, 8: pixels}, 9, 32, 32)
    assert channels.shape == (1, 17, 3, 4, 4)
    assert channels[:, 0, :, 0, 0].tolist() == [[1.0, 0.0, 1.0]]
    assert (channels[:, 1:, 1] == 0).all() and channels[:, 1:, 0].abs().sum() > 0
    ref = model.vae.encode(pixels.unsqueeze(2))[:, :, 0]
    torch.testing.assert_close(channels[:, 1:, 2], ref)


@pytest.mark.parametrize("policy", [OffloadPolicy.MODEL, OffloadPolicy.BLOCKS])
def test_offload_is_bit_identical(loaded, policy: OffloadPolicy) -> None:
    model_set, image = loaded
    request = GenerationRequest(prompt="a cat.", steps=2, width=32, height=32, frames=5,
                                conditioning=(ConditioningItem(str(Path(image)), 0),))
    expected = generate(load_opensora_model(model_set, "cpu", torch.float32), request)
    model = apply_offload(load_opensora_model(model_set, "cpu", torch.float32),
                          policy, "cpu")
    out = generate(model, request)
    assert torch.equal(out.latent, expected.latent)
    if policy is OffloadPolicy.BLOCKS:
        assert model.denoiser.residency.streamers["dit"].max_resident <= 2


def test_memory_figures(loaded) -> None:
    from studio.models.opensora.memory import VAE_PER_PIXEL, hunyuan_vae_per_pixel, published_memory

    model_set, _ = loaded
    model = load_opensora_model(model_set, "cpu", torch.float32)
    assert model.memory is not None and model.memory.dit_bytes > model.memory.dit_block_bytes > 0
    assert hunyuan_vae_per_pixel() == VAE_PER_PIXEL
    published = published_memory(torch.bfloat16)
    assert published.dit.num_layers == 19 + 38 and published.dit.dim == 3072
    assert 20 * 2**30 < published.dit_bytes < 30 * 2**30  # 11.9B parameters, bf16 + fp32 mods
    assert 8 * 2**30 < published.text_encoder_bytes < 10 * 2**30  # T5-XXL + CLIP-L in bf16
