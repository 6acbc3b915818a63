"""Checkpoint probes (safetensors headers, torch pickles, shard indexes) and tensor-by-tensor
loading. Every kind of damage must give a CheckpointError whose message names the file and the
exact fault; valid files must be described exactly as the safetensors library reads them."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from studio.engine.cancel import CancelToken
from studio.errors import Cancelled, CheckpointError
from studio.models.checkpoint import (
    MAX_HEADER_BYTES,
    probe_checkpoint,
    probe_safetensors,
    probe_torch,
)
from studio.models.loading import load_module, parameters_on_meta
from studio.models.weight_files import probe_weights


def save_sharded(state: dict[str, torch.Tensor], folder: Path, stem: str, shards: int) -> Path:
    """Split ``state`` over ``shards`` safetensors files plus a ``weight_map`` index."""
    keys, weight_map = list(state), {}
    size = -(-len(keys) // shards)
    for i in range(shards):
        name = f"{stem}-{i + 1:05d}-of-{shards:05d}.safetensors"
        save_file({k: state[k] for k in keys[i * size:(i + 1) * size]}, folder / name)
        weight_map.update(dict.fromkeys(keys[i * size:(i + 1) * size], name))
    index = folder / f"{stem}.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return index


def raw_file(path: Path, header: object, data: bytes = b"", length: int | None = None) -> Path:
    """Write a safetensors-shaped file by hand: u64 length, header bytes, data."""
    body = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(body) if length is None else length) + body + data)
    return path


def entry(dtype: str, shape: list[int], begin: int, end: int) -> dict[str, object]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


@pytest.fixture
def valid(tmp_path: Path) -> Path:
    path = tmp_path / "valid.safetensors"
    save_file({"b.weight": torch.randn(3, 4), "a.bias": torch.arange(5, dtype=torch.int64),
               "c": torch.zeros(2, 2, dtype=torch.bfloat16)}, path, metadata={"format": "pt"})
    return path


# ---- valid files ---------------------------------------------------------------------------


def test_probe_matches_what_safetensors_reads(valid: Path) -> None:
    header = probe_safetensors(valid)
    with safe_open(valid, framework="pt") as handle:
        assert set(header.tensors) == set(handle.keys())
        assert header.metadata == handle.metadata()
        for name in handle.keys():  # noqa: SIM118 (a safetensors handle, not a dict)
            tensor = handle.get_tensor(name)
            info = header.tensors[name]
            assert info.shape == tuple(tensor.shape)
            assert info.nbytes == tensor.numel() * tensor.element_size()
    assert header.tensors["c"].dtype == "BF16" and header.tensors["a.bias"].dtype == "I64"
    assert header.file_size == valid.stat().st_size
    assert 8 + header.header_size + sum(i.nbytes for i in header.tensors.values()) == \
        header.file_size


def test_probe_reads_only_the_header(valid: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The data section is never read: a file whose data bytes are garbage probes the same."""
    expected = probe_safetensors(valid).shapes()
    header_len = struct.unpack("<Q", valid.read_bytes()[:8])[0]
    raw = bytearray(valid.read_bytes())
    raw[8 + header_len:] = b"\xff" * (len(raw) - 8 - header_len)
    valid.write_bytes(bytes(raw))
    assert probe_safetensors(valid).shapes() == expected


def test_empty_file_with_no_tensors_is_valid(tmp_path: Path) -> None:
    header = probe_safetensors(raw_file(tmp_path / "e.safetensors", {}))
    assert dict(header.tensors) == {}


# ---- each kind of damage -------------------------------------------------------------------


def probe_error(path: Path) -> str:
    with pytest.raises(CheckpointError) as info:
        probe_checkpoint(path)
    assert str(path) in info.value.message, "the message must name the file"
    assert info.value.hint
    return info.value.message


def test_shorter_than_length_field(tmp_path: Path) -> None:
    path = tmp_path / "short.safetensors"
    path.write_bytes(b"\x01\x02\x03\x04\x05")
    assert "only 5 bytes long" in probe_error(path)


def test_header_length_beyond_file(tmp_path: Path) -> None:
    path = raw_file(tmp_path / "x.safetensors", {}, length=5000)
    assert "claims a 5,000-byte header but only 2 bytes follow" in probe_error(path)


