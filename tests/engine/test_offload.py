"""Offload policies and their mechanics, on the CPU: results unchanged, residency as promised.

On the CPU a "device copy" and a host copy are the same memory, so residency is checked through
what the mechanism itself guarantees and can be observed: a released block holds empty
placeholders (using it fails), the residency log records which parts were resident at each use,
and outputs are bit-identical to the model without offloading.
"""

from __future__ import annotations

import pytest
import torch

from studio.engine.model import DIT, TEXT_ENCODER, VAE, ModelModules
from studio.engine.offload import (
    AUTO,
    OffloadedDenoiser,
    OffloadedTextEncoder,
    OffloadPolicy,
    apply_offload,
    choose_policy,
    parse_policy,
)
from studio.engine.pipeline import generate
from studio.engine.request import GenerationRequest
from studio.engine.streaming import BlockStreamer, ModuleHome
from studio.errors import InvalidRequest
from studio.models.wan.bench_sizes import SIZES
from studio.models.wan.dit import WanDiT
from studio.models.wan.dit_config import WanDiTConfig
from studio.models.wan.random_model import random_model

CPU = torch.device("cpu")
CONFIG = WanDiTConfig(dim=64, ffn_dim=96, num_heads=2, num_layers=3, text_dim=16)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _dit(seed: int = 0) -> WanDiT:
    torch.manual_seed(seed)
    return WanDiT(CONFIG).eval().requires_grad_(False)


def _inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 16, 2, 4, 4, generator=g)
    t = torch.rand(2, 2, 4, 4, generator=g)
    context = torch.randn(2, 7, 16, generator=g)
    return x, t, context


def test_streamed_blocks_give_identical_output_with_at_most_two_resident() -> None:
    dit = _dit()
    x, t, context = _inputs()
    with torch.inference_mode():
        expected = dit.velocity(x, t, context)
    streamer = BlockStreamer(list(dit.blocks), CPU)
    seen: list[tuple[int, int, bool]] = []
    for i, block in enumerate(dit.blocks):
        block.register_forward_pre_hook(
            lambda m, a, i=i: seen.append((i, streamer.resident, streamer.homes[i].loaded)))
    with torch.inference_mode():
        first = dit.velocity(x, t, context)
        second = dit.velocity(x, t, context)
    assert torch.equal(first, expected) and torch.equal(second, expected)
    assert [i for i, _, _ in seen] == [0, 1, 2, 0, 1, 2]
    assert all(loaded for _, _, loaded in seen)  # each block was resident when it ran
    assert max(resident for _, resident, _ in seen) == 2 == streamer.max_resident
    # one load per block and call, plus block 0 prefetched after the last block of each call
    assert streamer.loads == 2 * CONFIG.num_layers + 1
    # after a forward only the prefetched first block is on the "device"
    assert [home.loaded for home in streamer.homes] == [True, False, False]
    assert dit.blocks[1].ffn[0].weight.numel() == 0


def test_released_blocks_cannot_be_used_by_mistake() -> None:
    dit = _dit()
    x, t, context = _inputs()
    streamer = BlockStreamer(list(dit.blocks), CPU)
    streamer.remove()  # hooks off, weights back
    with torch.inference_mode():
        dit.velocity(x, t, context)
    for home in streamer.homes:
        home.release()
    with pytest.raises((RuntimeError, IndexError)), torch.inference_mode():
        dit.velocity(x, t, context)


def test_module_home_keeps_tied_weights_once() -> None:
    from transformers import UMT5EncoderModel

    from studio.models.wan.text import umt5_config

    model = UMT5EncoderModel(umt5_config(vocab_size=50, d_model=16, d_kv=4, d_ff=24,
                                         num_layers=2, num_heads=4))  # fmt: skip
    unique = {id(p): p for p in model.parameters()}
    home = ModuleHome(model, CPU, pin=False)
    assert home.nbytes == sum(p.numel() * p.element_size() for p in unique.values())
    home.release()
    assert model.shared.weight.numel() == 0
    home.load()
    assert model.shared.weight is model.encoder.embed_tokens.weight
    assert model.shared.weight.shape == (50, 16)
    blocks = ModelModules(parts={TEXT_ENCODER: model},
                          blocks={TEXT_ENCODER: "encoder.block"}).block_list(TEXT_ENCODER)
    assert blocks is not None and len(blocks) == 2
    assert all(a is b for a, b in zip(blocks, model.encoder.block, strict=True))


