"""Open-Sora 2.0's MMDiT against diffusers' FluxTransformer2DModel, both checkpoint layouts, config.

diffusers is a test-only oracle. Our state dict is renamed to diffusers' Flux names with the
table below (learned from ``convert_flux_transformer_checkpoint_to_diffusers`` in diffusers'
``loaders/single_file_utils.py``): the single block's ``v_mlp`` splits into ``attn.to_v`` and
``proj_mlp``, and the final adaLN's (shift, scale) halves swap to diffusers' (scale, shift).
``cond_in`` has no diffusers counterpart: ``img_in(x) + cond_in(c)`` is one linear layer over
``cat([x, c])`` with weight ``[W_img | W_cond]`` and bias ``b_img + b_cond``, so diffusers'
``x_embedder`` gets that folded layer and the concatenated input.
"""

from __future__ import annotations

import re

import pytest
import torch

from studio.errors import CheckpointError
from studio.models.opensora.mmdit import OpenSoraMMDiT, image_ids, text_ids, unfuse_qkv
from studio.models.opensora.mmdit_config import (
    OPEN_SORA_V2,
    MMDiTConfig,
    config_from_state_dict_shapes,
)

diffusers = pytest.importorskip("diffusers")

TINY = MMDiTConfig(in_channels=16, hidden_size=64, num_heads=2, depth=2, depth_single_blocks=2,
                   axes_dim=(8, 12, 12), vec_in_dim=24, context_in_dim=32)  # fmt: skip
GRID = (2, 3, 4)  # packed tokens (t, h, w)
TXT_LEN = 5

_DOUBLE_RULES = (
    ("img_mod.lin", "norm1.linear"), ("txt_mod.lin", "norm1_context.linear"),
    ("img_attn.q_proj", "attn.to_q"), ("img_attn.k_proj", "attn.to_k"),
    ("img_attn.v_proj", "attn.to_v"), ("txt_attn.q_proj", "attn.add_q_proj"),
    ("txt_attn.k_proj", "attn.add_k_proj"), ("txt_attn.v_proj", "attn.add_v_proj"),
    ("img_attn.norm.query_norm.scale", "attn.norm_q.weight"),
    ("img_attn.norm.key_norm.scale", "attn.norm_k.weight"),
    ("txt_attn.norm.query_norm.scale", "attn.norm_added_q.weight"),
    ("txt_attn.norm.key_norm.scale", "attn.norm_added_k.weight"),
    ("img_attn.proj", "attn.to_out.0"), ("txt_attn.proj", "attn.to_add_out"),
    ("img_mlp.0", "ff.net.0.proj"), ("img_mlp.2", "ff.net.2"),
    ("txt_mlp.0", "ff_context.net.0.proj"), ("txt_mlp.2", "ff_context.net.2"),
)  # fmt: skip
_SINGLE_RULES = (
    ("modulation.lin", "norm.linear"), ("q_proj", "attn.to_q"), ("k_proj", "attn.to_k"),
    ("norm.query_norm.scale", "attn.norm_q.weight"), ("norm.key_norm.scale", "attn.norm_k.weight"),
    ("linear2", "proj_out"),
)  # fmt: skip
_TOP_RULES = (
    ("time_in.in_layer", "time_text_embed.timestep_embedder.linear_1"),
    ("time_in.out_layer", "time_text_embed.timestep_embedder.linear_2"),
    ("vector_in.in_layer", "time_text_embed.text_embedder.linear_1"),
    ("vector_in.out_layer", "time_text_embed.text_embedder.linear_2"),
    ("txt_in", "context_embedder"), ("final_layer.linear", "proj_out"),
)  # fmt: skip


def _rename(rest: str, rules: tuple[tuple[str, str], ...]) -> str | None:
    for ours, theirs in rules:
        if rest == ours or rest.startswith(ours + "."):
            return theirs + rest[len(ours) :]
    return None


def _block_key(key: str) -> str | None:
    if m := re.match(r"^double_blocks\.(\d+)\.(.+)$", key):
        new = _rename(m.group(2), _DOUBLE_RULES)
        return None if new is None else f"transformer_blocks.{m.group(1)}.{new}"
    if m := re.match(r"^single_blocks\.(\d+)\.(.+)$", key):
        new = _rename(m.group(2), _SINGLE_RULES)
        return None if new is None else f"single_transformer_blocks.{m.group(1)}.{new}"
    return _rename(key, _TOP_RULES)


