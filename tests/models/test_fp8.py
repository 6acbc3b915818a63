"""fp8 weights: plain float8 files and ComfyUI's "fp8_scaled" files (fp8 ``X.weight`` beside a
float32 ``X.scale_weight``, a ``scaled_fp8`` marker), loaded on the CPU (dequantized) and kept in
fp8 with a per-multiply upcast (the GPU path, run here with ``fp8="keep"``); the forecast's byte
counts, the scan's precision column, refusals of bad scales, and a scaled UMT5 encoder."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from studio.engine.memory_model import module_bytes
from studio.errors import CheckpointError
from studio.models.fp8 import fp8_plan, precision_name
from studio.models.loading import load_module
from studio.models.registry import scan
from studio.models.scan_table import format_scan_table
from studio.models.wan.dit import FP32_PARAMETERS, WanDiT
from studio.models.wan.identify import describe_weights
from studio.models.wan.keys import identify_layout, key_map
from studio.models.wan.memory import dit_fp8_counts, dit_weight_bytes, published_memory
from studio.models.wan.text import load_umt5_encoder
from studio.models.weight_files import probe_weights
from tests.models.tiny_wan import (
    DIT_PREFIX,
    TINY_DIT_21,
    TINY_UMT5,
    dit_state,
    umt5_state,
    write_tokenizer,
    write_wan_set,
)

E4M3, E5M2 = torch.float8_e4m3fn, torch.float8_e5m2
State = dict[str, torch.Tensor]
SCALED_KEY = "blocks.0.self_attn.q"


def quantized(state: State, fp8: torch.dtype, scaled: bool,
              wanted: Callable[[str, torch.Tensor], bool]) -> tuple[State, State]:
    """(the fp8 file's tensors, the float32 weights they stand for) — as ComfyUI's files do it:
    ``w8 = (w / s).to(fp8)`` with s = max|w| / the format's largest value, ``scale_weight = s``."""
    file, real = {}, {}
    for key, value in state.items():
        if not wanted(key, value):
            file[key] = real[key] = value
            continue
        scale = (value.abs().max() / torch.finfo(fp8).max).float() if scaled else torch.ones(())
        file[key] = (value / scale).to(fp8)
        real[key] = file[key].float() * scale
        if scaled:
            file[key.removesuffix(".weight") + ".scale_weight"] = scale.reshape(())
    if scaled:
        file["scaled_fp8"] = torch.empty(0, dtype=fp8)  # the marker ComfyUI looks for
    return file, real


def matrices(key: str, value: torch.Tensor) -> bool:
    """Every weight of two or more dimensions (linear and convolution weights)."""
    return key.endswith(".weight") and value.ndim >= 2


def write(path: Path, tensors: State) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({key: value.contiguous() for key, value in tensors.items()}, path)
    return path


def load_dit(path: Path, dtype: torch.dtype = torch.float32, fp8: str = "auto") -> WanDiT:
    """As the Wan loader does it: key map from the file's layout, the float32 groups kept."""
    weights = probe_weights(path)
    mapping = key_map(identify_layout(weights.tensors()), weights.tensors())
    return load_module(lambda: WanDiT(TINY_DIT_21), weights, mapping, device="cpu", dtype=dtype,
                       keep_float32=lambda key: any(f in key for f in FP32_PARAMETERS),
                       what="Wan DiT", fp8=fp8)  # fmt: skip


def reference_dit(state: State) -> WanDiT:
    model = WanDiT(TINY_DIT_21)
    model.load_state_dict(state)
    return model.eval()


def run(model: WanDiT) -> torch.Tensor:
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(2, 16, 2, 4, 4, generator=generator)
    context = torch.randn(2, 8, TINY_DIT_21.text_dim, generator=generator)
    with torch.no_grad():
        return model(x, torch.tensor([900.0, 250.0]), context)


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


@pytest.fixture(scope="module")
def state() -> State:
    return dit_state(TINY_DIT_21, seed=3)


@pytest.mark.parametrize(("fp8", "scaled", "layout", "bound"), [
    (E4M3, True, "original", 0.1), (E4M3, True, "prefixed", 0.1), (E4M3, False, "original", 0.1),
    (E5M2, True, "original", 0.2), (E5M2, False, "original", 0.2)])  # fmt: skip
def test_fp8_dit_loads_dequantized_on_the_cpu(tmp_path: Path, state: State, fp8: torch.dtype,
                                               scaled: bool, layout: str, bound: float) -> None:
    file, real = quantized(state, fp8, scaled, matrices)
    prefix = DIT_PREFIX if layout == "prefixed" else ""
    path = write(tmp_path / "dit.safetensors", {prefix + k: v for k, v in file.items()})
    model = load_dit(path)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    out = run(model)
    assert torch.equal(out, run(reference_dit(real)))  # the same dequantized numbers, exactly
    error = relative(out, run(reference_dit(state)))
    assert 0 < error < bound, error  # fp8's own rounding: 3 (e4m3) or 2 (e5m2) mantissa bits


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("fp8", "scaled"), [(E4M3, True), (E4M3, False), (E5M2, True)])
def test_kept_fp8_upcast_per_multiply_equals_the_dequantized_load(
        tmp_path: Path, state: State, dtype: torch.dtype, fp8: torch.dtype, scaled: bool) -> None:
    path = write(tmp_path / "dit.safetensors", quantized(state, fp8, scaled, matrices)[0])
    kept, loaded = load_dit(path, dtype, fp8="keep"), load_dit(path, dtype, fp8="dequantize")
    q = kept.blocks[0].self_attn.q
    assert q.weight.dtype == fp8 and q.weight_scale.dtype == torch.float32
    assert "weight_scale" not in kept.state_dict()  # the key layout is unchanged
    assert kept.dtype == dtype and kept.head.head.weight.dtype == dtype  # dequantized at load
    for name, param in kept.named_parameters():
        if any(fragment in name for fragment in FP32_PARAMETERS):
            assert param.dtype == torch.float32, name
    assert sum(p.dtype == fp8 for p in kept.parameters()) == dit_fp8_counts(TINY_DIT_21)[1]
    out, expected = run(kept), run(loaded)
    assert torch.allclose(out, expected, rtol=1e-6, atol=1e-6)
    assert torch.equal(out, expected)  # in fact bit for bit: the same float32 multiply