@pytest.fixture(scope="module")
def tiny_run():
    """The tiny random Wan set and a reference output without offloading."""
    torch.set_num_threads(1)
    spec = SIZES["tiny"]
    request = GenerationRequest(prompt="a red fox runs", steps=2, guidance=4.0, shift=3.0,
                                width=spec.width, height=spec.height, frames=spec.frames)
    expected = generate(random_model(spec, CPU, torch.float32), request)
    return spec, request, expected


@pytest.mark.parametrize("policy", list(OffloadPolicy))
def test_every_policy_leaves_the_video_unchanged(tiny_run, policy: OffloadPolicy) -> None:
    spec, request, expected = tiny_run
    model = apply_offload(random_model(spec, CPU, torch.float32), policy, CPU)
    out = generate(model, request)
    assert torch.equal(out.latent, expected.latent)
    assert (out.video == expected.video).all()


@pytest.mark.parametrize(
    ("policy", "during"),
    [
        (OffloadPolicy.TEXT_ENCODER, {"text_encoder": ("dit", "vae", "text_encoder"),
                                      "dit": ("dit", "vae"), "vae": ("dit", "vae")}),
        (OffloadPolicy.MODEL, {"text_encoder": ("text_encoder",), "dit": ("dit",),
                               "vae": ("vae",)}),
        (OffloadPolicy.BLOCKS, {"text_encoder": ("text_encoder",), "dit": ("dit",),
                                "vae": ("vae",)}),
    ],
)  # fmt: skip
def test_policies_keep_only_what_they_promise_resident(tiny_run, policy, during) -> None:
    spec, request, _ = tiny_run
    model = apply_offload(random_model(spec, CPU, torch.float32), policy, CPU)
    generate(model, request)
    residency = model.denoiser.residency
    used = [name for name, _ in residency.log]
    assert used[0] == "text_encoder" and used[-1] == "vae"
    assert used.count("dit") == request.steps
    for name, resident in residency.log:
        assert sorted(resident) == sorted(during[name]), (name, resident)
    assert "text_encoder" not in residency.resident  # parked again after encoding
    if policy is OffloadPolicy.BLOCKS:
        assert set(residency.streamers) == {"dit", "text_encoder"}
        assert all(s.max_resident <= 2 for s in residency.streamers.values())


def test_choose_policy_takes_the_fastest_that_fits() -> None:
    gib = 2**30
    needs = {OffloadPolicy.NONE: 30 * gib, OffloadPolicy.TEXT_ENCODER: 20 * gib,
             OffloadPolicy.MODEL: 12 * gib, OffloadPolicy.BLOCKS: 8 * gib}  # fmt: skip
    assert choose_policy(needs, 80 * gib).policy is OffloadPolicy.NONE
    assert choose_policy(needs, 24 * gib).policy is OffloadPolicy.TEXT_ENCODER
    assert choose_policy(needs, 22 * gib).policy is OffloadPolicy.MODEL  # 90 % headroom
    assert choose_policy(needs, 10 * gib).policy is OffloadPolicy.BLOCKS
    tight = choose_policy(needs, 4 * gib)
    assert tight.policy is OffloadPolicy.BLOCKS and "nothing fits" in tight.reason
    forced = choose_policy(needs, 80 * gib, requested="model")
    assert forced.policy is OffloadPolicy.MODEL and forced.need_bytes == 12 * gib


def test_parse_policy() -> None:
    assert parse_policy("auto") == AUTO
    assert parse_policy("blocks") is OffloadPolicy.BLOCKS
    with pytest.raises(InvalidRequest) as info:
        parse_policy("sometimes")
    assert "text-encoder" in info.value.hint


def test_model_modules_survive_the_offload_wrappers(tiny_run) -> None:
    spec, _, _ = tiny_run
    model = random_model(spec, CPU, torch.float32)
    dit = model.modules.parts[DIT]
    assert isinstance(dit, WanDiT) and model.denoiser.__self__ is dit
    assert model.modules.parts[TEXT_ENCODER] is model.text_encoder.model
    wrapped = apply_offload(model, OffloadPolicy.MODEL, CPU)
    assert isinstance(wrapped.denoiser, OffloadedDenoiser)
    assert isinstance(wrapped.text_encoder, OffloadedTextEncoder)
    assert wrapped.offload == "model"
    assert wrapped.modules.parts[DIT] is dit
    assert wrapped.modules.parts[TEXT_ENCODER] is model.text_encoder.model
    assert wrapped.modules.block_list(DIT) == list(dit.blocks)
    assert ModelModules(parts={DIT: dit}).block_list(VAE) is None  # a part with no module