def test_absurd_header_length(tmp_path: Path) -> None:
    path = raw_file(tmp_path / "x.safetensors", b"{}", length=2**60)
    message = probe_error(path)
    assert f"over the {MAX_HEADER_BYTES:,}-byte limit" in message


def test_header_not_utf8(tmp_path: Path) -> None:
    path = raw_file(tmp_path / "x.safetensors", b'{"a\xff\xfe": 1}')
    assert "not valid UTF-8" in probe_error(path)


def test_header_not_json(tmp_path: Path) -> None:
    path = raw_file(tmp_path / "x.safetensors", b'{"a": {"dtype": "F32",')
    assert "header is not valid JSON" in probe_error(path)


def test_header_not_an_object(tmp_path: Path) -> None:
    assert "not an object" in probe_error(raw_file(tmp_path / "x.safetensors", [1, 2]))


def test_duplicate_tensor_names(tmp_path: Path) -> None:
    body = b'{"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, ' \
           b'"a": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}}'
    assert "names 'a' twice" in probe_error(raw_file(tmp_path / "x.safetensors", body, b"ab"))


def test_unknown_dtype(tmp_path: Path) -> None:
    path = raw_file(tmp_path / "x.safetensors", {"w": entry("F12", [2], 0, 4)}, b"\0" * 4)
    assert "tensor 'w' has unknown dtype 'F12'" in probe_error(path)


@pytest.mark.parametrize("shape", [[-1, 2], [2.0], [True], "4", None])
def test_invalid_shape(tmp_path: Path, shape: object) -> None:
    path = raw_file(tmp_path / "x.safetensors",
                    {"w": {"dtype": "U8", "shape": shape, "data_offsets": [0, 2]}}, b"\0\0")
    assert "tensor 'w' has an invalid shape" in probe_error(path)


def test_lying_shape(tmp_path: Path) -> None:
    """The header says [3, 4] F32 (48 bytes) but gives the tensor 40."""
    path = raw_file(tmp_path / "x.safetensors", {"w": entry("F32", [3, 4], 0, 40)}, b"\0" * 40)
    assert "tensor 'w' occupies 40 bytes but shape [3, 4] of F32 needs 48" in probe_error(path)


def test_offsets_out_of_order(tmp_path: Path) -> None:
    path = raw_file(tmp_path / "x.safetensors", {"w": entry("U8", [0], 8, 4)}, b"\0" * 8)
    assert "tensor 'w' has data_offsets out of order (8 > 4)" in probe_error(path)


def test_offsets_overlap(tmp_path: Path) -> None:
    header = {"a": entry("F32", [2], 0, 8), "b": entry("F32", [2], 4, 12)}
    path = raw_file(tmp_path / "x.safetensors", header, b"\0" * 12)
    assert "tensors 'a' and 'b' overlap in the data section (bytes 4–8)" in probe_error(path)


def test_offsets_leave_a_gap(tmp_path: Path) -> None:
    header = {"a": entry("F32", [1], 0, 4), "b": entry("F32", [1], 8, 12)}
    path = raw_file(tmp_path / "x.safetensors", header, b"\0" * 12)
    assert "4 unaccounted bytes lie before tensor 'b'" in probe_error(path)


def test_offsets_beyond_data_section(tmp_path: Path) -> None:
    header = {"a": entry("F32", [4], 0, 16)}
    path = raw_file(tmp_path / "x.safetensors", header, b"\0" * 10)
    assert "is truncated: its tensors need 16 bytes of data but only 10 follow" in \
        probe_error(path)


def test_truncated_download(valid: Path) -> None:
    data = valid.read_bytes()
    valid.write_bytes(data[:-7])
    assert "is truncated" in probe_error(valid)


def test_trailing_bytes(valid: Path) -> None:
    valid.write_bytes(valid.read_bytes() + b"junk")
    assert "4 unexpected bytes follow the last tensor" in probe_error(valid)


def test_bad_metadata(tmp_path: Path) -> None:
    path = raw_file(tmp_path / "x.safetensors", {"__metadata__": {"n": 3}})
    assert "__metadata__ must map strings to strings" in probe_error(path)


