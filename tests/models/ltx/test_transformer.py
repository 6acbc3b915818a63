"""The LTX-Video transformer against diffusers' ``LTXVideoTransformer3DModel``; config, keys, RoPE.

diffusers is a test-only oracle: its model is built from ``config.to_diffusers()`` and holds our
random weights renamed by ``diffusers_names``. It takes per-token timesteps ``[B, L]`` in its own
units (σ·1000: its transformer has no time multiplier) and precomputed ``video_coords``
``[B, 3, L]`` in the same units as ours (seconds, pixels, pixels; it divides by 20, 2048, 2048
itself), so causal positions and keyframe offsets are expressed through the coordinates.
The spatio-temporal guidance perturbations are restated on the diffusers model with forward
hooks: the perturbed rows' self-attention output (or block output) is replaced by what the
original ``SkipLayerStrategy`` mode computes.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from studio.errors import CheckpointError
from studio.models.ltx.rope import video_coords
from studio.models.ltx.transformer import LTXTransformer
from studio.models.ltx.transformer_blocks import SkipBlocks
from studio.models.ltx.transformer_config import (
    LTX_2B,
    LTX_13B,
    TINY,
    LTXTransformerConfig,
    published,
)
from studio.models.ltx.transformer_keys import (
    PREFIX,
    diffusers_names,
    own_transformer_state,
    transformer_layout,
)
from tests.models.ltx.tiny_ltx_transformer import diffusers_twin, random_transformer

pytest.importorskip("diffusers")

GRID = (3, 2, 3)  # latent (f, h, w)
FPS = 24.0
TEXT = 5
#: The ``transformer`` object of a 2B single file's header (values as LTX-Video's
#: ``OURS_TRANSFORMER_CONFIG``, plus the 0.9.5+ causal flag).
ORIGINAL_2B = {
    "_class_name": "Transformer3DModel", "activation_fn": "gelu-approximate",
    "attention_bias": True, "attention_head_dim": 64, "attention_type": "default",
    "caption_channels": 4096, "cross_attention_dim": 2048, "double_self_attention": False,
    "dropout": 0.0, "in_channels": 128, "norm_elementwise_affine": False, "norm_eps": 1e-06,
    "norm_num_groups": 32, "num_attention_heads": 32, "num_embeds_ada_norm": 1000,
    "num_layers": 28, "num_vector_embeds": None, "only_cross_attention": False,
    "out_channels": 128, "project_to_2d_pos": True, "upcast_attention": False,
    "use_linear_projection": False, "qk_norm": "rms_norm", "standardization_norm": "rms_norm",
    "positional_embedding_type": "rope", "positional_embedding_theta": 10000.0,
    "positional_embedding_max_pos": [20, 2048, 2048], "timestep_scale_multiplier": 1000,
    "causal_temporal_positioning": True,
}  # fmt: skip
#: diffusers' ``transformer/config.json`` of the 2B (LTX-Video's ``DIFFUSERS_TRANSFORMER_CONFIG``).
DIFFUSERS_2B = {
    "_class_name": "LTXVideoTransformer3DModel", "activation_fn": "gelu-approximate",
    "attention_bias": True, "attention_head_dim": 64, "attention_out_bias": True,
    "caption_channels": 4096, "cross_attention_dim": 2048, "in_channels": 128,
    "norm_elementwise_affine": False, "norm_eps": 1e-06, "num_attention_heads": 32,
    "num_layers": 28, "out_channels": 128, "patch_size": 1, "patch_size_t": 1,
    "qk_norm": "rms_norm_across_heads",
}  # fmt: skip


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _inputs(coords: torch.Tensor, batch: int = 2, uniform: bool = False, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    length = coords.shape[-1]
    x = torch.randn(batch, length, TINY.in_channels, generator=g)
    t = torch.rand(batch, 1 if uniform else length, generator=g).expand(batch, length)
    context = torch.randn(batch, TEXT, TINY.caption_channels, generator=g)
    mask = torch.ones(batch, TEXT)
    mask[0, 3:] = 0  # row 0 has two padding tokens
    return x, t.contiguous(), context, mask, coords.expand(batch, -1, -1).contiguous()


def _theirs(twin, x, t, context, mask, coords) -> torch.Tensor:
    return twin(hidden_states=x, encoder_hidden_states=context, timestep=t * 1000,
                encoder_attention_mask=mask, video_coords=coords, return_dict=False)[0]  # fmt: skip


def _keyframe_coords() -> torch.Tensor:
    """A keyframe's latent frame appended before the video, pinned at pixel frame 16."""
    keyframe = video_coords(1, GRID[1], GRID[2], fps=FPS, causal=True, frame_offset=16)
    return torch.cat([keyframe, video_coords(*GRID, fps=FPS, causal=True)], dim=1)