def _special(sd: dict[str, torch.Tensor], key: str, value: torch.Tensor, dim: int) -> None:
    """The keys without a plain rename: v_mlp, the final adaLN, img_in + cond_in."""
    if m := re.match(r"^single_blocks\.(\d+)\.v_mlp\.(weight|bias)$", key):
        prefix, suffix = f"single_transformer_blocks.{m.group(1)}", m.group(2)
        sd[f"{prefix}.attn.to_v.{suffix}"], sd[f"{prefix}.proj_mlp.{suffix}"] = value.split(
            [dim, len(value) - dim]
        )
    elif key.startswith("final_layer.adaLN_modulation.1."):
        shift, scale = value.chunk(2, dim=0)
        sd["norm_out.linear." + key.rsplit(".", 1)[1]] = torch.cat([scale, shift])
    else:
        raise AssertionError(f"unmapped key {key}")


def to_diffusers(ours: dict[str, torch.Tensor], dim: int) -> dict[str, torch.Tensor]:
    """Our state dict → FluxTransformer2DModel's, ``cond_in`` folded into ``x_embedder``."""
    sd: dict[str, torch.Tensor] = {}
    for key, value in ours.items():
        if key.startswith(("img_in.", "cond_in.")):
            continue
        new = _block_key(key)
        if new is None:
            _special(sd, key, value, dim)
        else:
            sd[new] = value
    sd["x_embedder.weight"] = torch.cat([ours["img_in.weight"], ours["cond_in.weight"]], dim=1)
    sd["x_embedder.bias"] = ours["img_in.bias"] + ours["cond_in.bias"]
    return sd