def test_auto_keeps_fp8_only_on_cuda(tmp_path: Path, state: State) -> None:
    path = write(tmp_path / "dit.safetensors", quantized(state, E4M3, True, matrices)[0])
    assert load_dit(path, fp8="auto").blocks[0].ffn[0].weight.dtype == torch.float32
    with pytest.raises(ValueError, match="fp8 must be one of"):
        load_dit(path, fp8="sometimes")


def test_to_dtype_dequantizes_kept_weights(tmp_path: Path, state: State) -> None:
    path = write(tmp_path / "dit.safetensors", quantized(state, E4M3, True, matrices)[0])
    model = load_dit(path, fp8="keep")
    expected = run(model)
    model.to_dtype(torch.float32)
    assert not any(p.dtype == E4M3 for p in model.parameters())
    assert torch.equal(run(model), expected)


def test_forecast_counts_one_byte_per_fp8_weight(tmp_path: Path, state: State) -> None:
    path = write(tmp_path / "dit.safetensors", quantized(state, E4M3, True, matrices)[0])
    kept = load_dit(path, torch.bfloat16, fp8="keep")
    loaded = load_dit(path, torch.bfloat16, fp8="dequantize")
    weights, layers = dit_fp8_counts(TINY_DIT_21)
    assert sum(p.numel() for p in kept.parameters() if p.dtype == E4M3) == weights
    assert module_bytes(kept) == dit_weight_bytes(TINY_DIT_21, torch.bfloat16, fp8=True)
    assert module_bytes(loaded) == dit_weight_bytes(TINY_DIT_21, torch.bfloat16)
    assert module_bytes(loaded) - module_bytes(kept) == weights - 4 * layers  # 2 → 1 byte
    plain = published_memory("t2v-14b", torch.bfloat16)
    fp8 = published_memory("t2v-14b", torch.bfloat16, fp8_weights=True)
    assert plain is not None and fp8 is not None
    dim, ffn = 5120, 13824
    assert plain.dit_block_bytes - fp8.dit_block_bytes == 8 * dim**2 + 2 * dim * ffn - 40
    assert 0.5 < fp8.dit_bytes / plain.dit_bytes < 0.52  # 28.6 GB → 14.3 GB
    assert fp8.text_encoder_bytes == plain.text_encoder_bytes  # UMT5 is always dequantized