@pytest.mark.parametrize("case", ["plain", "causal", "keyframe", "uniform_t"])
def test_matches_diffusers(case: str) -> None:
    model = random_transformer()
    twin = diffusers_twin(model)
    coords = video_coords(*GRID, fps=FPS, causal=case != "plain")
    if case == "keyframe":
        coords = _keyframe_coords()
    inputs = _inputs(coords, uniform=case == "uniform_t")
    with torch.no_grad():
        ours, theirs = model(*inputs), _theirs(twin, *inputs)
    assert ours.shape == (2, coords.shape[-1], TINY.out_channels)
    assert _relative(ours, theirs) < 1e-5


def test_text_padding_and_time_change_the_output() -> None:
    model = random_transformer()
    x, t, context, mask, coords = _inputs(video_coords(*GRID, fps=FPS, causal=True))
    with torch.no_grad():
        base = model(x, t, context, mask, coords)
        padded = context.clone()
        padded[0, 3:] += 5.0  # only padding tokens of row 0 change: no effect
        assert torch.allclose(model(x, t, padded, mask, coords), base, atol=1e-3, rtol=0)
        later = t.clone()
        later[0, 0] = 1 - later[0, 0]
        assert not torch.allclose(model(x, later, context, mask, coords), base)


def _attention_hook(twin, block: int, rows: torch.Tensor, mode: str):
    def hook(module, args, kwargs, output):
        h = kwargs["hidden_states"]
        read = module.to_v(h) if mode == "attention_values" else h
        return torch.where(rows.view(-1, 1, 1), module.to_out[0](read), output)

    return twin.transformer_blocks[block].attn1.register_forward_hook(hook, with_kwargs=True)


def _block_hook(twin, block: int, rows: torch.Tensor):
    def hook(module, args, kwargs, output):
        return torch.where(rows.view(-1, 1, 1), kwargs["hidden_states"], output)

    return twin.transformer_blocks[block].register_forward_hook(hook, with_kwargs=True)


@pytest.mark.parametrize("mode", ["attention_values", "attention_skip", "transformer_block"])
@pytest.mark.parametrize("blocks", [(1,), (0, 1)])
def test_skip_modes_match_restatement(mode: str, blocks: tuple[int, ...]) -> None:
    model = random_transformer()
    twin = diffusers_twin(model)
    inputs = _inputs(video_coords(*GRID, fps=FPS, causal=True))
    rows = torch.tensor([False, True])
    hooks = [_block_hook(twin, b, rows) if mode == "transformer_block"
             else _attention_hook(twin, b, rows, mode) for b in blocks]  # fmt: skip
    with torch.no_grad():
        ours = model(*inputs, skip=SkipBlocks(blocks, rows, mode))
        theirs = _theirs(twin, *inputs)
        plain = model(*inputs)
    for hook in hooks:
        hook.remove()
    assert _relative(ours, theirs) < 1e-5
    assert torch.equal(ours[0], plain[0])  # unperturbed row untouched
    assert _relative(ours[1], plain[1]) > 1e-3  # the perturbation did something


def test_residual_mode_changes_nothing_as_in_the_original() -> None:
    model = random_transformer()
    inputs = _inputs(video_coords(*GRID, fps=FPS, causal=True))
    with torch.no_grad():
        skipped = model(*inputs, skip=SkipBlocks((0, 1), torch.tensor([True, True]), "residual"))
        assert torch.equal(skipped, model(*inputs))


def test_skip_blocks_refuses_bad_values() -> None:
    with pytest.raises(ValueError, match="skip mode"):
        SkipBlocks((0,), torch.tensor([True]), "stg_x")
    with pytest.raises(ValueError, match="bool"):
        SkipBlocks((0,), torch.tensor([1]), "residual")
    model = random_transformer()
    inputs = _inputs(video_coords(*GRID, fps=FPS, causal=True))
    with pytest.raises(ValueError, match="outside"):
        model(*inputs, skip=SkipBlocks((2,), torch.tensor([True, False])))


@pytest.mark.parametrize("frame_offset", [0, 16])
def test_causal_coords_match_diffusers_condition_pipeline(frame_offset: int) -> None:
    from diffusers import LTXConditionPipeline

    ids = LTXConditionPipeline._prepare_video_ids(1, *GRID)
    theirs = LTXConditionPipeline._scale_video_ids(ids, 32, 8, frame_offset).float()[0]
    theirs[0] = theirs[0] * (1.0 / FPS)
    ours = video_coords(*GRID, fps=FPS, causal=True, frame_offset=frame_offset)
    assert torch.equal(ours, theirs)


