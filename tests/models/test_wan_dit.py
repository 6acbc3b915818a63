"""The Wan DiT against diffusers' WanTransformer3DModel, reference numbers and its own contracts.

diffusers is a test-only oracle: our original-layout state dict is saved as safetensors,
renamed with the mapping table below (docs/families/wan.md §8.1) and loaded into diffusers strictly.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
from safetensors.torch import load_file, save_file

from studio.errors import CheckpointError
from studio.models.wan.dit import (
    FP32_PARAMETERS,
    WAN21_T2V_1_3B,
    WAN21_T2V_14B,
    WAN22_TI2V_5B,
    WanDiT,
    WanDiTConfig,
)
from studio.models.wan.rope import RopeCache, apply_rope, timestep_embedding

# Original Wan key → diffusers key. Block-level rules are written for "blocks.N." keys.
TOP_LEVEL_NAMES = {
    "patch_embedding.": "patch_embedding.",
    "text_embedding.0.": "condition_embedder.text_embedder.linear_1.",
    "text_embedding.2.": "condition_embedder.text_embedder.linear_2.",
    "time_embedding.0.": "condition_embedder.time_embedder.linear_1.",
    "time_embedding.2.": "condition_embedder.time_embedder.linear_2.",
    "time_projection.1.": "condition_embedder.time_proj.",
    "head.head.": "proj_out.",
    "head.modulation": "scale_shift_table",
}
BLOCK_NAMES = {
    "modulation": "scale_shift_table",
    "self_attn.q.": "attn1.to_q.",
    "self_attn.k.": "attn1.to_k.",
    "self_attn.v.": "attn1.to_v.",
    "self_attn.o.": "attn1.to_out.0.",
    "self_attn.norm_q.": "attn1.norm_q.",
    "self_attn.norm_k.": "attn1.norm_k.",
    "cross_attn.q.": "attn2.to_q.",
    "cross_attn.k.": "attn2.to_k.",
    "cross_attn.v.": "attn2.to_v.",
    "cross_attn.o.": "attn2.to_out.0.",
    "cross_attn.norm_q.": "attn2.norm_q.",
    "cross_attn.norm_k.": "attn2.norm_k.",
    "norm3.": "norm2.",  # diffusers calls the affine cross-attention norm "norm2"
    "ffn.0.": "ffn.net.0.proj.",
    "ffn.2.": "ffn.net.2.",
}
_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")


def to_diffusers_key(key: str) -> str:
    match = _BLOCK.match(key)
    if match:
        index, rest = match.groups()
        table, prefix = BLOCK_NAMES, f"blocks.{index}."
    else:
        rest, table, prefix = key, TOP_LEVEL_NAMES, ""
    for original, renamed in table.items():
        if rest.startswith(original):
            return prefix + renamed + rest[len(original) :]
    raise KeyError(f"no diffusers name for {key}")


def small_config(in_dim: int, head_dim: int = 32, heads: int = 2) -> WanDiTConfig:
    return WanDiTConfig(
        dim=head_dim * heads, ffn_dim=96, num_heads=heads, num_layers=2, in_dim=in_dim,
        out_dim=in_dim, text_dim=32, freq_dim=256, text_len=16,
    )  # fmt: skip


def random_dit(config: WanDiTConfig, seed: int = 0) -> WanDiT:
    """A DiT with random weights everywhere, including norms and modulation tables."""
    torch.manual_seed(seed)
    model = WanDiT(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                param.copy_(1.0 + 0.3 * torch.randn_like(param))
            elif "norm" in name or "modulation" in name or name.startswith("head.head"):
                param.copy_(0.3 * torch.randn_like(param))
    return model


def diffusers_twin(config: WanDiTConfig, path) -> torch.nn.Module:
    """Load our saved original-layout file into diffusers' model via the mapping table."""
    from diffusers import WanTransformer3DModel

    twin = WanTransformer3DModel(
        patch_size=config.patch_size, num_attention_heads=config.num_heads,
        attention_head_dim=config.head_dim, in_channels=config.in_dim,
        out_channels=config.out_dim, text_dim=config.text_dim, freq_dim=config.freq_dim,
        ffn_dim=config.ffn_dim, num_layers=config.num_layers, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", eps=config.eps,
    )  # fmt: skip
    renamed = {to_diffusers_key(k): v for k, v in load_file(str(path)).items()}
    twin.load_state_dict(renamed, strict=True)
    return twin.eval()


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def first_frame_timesteps(t: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
    """[B, L] Wan-unit timesteps: t per sample, 0 on the first latent frame's tokens."""
    f, h, w = grid
    per_token = t[:, None].repeat(1, f * h * w)
    per_token[:, : h * w] = 0.0
    return per_token


@pytest.mark.parametrize(("in_dim", "head_dim"), [(16, 32), (48, 40)], ids=["t2v", "ti2v"])
def test_matches_diffusers_global_and_per_token_timesteps(tmp_path, in_dim, head_dim):
    config = small_config(in_dim, head_dim)
    ours = random_dit(config)
    path = tmp_path / "dit.safetensors"
    save_file({k: v.contiguous() for k, v in ours.state_dict().items()}, str(path))
    reloaded = WanDiT(config).eval()
    reloaded.load_state_dict(load_file(str(path)), strict=True)
    twin = diffusers_twin(config, path)
    # diffusers derives the same per-axis RoPE split from the head dim.
    assert (twin.rope.t_dim, twin.rope.h_dim) == (
        2 * config.rope_pairs[0],
        2 * config.rope_pairs[1],
    )

    torch.manual_seed(1)
    x = torch.randn(2, in_dim, 3, 8, 12)
    context = torch.randn(2, 9, config.text_dim)
    context[:, 6:] = 0.0  # zero padding rows are attended, as in the original
    t = torch.tensor([999.0, 321.5])
    with torch.no_grad():
        ours_out = reloaded(x, t, context)
        twin_out = twin(x, t, context, return_dict=False)[0]
        assert ours_out.dtype == torch.float32 and ours_out.shape == x.shape
        assert rel_err(ours_out, twin_out) < 1e-5

        per_token = first_frame_timesteps(t, (3, 4, 6))
        ours_tok = reloaded(x, per_token, context)
        twin_tok = twin(x, per_token, context, return_dict=False)[0]
        assert rel_err(ours_tok, twin_tok) < 1e-5
    # The first-frame tokens really saw t = 0: the result differs from the global-t run.
    assert rel_err(ours_tok, ours_out) > 1e-3


def test_uniform_per_token_timesteps_equal_the_global_timestep():
    model = random_dit(small_config(16))
    x = torch.randn(2, 16, 2, 4, 6)
    context = torch.randn(2, 5, 32)
    t = torch.tensor([640.0, 17.25])
    with torch.no_grad():
        global_out = model(x, t, context)
        token_out = model(x, t[:, None].expand(2, 2 * 2 * 3), context)
        scalar_out = model(x[:1], torch.tensor(640.0), context[:1])
    torch.testing.assert_close(token_out, global_out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(scalar_out, global_out[:1], rtol=1e-5, atol=1e-5)


def test_velocity_is_forward_on_subsampled_scaled_timesteps():
    config = small_config(48)
    model = random_dit(config)
    torch.manual_seed(3)
    x = torch.randn(2, 48, 3, 6, 8)
    context = torch.randn(2, 4, config.text_dim)
    t_tok = torch.empty(2, 3, 6, 8)
    t_tok[0], t_tok[1] = 0.8, 0.35
    t_tok[:, 0] = 0.0  # first-frame conditioning mask: t = min(t, 1 − m) with m = 1
    t_tok[:, :, 1::2, :] = 7.0  # not a patch's first position: must be ignored
    t_tok[:, :, :, 1::2] = -3.0
    expected = torch.tensor(
        [[1000.0 * float(t_tok[b, f, 2 * i, 2 * j]) for f in range(3) for i in range(3)
          for j in range(4)] for b in range(2)],
        dtype=torch.float64,
    )  # fmt: skip
    assert expected.abs().max() <= 800.0 + 1e-3
    with torch.no_grad():
        v = model.velocity(x, t_tok, context)
        direct = model(x, expected, context)
    assert v.dtype == torch.float32 and v.shape == x.shape
    torch.testing.assert_close(v, direct, rtol=1e-5, atol=1e-6)


def test_bfloat16_weights_keep_precision_critical_parts_in_float32():
    config = small_config(16)
    model = random_dit(config)
    x = torch.randn(1, 16, 2, 4, 4)
    t_tok = torch.full((1, 2, 4, 4), 0.6)
    context = torch.randn(1, 5, 32)
    with torch.no_grad():
        reference = model.velocity(x, t_tok, context)
        model.to_dtype(torch.bfloat16)
        low = model.velocity(x, t_tok, context)
    for name, param in model.named_parameters():
        kept = any(fragment in name for fragment in FP32_PARAMETERS)
        assert param.dtype == (torch.float32 if kept else torch.bfloat16), name
    assert model.dtype == torch.bfloat16
    assert low.dtype == torch.float32
    assert 0.0 < rel_err(low, reference) < 3e-2


EXPECTED_SIZES = [
    (WAN21_T2V_1_3B, 1_418_996_800, 825),
    (WAN21_T2V_14B, 14_288_491_584, 1095),
    (WAN22_TI2V_5B, 4_999_787_712, 825),
]


@pytest.mark.parametrize(("config", "params", "tensors"), EXPECTED_SIZES, ids=["1.3B", "14B", "5B"])
def test_real_size_parameter_counts_on_meta(config, params, tensors):
    with torch.device("meta"):
        model = WanDiT(config)
    assert sum(p.numel() for p in model.parameters()) == params
    assert len(model.state_dict()) == tensors
    assert config.rope_pairs == (22, 21, 21)


def test_key_names_and_shapes_follow_the_original_layout():
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in WanDiT(WAN21_T2V_1_3B).state_dict().items()}
    expected = {
        "patch_embedding.weight": (1536, 16, 1, 2, 2),
        "patch_embedding.bias": (1536,),
        "text_embedding.0.weight": (1536, 4096),
        "text_embedding.2.weight": (1536, 1536),
        "time_embedding.0.weight": (1536, 256),
        "time_embedding.2.bias": (1536,),
        "time_projection.1.weight": (9216, 1536),
        "time_projection.1.bias": (9216,),
        "blocks.0.modulation": (1, 6, 1536),
        "blocks.29.modulation": (1, 6, 1536),
        "blocks.7.self_attn.q.weight": (1536, 1536),
        "blocks.7.self_attn.o.bias": (1536,),
        "blocks.7.self_attn.norm_q.weight": (1536,),
        "blocks.7.self_attn.norm_k.weight": (1536,),
        "blocks.7.norm3.weight": (1536,),
        "blocks.7.norm3.bias": (1536,),
        "blocks.7.cross_attn.v.weight": (1536, 1536),
        "blocks.7.cross_attn.norm_k.weight": (1536,),
        "blocks.7.ffn.0.weight": (8960, 1536),
        "blocks.7.ffn.2.weight": (1536, 8960),
        "head.modulation": (1, 2, 1536),
        "head.head.weight": (64, 1536),
        "head.head.bias": (64,),
    }
    for key, shape in expected.items():
        assert shapes[key] == shape, key
    assert not [k for k in shapes if re.search(r"norm[12]\.|head\.norm|freqs|rope", k)]
    with torch.device("meta"):
        ti2v = {k: tuple(v.shape) for k, v in WanDiT(WAN22_TI2V_5B).state_dict().items()}
    assert ti2v["patch_embedding.weight"] == (3072, 48, 1, 2, 2)
    assert ti2v["head.head.weight"] == (192, 3072)
    assert ti2v["time_projection.1.weight"] == (18432, 3072)
    assert ti2v["blocks.29.ffn.0.weight"] == (14336, 3072)


@pytest.mark.parametrize("config", [WAN21_T2V_1_3B, WAN22_TI2V_5B], ids=["1.3B", "5B"])
def test_mapping_covers_diffusers_at_real_size(config):
    from diffusers import WanTransformer3DModel

    with torch.device("meta"):
        ours = WanDiT(config).state_dict()
        twin = WanTransformer3DModel(
            num_attention_heads=config.num_heads, attention_head_dim=config.head_dim,
            in_channels=config.in_dim, out_channels=config.out_dim, ffn_dim=config.ffn_dim,
            num_layers=config.num_layers,
        ).state_dict()  # fmt: skip
    renamed = {to_diffusers_key(k): tuple(v.shape) for k, v in ours.items()}
    assert renamed == {k: tuple(v.shape) for k, v in twin.items()}


def test_rope_tables_follow_the_original_split_and_frequencies():
    """Head dim 128: pairs [22, 21, 21]; pair j of an axis with D real dims turns by
    pos·10000^(−2j/D). Checked token by token against float64 complex arithmetic."""
    grid = (3, 4, 5)
    table = RopeCache((22, 21, 21)).get(grid, torch.device("cpu"))
    assert table.shape == (60, 64) and table.dtype == torch.complex64
    torch.manual_seed(5)
    x = torch.randn(1, 2, 60, 128)
    rotated = apply_rope(x, table)
    for token in (0, 7, 33, 59):
        f, rest = divmod(token, 20)
        h, w = divmod(rest, 5)
        angles = [f * 10000 ** (-2 * j / 44) for j in range(22)]
        angles += [h * 10000 ** (-2 * j / 42) for j in range(21)]
        angles += [w * 10000 ** (-2 * j / 42) for j in range(21)]
        for head in range(2):
            pair = x[0, head, token].double().view(64, 2)
            z = torch.complex(pair[:, 0], pair[:, 1]) * torch.polar(
                torch.ones(64, dtype=torch.float64), torch.tensor(angles, dtype=torch.float64)
            )
            want = torch.stack([z.real, z.imag], dim=-1).flatten()
            torch.testing.assert_close(rotated[0, head, token].double(), want, rtol=0, atol=2e-6)


def test_rope_cache_reuses_tables_per_grid_and_is_not_state():
    model = WanDiT(small_config(16))
    cache = model._rope
    first = cache.get((2, 3, 4), torch.device("cpu"))
    assert cache.get((2, 3, 4), torch.device("cpu")) is first
    assert cache.get((2, 3, 5), torch.device("cpu")) is not first
    assert not [k for k in model.state_dict() if "rope" in k or "freq" in k]
    small = RopeCache((6, 5, 5), max_entries=2)
    a = small.get((1, 1, 1), torch.device("cpu"))
    small.get((1, 1, 2), torch.device("cpu"))
    small.get((1, 1, 3), torch.device("cpu"))
    assert small.get((1, 1, 1), torch.device("cpu")) is not a  # evicted, rebuilt


def test_timestep_embedding_reference_values():
    emb = timestep_embedding(torch.tensor([[999.0, 0.0]]), 256)
    assert emb.shape == (1, 2, 256) and emb.dtype == torch.float32
    for i in (0, 1, 64, 127):
        angle = 999.0 * 10000.0 ** (-i / 128)
        assert emb[0, 0, i].item() == pytest.approx(math.cos(angle), abs=1e-7)
        assert emb[0, 0, 128 + i].item() == pytest.approx(math.sin(angle), abs=1e-7)
    assert torch.equal(emb[0, 1], torch.cat([torch.ones(128), torch.zeros(128)]))


def test_config_round_trips_and_reads_original_config_json():
    assert WanDiTConfig.from_dict(WAN22_TI2V_5B.to_dict()) == WAN22_TI2V_5B
    original = {
        "_class_name": "WanModel", "_diffusers_version": "0.30.0", "model_type": "t2v",
        "text_len": 512, "in_dim": 16, "dim": 1536, "ffn_dim": 8960, "freq_dim": 256,
        "out_dim": 16, "num_heads": 12, "num_layers": 30, "eps": 1e-06,
    }  # fmt: skip
    assert WanDiTConfig.from_wan_config_json(original) == WAN21_T2V_1_3B
    ti2v = dict(original, model_type="ti2v", in_dim=48, out_dim=48, dim=3072, ffn_dim=14336,
                num_heads=24)  # fmt: skip
    assert WanDiTConfig.from_wan_config_json(ti2v) == WAN22_TI2V_5B
    i2v = WanDiTConfig.from_wan_config_json(dict(original, model_type="i2v", in_dim=36))
    assert (i2v.in_dim, i2v.out_dim) == (36, 16)  # Wan 2.2 I2V A14B: 16 + 4 mask + 16 image
    with pytest.raises(CheckpointError, match="vace"):
        WanDiTConfig.from_wan_config_json(dict(original, model_type="vace"))
    with pytest.raises(CheckpointError, match="image-to-video"):
        WanDiTConfig.from_wan_config_json(dict(original, in_dim=40))
    with pytest.raises(CheckpointError, match="Unknown"):
        WanDiTConfig.from_dict({**WAN21_T2V_1_3B.to_dict(), "window_size": [-1, -1]})
    with pytest.raises(CheckpointError, match="divisible"):
        WanDiTConfig.from_dict({**WAN21_T2V_1_3B.to_dict(), "num_heads": 7})


@pytest.mark.parametrize("config", [WAN21_T2V_1_3B, WAN21_T2V_14B, WAN22_TI2V_5B])
def test_config_from_state_dict_shapes(config):
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in WanDiT(config).state_dict().items()}
    assert WanDiTConfig.from_state_dict_shapes(shapes) == config