def scaled_copy(path: Path, edit: Callable[[State], None]) -> Path:
    """A scaled fp8 DiT file, ``edit``-ed before it is written."""
    file = quantized(dit_state(TINY_DIT_21, seed=3), E4M3, True, matrices)[0]
    edit(file)
    return write(path, file)


def set_scale(value: torch.Tensor) -> Callable[[State], None]:
    return lambda file: file.__setitem__(SCALED_KEY + ".scale_weight", value)


@pytest.mark.parametrize("value", [0.0, -0.01, math.inf, -math.inf, math.nan])
def test_scales_that_are_not_finite_and_positive_are_refused(tmp_path: Path,
                                                             value: float) -> None:
    path = scaled_copy(tmp_path / "bad.safetensors", set_scale(torch.tensor(value)))
    with pytest.raises(CheckpointError) as caught:
        load_dit(path)
    message = str(caught.value)
    assert str(path) in message and f"{SCALED_KEY}.scale_weight" in message
    assert "finite positive" in message


@pytest.mark.parametrize(("edit", "named", "said"), [
    (set_scale(torch.ones(2)), f"{SCALED_KEY}.scale_weight", "single floating-point number"),
    (set_scale(torch.ones((), dtype=torch.int32)), f"{SCALED_KEY}.scale_weight",
     "single floating-point number"),
    (lambda f: f.pop("blocks.0.ffn.0.scale_weight"), "blocks.0.ffn.0.weight", "has no"),
    (lambda f: f.__setitem__("blocks.7.ffn.0.scale_weight", torch.ones(())),
     "blocks.7.ffn.0.weight", "which no file holds"),
])  # fmt: skip
def test_misplaced_or_missing_scales_are_refused_from_the_header(
        tmp_path: Path, edit: Callable[[State], None], named: str, said: str) -> None:
    path = scaled_copy(tmp_path / "bad.safetensors", edit)
    with pytest.raises(CheckpointError) as caught:
        load_dit(path)
    message = str(caught.value)
    assert str(path) in message and named in message and said in message
    problem = describe_weights(probe_weights(path)).problem  # the scan says so too (an integer
    assert (named in problem and said in problem) or "dtype I32" in problem  # scale: by dtype)


def test_inputs_scales_are_ignored_and_the_plan_reads_headers(tmp_path: Path,
                                                              state: State) -> None:
    file, real = quantized(state, E4M3, True, matrices)
    file[SCALED_KEY + ".scale_input"] = torch.ones(())  # only ComfyUI's fp8 matmul uses it
    path = write(tmp_path / "dit.safetensors", file)
    tensors = probe_weights(path).tensors()
    plan = fp8_plan(tensors)
    assert plan.scaled and plan.scales[SCALED_KEY + ".weight"] == SCALED_KEY + ".scale_weight"
    assert plan.ignored == {"scaled_fp8", SCALED_KEY + ".scale_input"}
    assert precision_name(tensors) == "fp8_scaled"
    assert torch.equal(run(load_dit(path)), run(reference_dit(real)))