def test_video_coords_values() -> None:
    causal = video_coords(3, 1, 2, fps=8.0, causal=True, frame_offset=16)
    # latent frames 0, 1, 2 → pixel frames 0, 1, 9, then + 16, then / 8 fps
    assert causal[0].tolist() == [2.0, 2.0, 2.125, 2.125, 3.125, 3.125]
    assert causal[2].tolist() == [0.0, 32.0] * 3  # (f, h, w) order: x fastest
    plain = video_coords(2, 2, 1, fps=8.0, causal=False)
    assert plain.tolist() == [[0.0, 0.0, 1.0, 1.0], [0.0, 32.0, 0.0, 32.0], [0.0] * 4]


def test_published_2b_size_on_meta() -> None:
    with torch.device("meta"):
        model = LTXTransformer(published("ltx-2b"))
    state = model.state_dict()
    assert sum(p.numel() for p in model.parameters()) == 1_923_385_472
    assert len(state) == 715
    assert tuple(state["adaln_single.linear.weight"].shape) == (12288, 2048)
    assert tuple(state["transformer_blocks.27.attn2.k_norm.weight"].shape) == (2048,)
    assert tuple(state["transformer_blocks.27.ff.net.0.proj.weight"].shape) == (8192, 2048)
    assert published("ltx-13b").dim == 4096 and LTX_13B.num_layers == 48


def test_configs_read_the_published_files() -> None:
    causal_2b = replace(LTX_2B, causal_temporal_positioning=True)  # 0.9.5 and later
    assert LTXTransformerConfig.from_original(ORIGINAL_2B) == causal_2b
    older = {k: v for k, v in ORIGINAL_2B.items() if k != "causal_temporal_positioning"}
    assert LTXTransformerConfig.from_original(older) == LTX_2B  # 0.9.0 / 0.9.1: no field
    assert LTXTransformerConfig.from_diffusers(DIFFUSERS_2B) == LTX_2B


@pytest.mark.parametrize("config", [TINY, LTX_2B, LTX_13B])
def test_config_round_trips_through_json(config: LTXTransformerConfig) -> None:
    original = json.loads(json.dumps(config.to_original()))
    assert LTXTransformerConfig.from_original(original) == config
    theirs = json.loads(json.dumps(config.to_diffusers()))
    causal = config.causal_temporal_positioning
    assert LTXTransformerConfig.from_diffusers(theirs, causal_temporal_positioning=causal) == config


@pytest.mark.parametrize(("key", "value", "match"), [
    ("num_layers", "28", "'num_layers' is '28'; expected a positive integer"),
    ("num_attention_heads", 0, "'num_attention_heads' is 0"),
    ("qk_norm", "layer_norm", "'qk_norm' is 'layer_norm'; expected 'rms_norm'"),
    ("positional_embedding_max_pos", [20, 2048], "three positive numbers"),
    ("causal_temporal_positioning", "yes", "true or false"),
    ("cross_attention_dim", 4096, "the inner width 2048"),
    ("positional_embedding_theta", None, "'positional_embedding_theta' is None"),
])  # fmt: skip
def test_bad_original_field_is_named(key: str, value: object, match: str) -> None:
    with pytest.raises(CheckpointError, match=match):
        LTXTransformerConfig.from_original({**ORIGINAL_2B, key: value})


def test_missing_and_bad_diffusers_fields() -> None:
    without = {k: v for k, v in ORIGINAL_2B.items() if k != "num_layers"}
    with pytest.raises(CheckpointError, match="no field 'num_layers'"):
        LTXTransformerConfig.from_original(without)
    with pytest.raises(CheckpointError, match="'patch_size' is 2"):
        LTXTransformerConfig.from_diffusers({**DIFFUSERS_2B, "patch_size": 2})
    with pytest.raises(ValueError, match="diffusers fixes"):
        replace(TINY, rope_theta=5000.0).to_diffusers()


def test_state_dict_layouts() -> None:
    state = random_transformer().state_dict()
    single_file = {PREFIX + k: v for k, v in state.items()} | {"vae.decoder.x": torch.zeros(1)}
    theirs = diffusers_names(state)
    assert "proj_in.weight" in theirs and "transformer_blocks.0.attn1.norm_q.weight" in theirs
    assert "time_embed.emb.timestep_embedder.linear_1.weight" in theirs
    assert transformer_layout(single_file) == "original"
    assert transformer_layout(theirs) == "diffusers"
    for raw in (state, single_file, theirs):
        own = own_transformer_state(raw)
        assert own.keys() == state.keys()
        LTXTransformer(TINY).load_state_dict(own, strict=True)
    with pytest.raises(CheckpointError, match="mixes both"):
        transformer_layout(["proj_in.weight", "patchify_proj.weight"])
    with pytest.raises(CheckpointError, match="no patchify_proj"):
        transformer_layout(["vae.decoder.x"])