def random_model(config: MMDiTConfig = TINY, seed: int = 0) -> OpenSoraMMDiT:
    """A float32 model with every parameter random (norm scales around 1, cond_in non-zero)."""
    torch.manual_seed(seed)
    model = OpenSoraMMDiT(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(".scale"):
                param.copy_(1 + 0.2 * torch.randn_like(param))
            else:
                param.copy_(torch.randn_like(param) / param.shape[-1] ** 0.5)
    return model.eval()


def diffusers_twin(model: OpenSoraMMDiT) -> torch.nn.Module:
    """FluxTransformer2DModel with the same weights (x_embedder reads ``cat([x, cond])``)."""
    c = model.config
    flux = diffusers.FluxTransformer2DModel(
        patch_size=1, in_channels=c.cond_channels + c.in_channels, out_channels=c.in_channels,
        num_layers=c.depth, num_single_layers=c.depth_single_blocks, attention_head_dim=c.head_dim,
        num_attention_heads=c.num_heads, joint_attention_dim=c.context_in_dim,
        pooled_projection_dim=c.vec_in_dim, guidance_embeds=False, axes_dims_rope=c.axes_dim,
    )  # fmt: skip
    flux.load_state_dict(to_diffusers(model.state_dict(), c.hidden_size), strict=True)
    return flux.eval()


def inputs(config: MMDiTConfig = TINY, batch: int = 2, seed: int = 1) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    length = GRID[0] * GRID[1] * GRID[2]
    return {
        "img_tokens": torch.randn(batch, length, config.in_channels, generator=gen),
        "img_ids": image_ids(*GRID, batch=batch),
        "txt": torch.randn(batch, TXT_LEN, config.context_in_dim, generator=gen),
        "txt_ids": text_ids(TXT_LEN, batch=batch),
        "t": torch.tensor([0.83, 0.21])[:batch],
        "y_vec": torch.randn(batch, config.vec_in_dim, generator=gen),
        "cond": torch.randn(batch, length, config.cond_channels, generator=gen),
    }


def reference(
    flux: torch.nn.Module, x: dict[str, torch.Tensor], cond: torch.Tensor
) -> torch.Tensor:
    """diffusers' output; its Flux multiplies the timestep by 1000 itself, so t goes in as is."""
    with torch.no_grad():
        return flux(hidden_states=torch.cat([x["img_tokens"], cond], dim=-1),
                    encoder_hidden_states=x["txt"], pooled_projections=x["y_vec"],
                    timestep=x["t"], img_ids=x["img_ids"][0], txt_ids=x["txt_ids"][0],
                    return_dict=False)[0]  # fmt: skip


def relative_error(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return ((ours - ref).norm() / ref.norm()).item()


@pytest.mark.parametrize("mode", ["t2v", "i2v"])
def test_matches_diffusers_flux(mode: str) -> None:
    model = random_model()
    flux = diffusers_twin(model)
    x = inputs()
    given = x.pop("cond")
    cond = given if mode == "i2v" else None  # text-to-video: the original's all-zero cond
    ref = reference(flux, x, given if mode == "i2v" else torch.zeros_like(given))
    with torch.no_grad():
        ours = model(**x, cond=cond)
    assert ours.shape == (2, 24, TINY.in_channels) and ours.dtype == torch.float32
    assert relative_error(ours, ref) < 1e-5, relative_error(ours, ref)
    assert ref.std() > 0.1  # the comparison is not between near-zero outputs


def test_conditioning_changes_the_output() -> None:
    model, x = random_model(), inputs()
    cond = x.pop("cond")
    with torch.no_grad():
        assert relative_error(model(**x, cond=cond), model(**x)) > 1e-2
        assert torch.equal(model(**x), model(**x, cond=torch.zeros_like(cond)))


def fuse(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our layout → the fused one (``qkv``, ``linear1``), concatenating along dim 0."""
    out = dict(sd)
    for key in list(out):
        m = re.match(r"^(.+)\.q_proj\.(weight|bias)$", key)
        if m is None:
            continue
        prefix, suffix = m.groups()
        third = "v_proj" if f"{prefix}.v_proj.{suffix}" in out else "v_mlp"
        parts = [out.pop(f"{prefix}.{name}.{suffix}") for name in ("q_proj", "k_proj", third)]
        out[f"{prefix}.{'qkv' if third == 'v_proj' else 'linear1'}.{suffix}"] = torch.cat(parts)
    return out


def test_fused_layout_loads_to_the_same_output() -> None:
    model, x = random_model(), inputs()
    fused = fuse(model.state_dict())
    assert (
        "single_blocks.0.linear1.weight" in fused and "double_blocks.1.txt_attn.qkv.bias" in fused
    )
    assert not any("q_proj" in k for k in fused)
    assert config_from_state_dict_shapes(fused, axes_dim=TINY.axes_dim) == TINY
    loaded = OpenSoraMMDiT(TINY)
    loaded.load_state_dict(unfuse_qkv(fused, TINY.hidden_size), strict=True)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(**x), model(**x))


def test_config_from_shapes_round_trips() -> None:
    assert config_from_state_dict_shapes(random_model().state_dict(), TINY.axes_dim) == TINY
    with torch.device("meta"):
        published = OpenSoraMMDiT(OPEN_SORA_V2)
    assert config_from_state_dict_shapes(published.state_dict()) == OPEN_SORA_V2
    with pytest.raises(CheckpointError, match="axes_dim"):
        config_from_state_dict_shapes(random_model().state_dict())


def test_published_model_size_and_keys() -> None:
    with torch.device("meta"):
        model = OpenSoraMMDiT(OPEN_SORA_V2)
    sd = model.state_dict()
    assert sum(p.numel() for p in model.parameters()) == 11_891_390_528
    assert len(sd) == 1082
    assert sd["cond_in.weight"].shape == (3072, 68)
    assert sd["single_blocks.37.v_mlp.weight"].shape == (15360, 3072)
    assert sd["double_blocks.18.txt_attn.norm.key_norm.scale"].shape == (128,)
    assert sd["final_layer.adaLN_modulation.1.weight"].shape == (6144, 3072)


def test_bfloat16_weights_keep_the_precision_policy() -> None:
    model, x = random_model(), inputs()
    with torch.no_grad():
        full = model(**x)
        low = model.to_dtype(torch.bfloat16)
        assert low.double_blocks[0].img_attn.q_proj.weight.dtype == torch.bfloat16
        assert low.double_blocks[0].img_mod.lin.weight.dtype == torch.float32
        assert low.single_blocks[0].norm.query_norm.scale.dtype == torch.float32
        assert low.time_in.in_layer.weight.dtype == torch.float32
        assert relative_error(low(**x), full) < 0.05