@pytest.mark.parametrize(("scaled", "shown"), [(True, "fp8_scaled"), (False, "F8_E4M3")])
def test_scan_shows_the_fp8_precision(tmp_path: Path, scaled: bool, shown: str) -> None:
    tiny = write_wan_set(tmp_path / "set")
    write(tiny.dit, quantized(tiny.states["dit"], E4M3, scaled, matrices)[0])
    (found,) = scan([tmp_path])
    assert found.usable
    assert found.dtype == shown and not found.problems
    assert shown in format_scan_table([found])


UMT5_LINEARS = (".q.weight", ".k.weight", ".v.weight", ".o.weight", ".wi_0.weight",
                ".wi_1.weight", ".wo.weight")  # fmt: skip


def umt5_linears(key: str, value: torch.Tensor) -> bool:
    """The 7 linear weights per layer that umt5_xxl_fp8_e4m3fn_scaled scales (168 at 24 layers);
    the embedding and the position biases stay 16-bit there."""
    return key.startswith("encoder.block.") and key.endswith(UMT5_LINEARS)


def encoder_at(path: Path, tokenizer: Path) -> torch.Tensor:
    encoder = load_umt5_encoder(probe_weights(path), tokenizer, device="cpu",
                                dtype=torch.float32)
    return encoder.encode(["a cat runs on the snow", "a big red bird flies over the river"])


def test_scaled_umt5_encoder_loads_dequantized(tmp_path: Path) -> None:
    state = umt5_state(TINY_UMT5, seed=4)
    state.pop("encoder.embed_tokens.weight")  # tied to shared.weight, written once
    file, real = quantized(state, E4M3, True, umt5_linears)
    assert sum(key.endswith(".scale_weight") for key in file) == 7 * TINY_UMT5.num_layers
    tokenizer = write_tokenizer(tmp_path / "tokenizer")
    scaled = encoder_at(write(tmp_path / "fp8" / "model.safetensors", file), tokenizer)
    dequantized = encoder_at(write(tmp_path / "deq" / "model.safetensors", real), tokenizer)
    original = encoder_at(write(tmp_path / "f32" / "model.safetensors", state), tokenizer)
    assert torch.equal(scaled, dequantized)
    assert 0 < relative(scaled, original) < 0.1, relative(scaled, original)
    assert probe_weights(tmp_path / "fp8" / "model.safetensors").dominant_dtype() == "fp8_scaled"


def test_a_lora_on_kept_fp8_weights_equals_it_on_the_dequantized_model(
        tmp_path: Path, state: State) -> None:
    """On the fly and merged, a LoRA patches the real weight (fp8 × scale) of a kept layer."""
    from studio.engine.lora import WeightDelta, WeightPatch, merge_patch, patched_on_the_fly

    path = write(tmp_path / "dit.safetensors", quantized(state, E4M3, True, matrices)[0])
    kept, loaded = load_dit(path, fp8="keep"), load_dit(path, fp8="dequantize")
    generator = torch.Generator().manual_seed(5)
    patch = WeightPatch(fingerprint="t")
    for name in ("blocks.0.self_attn.q.weight", "blocks.0.ffn.0.weight"):
        out, inp = loaded.get_parameter(name).shape
        patch.add(WeightDelta(name, up=torch.randn(out, 2, generator=generator),
                              down=torch.randn(2, inp, generator=generator), scale=0.05), 0.7)
    with patched_on_the_fly(kept, list(kept.blocks), patch):
        fly = run(kept)
    assert kept.blocks[0].self_attn.q.weight.dtype == E4M3  # restored after the call
    merge_patch(loaded, patch)
    expected = run(loaded)
    assert relative(fly, run(load_dit(path, fp8="dequantize"))) > 1e-3  # the LoRA acts
    assert torch.equal(fly, expected)
    merge_patch(kept, patch)
    assert torch.equal(run(kept), expected)
