"""The Wan family adapter and its key layouts: diffusers names checked against the real diffusers
classes, every on-disk layout loading to the very weights that were written, configs read back
from shapes, and a loaded tiny set whose denoiser, VAE and text encoder run."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from studio.engine.model import LoadedModel
from studio.errors import CheckpointError
from studio.models.loading import parameters_on_meta
from studio.models.registry import ModelSet, scan
from studio.models.wan.dit import FP32_PARAMETERS, WanDiT
from studio.models.wan.keys import identify_layout, key_map
from studio.models.wan.loader import load_wan_model, vae_config_from_shapes
from studio.models.wan.presets import (
    NEGATIVE_PROMPT,
    T2V_1_3B,
    T2V_14B,
    TI2V_5B,
    WAN21_PREVIEW,
    WAN22_PREVIEW,
)
from studio.models.wan.vae import WAN21_VAE, WAN22_VAE
from studio.models.wan.vae_factory import build_vae
from tests.models.tiny_wan import (
    TINY_DIT_21,
    TINY_DIT_22,
    TINY_VAE_21,
    TINY_VAE_22,
    dit_to_diffusers,
    vae_to_diffusers,
    write_wan_set,
)

# ---- key layouts against diffusers ---------------------------------------------------------


def _shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _diffusers_dit(config):  # noqa: ANN001, ANN202
    from diffusers import WanTransformer3DModel

    return WanTransformer3DModel(
        patch_size=config.patch_size, num_attention_heads=config.num_heads,
        attention_head_dim=config.head_dim, in_channels=config.in_dim,
        out_channels=config.out_dim, text_dim=config.text_dim, freq_dim=config.freq_dim,
        ffn_dim=config.ffn_dim, num_layers=2, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
    )  # fmt: skip


def _diffusers_vae(config):  # noqa: ANN001, ANN202
    from diffusers import AutoencoderKLWan

    if config.version == "2.1":
        return AutoencoderKLWan(base_dim=config.dim, z_dim=config.z_dim,
                                num_res_blocks=config.num_res_blocks)
    return AutoencoderKLWan(
        base_dim=config.dim, decoder_base_dim=config.decoder_dim, z_dim=config.z_dim,
        num_res_blocks=config.num_res_blocks, is_residual=True, in_channels=12,
        out_channels=12, patch_size=2, scale_factor_spatial=16,
        latents_mean=list(config.latent_mean), latents_std=list(config.latent_std),
    )  # fmt: skip


@pytest.mark.parametrize("config", [TINY_DIT_21, TINY_DIT_22], ids=["2.1", "2.2"])
def test_dit_layouts_match_diffusers(config) -> None:  # noqa: ANN001
    config = dataclasses.replace(config, num_layers=2)
    ours = _shapes(WanDiT(config))
    theirs = _shapes(_diffusers_dit(config))
    # the test writer's original → diffusers table reproduces diffusers' own names
    assert {dit_to_diffusers(k): s for k, s in ours.items()} == theirs
    # and the studio's diffusers → original map brings them back, every key, every shape
    layout = identify_layout(theirs)
    assert layout is not None and (layout.role, layout.layout) == ("dit", "diffusers")
    mapping = key_map(layout, theirs)
    assert {mapping[k]: s for k, s in theirs.items()} == ours


@pytest.mark.parametrize("config", [TINY_VAE_21, TINY_VAE_22], ids=["2.1", "2.2"])
def test_vae_layouts_match_diffusers(config) -> None:  # noqa: ANN001
    ours = _shapes(build_vae(config))
    theirs = _shapes(_diffusers_vae(config))
    assert {vae_to_diffusers(k, config): s for k, s in ours.items()} == theirs
    layout = identify_layout(theirs)
    assert layout is not None and (layout.role, layout.layout) == ("vae", "diffusers")
    mapping = key_map(layout, theirs)
    assert {mapping[k]: s for k, s in theirs.items()} == ours


def test_prefix_is_stripped_and_unknown_keys_stay_unmapped() -> None:
    keys = {"model.diffusion_model.head.modulation": (1,),
            "model.diffusion_model.time_projection.1.weight": (1,)}
    layout = identify_layout(keys)
    assert layout is not None and layout.prefix == "model.diffusion_model."
    assert key_map(layout, keys) == {k: k.removeprefix(layout.prefix) for k in keys}
    diffusers = {"scale_shift_table": (1,), "condition_embedder.time_proj.weight": (1,),
                 "some.lora_A.weight": (1,)}
    mapping = key_map(identify_layout(diffusers), diffusers)
    assert "some.lora_A.weight" not in mapping
    assert mapping["scale_shift_table"] == "head.modulation"
    assert identify_layout({"foo.weight": (1,)}) is None


@pytest.mark.parametrize("config", [WAN21_VAE, WAN22_VAE, TINY_VAE_21, TINY_VAE_22],
                         ids=["2.1", "2.2", "tiny-2.1", "tiny-2.2"])
def test_vae_config_read_back_from_shapes(config) -> None:  # noqa: ANN001
    with parameters_on_meta():
        module = build_vae(config)
    assert vae_config_from_shapes(_shapes(module), "f") == config


def test_vae_with_foreign_channel_count_is_refused() -> None:
    shapes = {"encoder.conv1.weight": (8, 3, 3, 3, 3), "conv2.weight": (4, 4, 1, 1, 1),
              "decoder.conv1.weight": (32, 4, 3, 3, 3)}
    with pytest.raises(CheckpointError, match="f: a VAE with 4 latent channels is not a Wan VAE"):
        vae_config_from_shapes(shapes, "f")


# ---- every layout loads the weights that were written --------------------------------------

CASES = [("original", "t2v"), ("sharded", "ti2v"), ("prefixed", "t2v"), ("diffusers", "t2v"),
         ("diffusers", "ti2v")]  # fmt: skip


@pytest.mark.parametrize(("layout", "variant"), CASES, ids=[f"{a}-{b}" for a, b in CASES])
def test_layout_round_trip(tmp_path: Path, layout: str, variant: str) -> None:
    tiny = write_wan_set(tmp_path / "set", variant, layout)
    (found,) = scan([tmp_path])
    assert found.usable, found.problems
    model = load_wan_model(found, "cpu", torch.float32)
    dit = model.denoiser.__self__
    loaded = dit.state_dict()
    assert loaded.keys() == tiny.states["dit"].keys()
    assert all(torch.equal(loaded[k], v) for k, v in tiny.states["dit"].items())
    vae = model.vae.state_dict()
    assert vae.keys() == tiny.states["vae"].keys()
    assert all(torch.equal(vae[k], v) for k, v in tiny.states["vae"].items())
    encoder = model.text_encoder.model.state_dict()
    assert all(torch.equal(encoder[k], v) for k, v in tiny.states["text_encoder"].items())
    assert dit.config.num_heads == (1 if layout == "prefixed" else 4)  # config.json when present


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[LoadedModel, object]]:
    root = tmp_path_factory.mktemp("loaded")
    models = {}
    for variant in ("t2v", "ti2v"):
        tiny = write_wan_set(root / variant, variant, "original", dtype=torch.bfloat16)
        (found,) = scan([root / variant])
        models[variant] = (load_wan_model(found, "cpu", torch.float32), tiny)
    return models


def test_loaded_model_metadata(loaded: dict[str, tuple[LoadedModel, object]]) -> None:
    t2v, _ = loaded["t2v"]
    ti2v, _ = loaded["ti2v"]
    assert (t2v.family, t2v.variant, ti2v.variant) == ("wan", "t2v-custom", "ti2v-custom")
    assert (t2v.geometry.channels, t2v.geometry.temporal_factor, t2v.geometry.spatial_factor) \
        == (16, 4, 8)
    assert (ti2v.geometry.channels, ti2v.geometry.temporal_factor, ti2v.geometry.spatial_factor) \
        == (48, 4, 16)
    assert t2v.defaults == T2V_1_3B.defaults and ti2v.defaults == TI2V_5B.defaults
    assert t2v.preview is WAN21_PREVIEW and ti2v.preview is WAN22_PREVIEW
    assert (t2v.supports_image, ti2v.supports_image) == (False, True)
    assert t2v.device == torch.device("cpu") and t2v.dtype == torch.float32


@pytest.mark.parametrize("variant", ["t2v", "ti2v"])
def test_loaded_parts_run(loaded: dict[str, tuple[LoadedModel, object]], variant: str) -> None:
    model, tiny = loaded[variant]
    channels = model.geometry.channels
    context = model.text_encoder.encode(["a red bird flies over the river"])
    assert context.shape == (1, 512, 32) and torch.count_nonzero(context[0, 8:]) == 0
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(1, channels, 2, 4, 6, generator=generator)
    if model.supports_image:  # per-token times (a pinned first frame has t = 0)
        t_tok = torch.rand(1, 2, 4, 6, generator=generator)
        t_tok[:, 0] = 0.0
    else:  # text-to-video: one time per sample
        t_tok = torch.full((1, 2, 4, 6), 0.7)
    v = model.denoiser(x, t_tok, context)
    # reference: the same DiT built and loaded the ordinary way from the written weights
    reference = WanDiT(model.denoiser.__self__.config)
    reference.load_state_dict({k: w.to(torch.bfloat16).float()
                               for k, w in tiny.states["dit"].items()})
    # What each variant must compute, chosen here and not read off the family: image-to-video
    # models embed the time per token; text-to-video ones once per sample (same numbers).
    expected = reference.velocity if model.supports_image else reference.velocity_uniform
    torch.testing.assert_close(v, expected(x, t_tok, context), rtol=0, atol=0)
    assert v.shape == x.shape and torch.isfinite(v).all()
    pixels = model.vae.decode(x)
    s = model.geometry.spatial_factor
    assert pixels.shape == (1, 3, 5, 4 * s, 6 * s) and pixels.abs().max() <= 1
    latent = model.vae.encode(pixels)
    assert latent.shape == x.shape and torch.isfinite(latent).all()


def test_bfloat16_load_keeps_sensitive_weights_in_float32(tmp_path: Path) -> None:
    write_wan_set(tmp_path / "set", "t2v", "original")
    (found,) = scan([tmp_path])
    model = load_wan_model(found, "cpu", torch.bfloat16)
    for name, param in model.denoiser.__self__.named_parameters():
        keep = any(fragment in name for fragment in FP32_PARAMETERS)
        assert param.dtype == (torch.float32 if keep else torch.bfloat16), name
    assert all(p.dtype == torch.float32 for p in model.vae.parameters())
    assert model.text_encoder.model.shared.weight.dtype == torch.bfloat16
    assert model.dtype == torch.bfloat16


# ---- refusals ------------------------------------------------------------------------------


def test_incomplete_and_mismatched_sets_are_refused(tmp_path: Path) -> None:
    tiny = write_wan_set(tmp_path / "a", "t2v", "original")
    tiny.text_encoder.unlink()
    (incomplete,) = scan([tmp_path / "a"])
    with pytest.raises(CheckpointError, match="cannot be loaded: no UMT5 text encoder in"):
        load_wan_model(incomplete, "cpu", torch.float32)
    # a hand-made set that skipped the registry's pairing check: the loader checks again
    good = write_wan_set(tmp_path / "b", "t2v", "original")
    other = write_wan_set(tmp_path / "c", "ti2v", "original")
    (b,) = scan([tmp_path / "b"])
    (c,) = scan([tmp_path / "c"])
    swapped = dataclasses.replace(b, components=(b.component("dit"), c.component("vae"),
                                                 b.component("text_encoder"),
                                                 b.component("tokenizer")))
    with pytest.raises(CheckpointError) as info:
        load_wan_model(swapped, "cpu", torch.float32)
    assert info.value.message == (f"the VAE in {other.vae} has 48 latent channels but the DiT in "
                                  f"{good.dit} makes 16")
    assert "Wan 2.1 VAE (Wan2.1_VAE.pth)" in info.value.hint
    wrong_role = dataclasses.replace(b, components=(dataclasses.replace(
        b.component("dit"), path=good.vae), *b.components[1:]))
    with pytest.raises(CheckpointError, match=f"{good.vae} should hold the dit but holds vae"):
        load_wan_model(wrong_role, "cpu", torch.float32)
    with pytest.raises(CheckpointError, match="not a Wan model"):
        load_wan_model(ModelSet(id="demo", family="demo", variant="x", complete=True), "cpu",
                       torch.float32)


# ---- presets -------------------------------------------------------------------------------


def test_defaults_follow_the_original_repositories() -> None:
    assert (T2V_1_3B.defaults.steps, T2V_1_3B.defaults.guidance, T2V_1_3B.defaults.shift,
            T2V_1_3B.defaults.fps, T2V_1_3B.defaults.frames) == (50, 5.0, 5.0, 16.0, 81)
    assert T2V_1_3B.defaults.sizes == ((832, 480), (480, 832))
    assert T2V_14B.defaults.sizes == ((1280, 720), (720, 1280), (832, 480), (480, 832))
    assert (TI2V_5B.defaults.steps, TI2V_5B.defaults.guidance, TI2V_5B.defaults.shift,
            TI2V_5B.defaults.fps, TI2V_5B.defaults.frames) == (50, 5.0, 5.0, 24.0, 121)
    assert TI2V_5B.defaults.sizes == ((1280, 704), (704, 1280))
    for variant in (T2V_1_3B, T2V_14B, TI2V_5B):
        assert variant.defaults.negative_prompt == NEGATIVE_PROMPT
        for width, height in variant.defaults.sizes:
            variant.geometry.check_video_size(variant.defaults.frames, height, width)
    assert NEGATIVE_PROMPT.startswith("色调艳丽，过曝，静态") and NEGATIVE_PROMPT.endswith("倒着走")
    assert NEGATIVE_PROMPT.count("，") == 27 and len(NEGATIVE_PROMPT) == 137


def test_preview_factors() -> None:
    assert len(WAN21_PREVIEW.rgb_factors) == 16 and len(WAN22_PREVIEW.rgb_factors) == 48
    assert WAN21_PREVIEW.rgb_factors[0] == (-0.1299, -0.1692, 0.2932)
    assert WAN21_PREVIEW.rgb_factors[15] == (0.1984, 0.0913, 0.1861)
    assert WAN21_PREVIEW.bias == (-0.1835, -0.0868, -0.3360)
    assert WAN22_PREVIEW.rgb_factors[39] == (-0.3441, -0.3543, -0.2008)
    assert WAN22_PREVIEW.rgb_factors[47] == (-0.0837, 0.0168, 0.0055)
    assert WAN22_PREVIEW.bias == (0.0317, -0.0878, -0.1388)
    # column sums (computed from docs/families/wan.md §9): a transcription error in any row
    # changes them
    for preview, sums in ((WAN21_PREVIEW, [0.3887, 0.8771, 1.3152]),
                          (WAN22_PREVIEW, [-0.5209, -0.1927, 0.9241])):
        assert [round(sum(r[i] for r in preview.rgb_factors), 4) for i in range(3)] == sums
