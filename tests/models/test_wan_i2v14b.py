"""Wan 2.1 I2V/FLF2V-14B's image branch against diffusers' WanTransformer3DModel (image_dim,
added_kv_proj_dim, pos_embed_seq_len), and the CLIP vision tower against a direct
implementation of the original ViT-H/14 forward."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from studio.cli import run_cli
from studio.models.registry import family, scan
from studio.models.wan.clip import MEAN, STD, load_wan_clip
from studio.models.wan.dit import WanDiT
from studio.models.wan.dit_config import WanDiTConfig
from studio.models.wan.keys import identify_layout, key_map
from studio.models.weight_files import probe_weights
from tests.models.test_wan_dit import random_dit, rel_err
from tests.models.tiny_a14b import CLIP_FILE, wan_clip_state, write_a14b_set, write_i2v14b_set

diffusers = pytest.importorskip("diffusers")

TEXT_LEN = 512  # diffusers splits the image tokens off as "all but the last 512"


def i2v_config(flf2v: bool) -> WanDiTConfig:
    return WanDiTConfig(dim=64, ffn_dim=96, num_heads=2, num_layers=2, in_dim=36, out_dim=16,
                        text_dim=32, freq_dim=256, image_dim=48,
                        image_tokens=2 * 5 if flf2v else 0)


def twin_of(ours: WanDiT) -> torch.nn.Module:
    c = ours.config
    twin = diffusers.WanTransformer3DModel(
        patch_size=c.patch_size, num_attention_heads=c.num_heads, attention_head_dim=c.head_dim,
        in_channels=c.in_dim, out_channels=c.out_dim, text_dim=c.text_dim, freq_dim=c.freq_dim,
        ffn_dim=c.ffn_dim, num_layers=c.num_layers, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", eps=c.eps, image_dim=c.image_dim,
        added_kv_proj_dim=c.dim, pos_embed_seq_len=c.image_tokens or None,
    )  # fmt: skip
    keys = list(twin.state_dict())
    names = key_map(identify_layout(keys), keys)
    state = ours.state_dict()
    twin.load_state_dict({key: state[names[key]] for key in keys}, strict=True)
    return twin.eval()


@pytest.mark.parametrize("flf2v", [False, True], ids=["i2v", "flf2v"])
def test_the_image_branch_matches_diffusers(flf2v: bool) -> None:
    ours = random_dit(i2v_config(flf2v))
    with torch.no_grad():
        for name, param in ours.named_parameters():
            if name.startswith("img_emb") or "_img" in name:
                param.copy_(0.3 * torch.randn_like(param) + (1.0 if "norm" in name else 0.0))
    twin = twin_of(ours)
    torch.manual_seed(2)
    tokens = ours.config.image_tokens or 5
    x = torch.randn(2, 36, 2, 4, 6)
    context = torch.randn(2, TEXT_LEN, 32)
    clip = torch.randn(2, tokens, 48)
    t = torch.tensor([900.0, 300.0])
    # diffusers takes FLF2V's two images as two batch rows of 257 tokens and joins them.
    theirs = clip.reshape(-1, tokens // 2, 48) if flf2v else clip
    with torch.no_grad():
        got = ours(x, t, context, clip)
        expected = twin(x, t, context, encoder_hidden_states_image=theirs, return_dict=False)[0]
        other = ours(x, t, context, torch.randn_like(clip))
    assert rel_err(got, expected) < 1e-5
    assert rel_err(other, got) > 1e-3  # the image branch really contributes
    with pytest.raises(ValueError, match="CLIP image features"):
        ours(x, t, context)


def original_vit(state: dict[str, torch.Tensor], pixels: torch.Tensor, heads: int) -> torch.Tensor:
    """The original ViT forward with ``use_31_block``: every block but the last, no post norm."""
    import torch.nn.functional as F

    v = {k[len("visual."):]: t for k, t in state.items() if k.startswith("visual.")}
    dim = v["pre_norm.weight"].shape[0]
    x = F.conv2d(pixels, v["patch_embedding.weight"], stride=v["patch_embedding.weight"].shape[-1])
    x = torch.cat([v["cls_embedding"].expand(x.shape[0], -1, -1), x.flatten(2).transpose(1, 2)], 1)
    x = F.layer_norm(x + v["pos_embedding"], (dim,), v["pre_norm.weight"], v["pre_norm.bias"])
    layers = len({k.split(".")[1] for k in v if k.startswith("transformer.")})
    for i in range(layers - 1):
        prefix = f"transformer.{i}."
        p = {k[len(prefix):]: t for k, t in v.items() if k.startswith(prefix)}
        h = F.layer_norm(x, (dim,), p["norm1.weight"], p["norm1.bias"], eps=1e-5)
        q, k, w = F.linear(h, p["attn.to_qkv.weight"], p["attn.to_qkv.bias"]).chunk(3, dim=-1)
        split = [t.unflatten(-1, (heads, -1)).transpose(1, 2) for t in (q, k, w)]
        a = F.scaled_dot_product_attention(*split).transpose(1, 2).flatten(2)
        x = x + F.linear(a, p["attn.proj.weight"], p["attn.proj.bias"])
        h = F.layer_norm(x, (dim,), p["norm2.weight"], p["norm2.bias"], eps=1e-5)
        x = x + F.linear(F.gelu(F.linear(h, p["mlp.0.weight"], p["mlp.0.bias"])),
                         p["mlp.2.weight"], p["mlp.2.bias"])
    return x


def test_the_clip_tower_equals_the_original_forward(tmp_path) -> None:
    state = wan_clip_state()
    path = tmp_path / "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"
    torch.save(state, path)
    encoder = load_wan_clip(probe_weights(path), torch.device("cpu"), torch.float32)
    image = torch.rand(1, 3, 40, 56) * 2 - 1  # any size: resized to the tower's 28 × 28
    got = encoder.encode([image, -image])
    size = (encoder.model.config.image_size,) * 2
    resized = torch.nn.functional.interpolate(torch.cat([image, -image]), size=size,
                                              mode="bicubic", align_corners=False)
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    expected = original_vit(state, ((resized * 0.5 + 0.5) - mean) / std, heads=2)
    assert got.shape == (1, 2 * 5, 160)  # two images of 1 + 2·2 tokens, one after the other
    assert rel_err(got, expected.reshape(1, -1, 160)) < 1e-5


@pytest.mark.parametrize(("folder", "flf2v", "variant"), [
    ("Wan2.1-I2V-14B-480P", False, "i2v-14b-480p"), ("Wan2.1-I2V-14B-720P", False, "i2v-14b-720p"),
    ("Wan2.1-FLF2V-14B-720P", True, "flf2v-14b")])  # fmt: skip
def test_i2v14b_sets_are_found_named_and_loaded(tmp_path, folder: str, flf2v: bool,
                                                  variant: str) -> None:
    write_i2v14b_set(tmp_path / folder, flf2v)
    (model_set,) = scan([tmp_path / folder])
    assert (model_set.variant, model_set.usable) == (variant, True), model_set.problems
    assert model_set.component("image_encoder").variant == "clip-custom"
    model = family("wan").load(model_set, torch.device("cpu"), torch.float32)
    assert model.image_context is not None and model.image_channels is not None
    assert model.capabilities.conditioning == (("first-frame", "keyframe") if flf2v
                                               else ("first-frame",))


def test_an_i2v14b_dit_without_its_clip_file_is_refused(tmp_path) -> None:
    write_i2v14b_set(tmp_path / "i2v", clip=False)
    (model_set,) = scan([tmp_path / "i2v"])
    assert not model_set.usable
    assert any("no CLIP image encoder" in p and CLIP_FILE in p for p in model_set.problems)


def test_flf2v_runs_from_the_command_line_with_first_and_last_frames(tmp_path) -> None:

    root = tmp_path / "Wan2.1-FLF2V-14B-720P"
    write_i2v14b_set(root, flf2v=True)
    for name, colour in (("first.png", (220, 30, 30)), ("last.png", (30, 30, 220))):
        Image.new("RGB", (32, 32), colour).save(tmp_path / name)
    out = tmp_path / "clip.mp4"
    args = ["generate", "--model", str(root), "--prompt", "a fox", "--steps", "2", "--width",
            "32", "--height", "32", "--frames", "5", "--image", f"{tmp_path / 'first.png'}@0",
            "--image", f"{tmp_path / 'last.png'}@-1", "--out", str(out)]
    assert run_cli(args) == 0
    recipe = json.loads(out.with_suffix(".json").read_text())
    assert [c["frame_index"] for c in recipe["request"]["conditioning"]] == [0, -1]
    assert recipe["model"]["variant"] == "flf2v-14b"
    middle = [*args[:-2], "--image", f"{tmp_path / 'first.png'}@2", "--out", str(out)]
    assert run_cli(middle) == 2  # a frame in between is refused: first or last only


@pytest.mark.parametrize("kind", ["i2v-a14b", "i2v-14b-480p"])
def test_image_to_video_runs_from_the_command_line(tmp_path, kind: str) -> None:
    root = tmp_path / ("Wan2.1-I2V-14B-480P" if kind == "i2v-14b-480p" else "Wan2.2-I2V-A14B")
    if kind == "i2v-a14b":
        write_a14b_set(root, "i2v", "original")
    else:
        write_i2v14b_set(root)
    Image.new("RGB", (48, 32), (40, 200, 90)).save(tmp_path / "ref.png")
    out = tmp_path / "clip.mp4"
    assert run_cli(["generate", "--model", str(root), "--prompt", "a frog", "--steps", "2",
                    "--width", "32", "--height", "32", "--frames", "5", "--image",
                    str(tmp_path / "ref.png"), "--out", str(out)]) == 0
    recipe = json.loads(out.with_suffix(".json").read_text())
    assert recipe["model"]["variant"] == kind
    assert recipe["request"]["conditioning"][0]["frame_index"] == 0