def test_flipped_bytes_in_header(valid: Path) -> None:
    """Flipping any single header byte either still parses to a consistent header or fails with
    a CheckpointError — never anything else."""
    original = valid.read_bytes()
    header_len = struct.unpack("<Q", original[:8])[0]
    outcomes = set()
    for position in range(8, 8 + header_len, 7):
        damaged = bytearray(original)
        damaged[position] ^= 0x5A
        valid.write_bytes(bytes(damaged))
        try:
            probe_safetensors(valid)
            outcomes.add("ok")
        except CheckpointError:
            outcomes.add("error")
    assert "error" in outcomes


def test_unreadable_path(tmp_path: Path) -> None:
    assert "cannot be read" in probe_error(tmp_path / "missing.safetensors")


# ---- property tests: nothing but CheckpointError, ever -------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=6),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)
tensor_entries = st.fixed_dictionaries({
    "dtype": st.sampled_from(["F32", "BF16", "U8", "I64", "F8_E4M3", "X9"]) | json_values,
    "shape": st.lists(st.integers(-2, 6), max_size=3) | json_values,
    "data_offsets": st.lists(st.integers(-4, 200), min_size=0, max_size=3) | json_values,
})


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hypothesis") / "probe.safetensors"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=64))
def test_random_bytes_never_crash(scratch: Path, data: bytes) -> None:
    scratch.write_bytes(data)
    try:
        probe_safetensors(scratch)
    except CheckpointError as exc:
        assert str(scratch) in exc.message


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    header=st.dictionaries(st.text(max_size=8), tensor_entries | json_values, max_size=4),
    data_size=st.integers(0, 256),
    length_delta=st.sampled_from([0, 0, 0, 1, -1, 10**12]),
)
def test_random_headers_never_crash(scratch: Path, header: dict, data_size: int,
                                    length_delta: int) -> None:
    body = json.dumps(header).encode()
    raw_file(scratch, body, b"\0" * data_size, length=max(0, len(body) + length_delta))
    try:
        probed = probe_safetensors(scratch)
    except CheckpointError as exc:
        assert str(scratch) in exc.message
        return
    assert sum(info.nbytes for info in probed.tensors.values()) == data_size


# ---- torch pickles -------------------------------------------------------------------------


def test_probe_torch_describes_without_loading(tmp_path: Path) -> None:
    state = {"w": torch.randn(3, 2).to(torch.bfloat16), "n": torch.arange(4)}
    path = tmp_path / "m.pth"
    torch.save({"state_dict": state}, path)
    header = probe_torch(path)
    assert header.format == "torch"
    assert header.shapes() == {"w": (3, 2), "n": (4,)}
    assert {k: i.dtype for k, i in header.tensors.items()} == {"w": "BF16", "n": "I64"}


def test_legacy_torch_format(tmp_path: Path) -> None:
    path = tmp_path / "old.pt"
    torch.save({"w": torch.ones(2)}, path, _use_new_zipfile_serialization=False)
    assert probe_torch(path).shapes() == {"w": (2,)}


class _Sneaky:
    """Unpickling this would create a marker file."""

    marker: Path

    def __reduce__(self):  # noqa: ANN204
        return (Path.touch, (self.marker,))


def test_pickle_code_is_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    sneaky = _Sneaky()
    sneaky.marker = marker
    path = tmp_path / "evil.pth"
    torch.save({"w": torch.ones(1), "x": sneaky}, path)
    assert not marker.exists()
    message = probe_error(path)
    assert "holds Python objects other than weights" in message and "will not load it" in message
    assert "weights_only=False" not in message  # torch's advice to turn the safety off
    assert not marker.exists()


def test_torch_file_without_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "list.pth"
    torch.save([torch.ones(1)], path)
    assert "does not hold a state dict" in probe_error(path)
    path = tmp_path / "plain.pth"
    path.write_bytes(pickle.dumps({"w": 3}))
    assert probe_error(path)


def test_garbage_torch_file(tmp_path: Path) -> None:
    path = tmp_path / "junk.pth"
    path.write_bytes(b"PK\x03\x04 definitely not a zip")
    assert "not a readable torch checkpoint" in probe_error(path)


# ---- shard indexes -------------------------------------------------------------------------