def test_image_to_video_checkpoints_are_read_or_refused_by_their_branch():
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in WanDiT(WAN21_T2V_14B).state_dict().items()}
    shapes["patch_embedding.weight"] = (5120, 36, 1, 2, 2)  # I2V A14B: mask + image channels
    assert WanDiTConfig.from_state_dict_shapes(shapes).in_dim == 36
    shapes["patch_embedding.weight"] = (5120, 40, 1, 2, 2)
    with pytest.raises(CheckpointError, match="input channels"):
        WanDiTConfig.from_state_dict_shapes(shapes)
    shapes["patch_embedding.weight"] = (5120, 36, 1, 2, 2)
    shapes["img_emb.proj.1.weight"] = (1280, 1280)  # Wan 2.1 I2V-14B's CLIP branch
    assert WanDiTConfig.from_state_dict_shapes(shapes).image_dim == 1280
    shapes["img_emb.emb_pos"] = (1, 514, 1280)  # FLF2V's two images
    assert WanDiTConfig.from_state_dict_shapes(shapes).image_tokens == 514
    shapes["vace_blocks.0.modulation"] = (1, 6, 5120)
    with pytest.raises(CheckpointError, match="VACE"):
        WanDiTConfig.from_state_dict_shapes(shapes)
    with pytest.raises(CheckpointError, match="original-layout"):
        WanDiTConfig.from_state_dict_shapes({"proj_out.weight": (64, 1536)})


def test_bad_inputs_are_rejected():
    model = WanDiT(small_config(16))
    context = torch.zeros(1, 4, 32)
    with pytest.raises(ValueError, match="x must be"):
        model(torch.zeros(1, 48, 1, 4, 4), torch.zeros(1), context)
    with pytest.raises(ValueError, match="multiple"):
        model(torch.zeros(1, 16, 1, 4, 5), torch.zeros(1), context)
    with pytest.raises(ValueError, match="timestep"):
        model(torch.zeros(1, 16, 1, 4, 4), torch.zeros(1, 3), context)
    with pytest.raises(ValueError, match="context"):
        model(torch.zeros(1, 16, 1, 4, 4), torch.zeros(1), torch.zeros(2, 4, 32))
    with pytest.raises(ValueError, match="t_tok"):
        model.velocity(torch.zeros(1, 16, 1, 4, 4), torch.zeros(1, 1, 4, 2), context)