@pytest.fixture
def sharded(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    state = {f"layer.{i}.weight": torch.randn(2, i + 1) for i in range(5)}
    return save_sharded(state, tmp_path, "model", shards=3), state


def test_sharded_probe(sharded: tuple[Path, dict[str, torch.Tensor]]) -> None:
    index, state = sharded
    weights = probe_weights(index)
    assert weights.index == index and len(weights.paths) == 3
    assert weights.shapes() == {k: tuple(v.shape) for k, v in state.items()}
    assert weights.size == sum(p.stat().st_size for p in weights.paths)
    assert weights.label == str(index)


def test_missing_shard(sharded: tuple[Path, dict[str, torch.Tensor]]) -> None:
    index, _ = sharded
    (index.parent / "model-00002-of-00003.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model-00002-of-00003.safetensors' missing from"):
        probe_weights(index)


def test_shard_disagrees_with_index(sharded: tuple[Path, dict[str, torch.Tensor]]) -> None:
    index, _ = sharded
    data = json.loads(index.read_text())
    data["weight_map"]["layer.9.weight"] = "model-00001-of-00003.safetensors"
    index.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="lacks 'layer.9.weight'") as info:
        probe_weights(index)
    assert "model-00001-of-00003.safetensors" in info.value.message
    del data["weight_map"]["layer.9.weight"]
    del data["weight_map"]["layer.0.weight"]
    index.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="holds 'layer.0.weight', which .* does not list"):
        probe_weights(index)


def test_index_escaping_its_folder(sharded: tuple[Path, dict[str, torch.Tensor]]) -> None:
    index, _ = sharded
    index.write_text(json.dumps({"weight_map": {"a": "../elsewhere.safetensors"}}))
    with pytest.raises(CheckpointError, match="not a file beside the index"):
        probe_weights(index)
    index.write_text("{not json")
    with pytest.raises(CheckpointError, match="is not valid JSON"):
        probe_weights(index)
    index.write_text("{}")
    with pytest.raises(CheckpointError, match="has no weight_map"):
        probe_weights(index)


# ---- loading -------------------------------------------------------------------------------


class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)
        self.norm = nn.LayerNorm(3)
        self.emb = nn.Embedding(6, 4)
        self.out = nn.Embedding(6, 4)  # tied to emb below
        self.out.weight = self.emb.weight
        self.register_buffer("steps", torch.zeros(2, dtype=torch.int64))
        self.register_buffer("table", torch.arange(5.0), persistent=False)


def small_state(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"lin.weight": torch.randn(3, 4, generator=g), "lin.bias": torch.randn(3, generator=g),
            "norm.weight": torch.randn(3, generator=g), "norm.bias": torch.randn(3, generator=g),
            "emb.weight": torch.randn(6, 4, generator=g), "steps": torch.tensor([7, 9])}


IDENTITY = {k: k for k in small_state()} | {"out.weight": "out.weight"}


def test_parameters_on_meta_keeps_buffers() -> None:
    with parameters_on_meta():
        module = Small()
    assert all(p.is_meta for p in module.parameters())
    assert torch.equal(module.table, torch.arange(5.0)) and not module.table.is_meta
    assert not Small().lin.weight.is_meta  # the patch is gone afterwards


@pytest.mark.parametrize("fmt", ["safetensors", "pth", "sharded"])
def test_load_module_values_dtypes_and_buffers(tmp_path: Path, fmt: str) -> None:
    state = small_state()
    if fmt == "safetensors":
        save_file(state, tmp_path / "m.safetensors")
        weights = probe_weights(tmp_path / "m.safetensors")
    elif fmt == "pth":
        torch.save(state, tmp_path / "m.pth")
        weights = probe_weights(tmp_path / "m.pth")
    else:
        weights = probe_weights(save_sharded(state, tmp_path, "m", shards=2))
    module = load_module(Small, weights, IDENTITY, device="cpu", dtype=torch.bfloat16,
                         tied={"out.weight": "emb.weight"},
                         keep_float32=lambda key: key.startswith("norm."))
    assert module.lin.weight.dtype == torch.bfloat16
    assert torch.equal(module.lin.weight, state["lin.weight"].to(torch.bfloat16))
    assert module.norm.weight.dtype == torch.float32
    assert torch.equal(module.norm.bias, state["norm.bias"])
    assert module.steps.dtype == torch.int64 and module.steps.tolist() == [7, 9]
    assert torch.equal(module.table, torch.arange(5.0))
    assert module.out.weight.data_ptr() == module.emb.weight.data_ptr()
    assert not module.training
    assert not any(t.is_meta for t in [*module.parameters(), *module.buffers()])


def test_load_module_renames_keys(tmp_path: Path) -> None:
    state = {f"model.diffusion_model.{k}": v for k, v in small_state().items()}
    save_file(state, tmp_path / "p.safetensors")
    key_map = {f"model.diffusion_model.{k}": k for k in small_state()}
    module = load_module(Small, probe_weights(tmp_path / "p.safetensors"), key_map,
                         device="cpu", dtype=torch.float32, tied={"out.weight": "emb.weight"})
    assert torch.equal(module.emb.weight, small_state()["emb.weight"])


def test_load_module_reports_every_discrepancy(tmp_path: Path) -> None:
    state = small_state()
    del state["lin.bias"], state["norm.weight"]
    state["extra.weight"] = torch.zeros(1)
    state["emb.weight"] = torch.zeros(5, 4)
    path = tmp_path / "bad.safetensors"
    save_file(state, path)
    with pytest.raises(CheckpointError) as info:
        load_module(Small, probe_weights(path), {k: k for k in small_state()}, device="cpu",
                    dtype=torch.float32, tied={"out.weight": "emb.weight"}, what="test model")
    message = info.value.message
    assert message.startswith(f"{path} does not fit the test model")
    assert "2 missing tensor(s): 'lin.bias', 'norm.weight'" in message
    assert "1 unexpected tensor(s): 'extra.weight'" in message
    assert "'emb.weight' is [5, 4], expected [6, 4]" in message


def test_load_module_can_be_cancelled(tmp_path: Path) -> None:
    save_file(small_state(), tmp_path / "m.safetensors")
    token = CancelToken()
    token.set()
    with pytest.raises(Cancelled):
        load_module(Small, probe_weights(tmp_path / "m.safetensors"), IDENTITY, device="cpu",
                    dtype=torch.float32, tied={"out.weight": "emb.weight"}, cancel=token)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_loaded_weights_do_not_alias_the_file(tmp_path: Path, suffix: str) -> None:
    """Loaded tensors are copies: rewriting the file in place afterwards changes nothing."""
    state = small_state()
    path = tmp_path / f"m{suffix}"
    if suffix == ".pth":
        torch.save(state, path)
    else:
        save_file(state, path)
    module = load_module(Small, probe_weights(path), IDENTITY, device="cpu", dtype=torch.float32,
                         tied={"out.weight": "emb.weight"})
    with path.open("r+b") as handle:
        handle.write(b"\0" * path.stat().st_size)
    assert torch.equal(module.lin.weight, state["lin.weight"])
    assert torch.equal(module.emb.weight, state["emb.weight"])


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_loading_holds_one_copy_in_memory(tmp_path: Path) -> None:
    """Peak resident memory grows by about the module's size while a 100 MB safetensors file
    loads into it. Holding the file's data (read or memory-mapped) next to the module, as
    ``load_state_dict(load_file(path))`` does, would need about twice that."""
    path = tmp_path / "big.safetensors"
    save_file({f"{i}.weight": torch.randn(2048, 2048) for i in range(6)}, path)
    weights = probe_weights(path)

    def build() -> nn.Module:
        return nn.Sequential(*[nn.Linear(2048, 2048, bias=False) for _ in range(6)])

    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the RSS now
    except OSError:
        pytest.skip("cannot reset the peak resident size here")
    before = _rss_kib("VmRSS")
    module = load_module(build, weights, {k: k for k in weights.tensors()}, device="cpu",
                         dtype=torch.float32)
    growth = (_rss_kib("VmHWM") - before) * 1024
    size = sum(p.numel() * p.element_size() for p in module.parameters())
    assert size == 6 * 2048 * 2048 * 4
    assert growth < 1.3 * size, f"peak grew by {growth / size:.2f}× the module's size"
