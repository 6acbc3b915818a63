"""Model folders and files built to break the studio: code that asks to run, FIFOs, numbers
Python refuses to parse, integer "weights" — and the parsers fuzzed with random input.

Numbered as in the reliability campaign (docs/reliability.md): 1 custom code, 3 FIFOs, 4 the
inputs that used to end in a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from studio.errors import CheckpointError, InvalidRequest, MediaError
from studio.media.video import read_video_metadata
from studio.models.checkpoint import probe_checkpoint
from studio.models.registry import scan
from studio.models.wan.family import WAN_FAMILY
from studio.models.weight_files import probe_weights, read_index
from studio.service.recipe import request_from_recipe
from tests.models.tiny_wan import write_wan_set

FIFO = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")


def _tokenizer_folder(root: Path) -> Path:
    return root / "google" / "umt5-xxl"


# --- 1: code in a model folder -----------------------------------------------------------------


def test_a_tokenizer_that_asks_for_custom_code_is_refused_and_never_run(tmp_path: Path) -> None:
    write_wan_set(tmp_path / "set", "t2v", "original")
    folder = _tokenizer_folder(tmp_path / "set")
    marker = tmp_path / "code-ran"
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["auto_map"] = {"AutoTokenizer": ["evil.EvilTokenizer", None]}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    (found,) = scan([tmp_path / "set"])
    assert not found.usable
    assert any("asks to run Python code" in p and "tokenizer_config.json" in p
               for p in found.problems)  # fmt: skip
    unchecked = type(found)(**{**{f: getattr(found, f) for f in found.__slots__}, "problems": ()})
    with pytest.raises(CheckpointError, match="asks to run Python code"):
        WAN_FAMILY.load(unchecked, torch.device("cpu"), torch.float32)
    assert not marker.exists()


# --- 3: FIFOs ----------------------------------------------------------------------------------


@FIFO
@pytest.mark.timeout(60)
def test_fifos_named_like_weights_are_skipped_with_a_problem(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    os.mkfifo(folder / "model.safetensors")
    os.mkfifo(folder / "weights.pth")
    (found,) = scan([folder])
    assert sorted(p.split(" is ")[0] for p in found.problems) == [
        str(folder / "model.safetensors"), str(folder / "weights.pth")]
    assert all("FIFO, not a regular file" in p for p in found.problems)
    with pytest.raises(CheckpointError, match="FIFO"):
        probe_checkpoint(folder / "model.safetensors")


@FIFO
@pytest.mark.timeout(60)
def test_a_fifo_in_a_tokenizer_folder_makes_the_set_unusable(tmp_path: Path) -> None:
    write_wan_set(tmp_path / "set", "t2v", "original")
    folder = _tokenizer_folder(tmp_path / "set")
    (folder / "tokenizer.json").unlink()
    os.mkfifo(folder / "tokenizer.json")
    (found,) = scan([tmp_path / "set"])
    assert any("tokenizer.json is a FIFO" in p for p in found.problems)


# --- 4: numbers, nesting, dtypes ---------------------------------------------------------------


def test_an_index_with_a_5000_digit_integer_is_a_damaged_file(tmp_path: Path, caplog) -> None:
    index = tmp_path / "model.safetensors.index.json"
    index.write_text('{"metadata": {"total_size": ' + "9" * 5000 + '}, "weight_map": {}}')
    with pytest.raises(CheckpointError, match="not valid JSON") as refused:
        read_index(index)
    assert str(index) in refused.value.message
    with caplog.at_level(logging.WARNING):
        (found,) = scan([tmp_path])
    assert any(str(index) in p for p in found.problems)
    assert not any(r.exc_info for r in caplog.records)  # no traceback in the log


def test_a_header_with_a_5000_digit_integer_is_refused_without_a_traceback(
    tmp_path: Path, caplog
) -> None:
    path = tmp_path / "big.safetensors"
    header = ('{"w": {"dtype": "F32", "shape": [' + "9" * 5000 + '], "data_offsets": [0, 4]}}')
    path.write_bytes(struct.pack("<Q", len(header)) + header.encode() + b"\0" * 4)
    with pytest.raises(CheckpointError, match="not valid JSON"):
        probe_checkpoint(path)
    with caplog.at_level(logging.WARNING):
        (found,) = scan([tmp_path])
    assert any(str(path) in p for p in found.problems)
    assert not any(r.exc_info for r in caplog.records)


def test_integer_weights_in_a_dit_are_refused_by_scan_and_load(tmp_path: Path) -> None:
    tiny = write_wan_set(tmp_path / "set", "t2v", "original")
    state = load_file(str(tiny.dit))
    save_file({k: (v * 100).to(torch.int32) for k, v in state.items()}, str(tiny.dit))
    (found,) = scan([tmp_path / "set"])
    assert any(str(tiny.dit) in p and "I32" in p and "floating point" in p
               for p in found.problems)  # fmt: skip
    unchecked = type(found)(**{**{f: getattr(found, f) for f in found.__slots__}, "problems": ()})
    with pytest.raises(CheckpointError, match="not floating point") as refused:
        WAN_FAMILY.load(unchecked, torch.device("cpu"), torch.float32)
    assert str(tiny.dit) in refused.value.message


def test_an_mp4_comment_nested_too_deep_is_no_recipe(tmp_path: Path) -> None:
    import numpy as np

    from studio.media.video import write_video

    nested: dict = {}
    for _ in range(40):
        nested = {"n": nested}
    path = tmp_path / "deep.mp4"
    write_video(path, np.zeros((1, 16, 16, 3), np.uint8), 8.0, metadata=nested)
    assert read_video_metadata(path) is None


# --- the fuzz targets raise only the project's own errors --------------------------------------

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                     lambda children: st.lists(children, max_size=3)
                     | st.dictionaries(st.text(max_size=6), children, max_size=3), max_leaves=12)
_FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                 HealthCheck.function_scoped_fixture])  # fmt: skip


@_FUZZ
@given(recipe=st.dictionaries(st.sampled_from(["recipe_version", "request", "prompt", "seed",
                                               "steps", "model", "conditioning"]), _json))
def test_request_from_recipe_raises_only_invalid_request(recipe: dict) -> None:
    try:
        request_from_recipe(recipe)
    except InvalidRequest as exc:
        assert exc.field


@_FUZZ
@given(data=st.binary(max_size=200) | _json.map(lambda v: json.dumps(v).encode()))
def test_read_index_and_probe_weights_raise_only_checkpoint_errors(tmp_path: Path,
                                                                   data: bytes) -> None:
    index = tmp_path / "m.safetensors.index.json"
    index.write_bytes(data)
    for read in (read_index, probe_weights):
        with pytest.raises(CheckpointError):
            read(index)


@_FUZZ
@given(data=st.binary(max_size=300))
def test_read_video_metadata_raises_only_media_errors(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.mp4"
    path.write_bytes(data)
    try:
        result = read_video_metadata(path)
    except MediaError as exc:
        assert str(path) in exc.message or exc.hint
    else:
        assert result is None or isinstance(result, dict)


@FIFO
@pytest.mark.timeout(60)
def test_fifos_in_place_of_images_and_studio_files_never_block(tmp_path: Path) -> None:
    """The same fault class elsewhere: a reference image, the settings and a job file."""
    from studio.media.image import load_image
    from studio.service.job_queue import JobQueue
    from studio.service.settings import Settings, load_settings

    os.mkfifo(tmp_path / "ref.png")
    with pytest.raises(MediaError, match="FIFO"):
        load_image(tmp_path / "ref.png")
    os.mkfifo(tmp_path / "settings.json")
    assert load_settings(tmp_path / "settings.json") == Settings()
    (tmp_path / "queue" / "jobs" / "abc123").mkdir(parents=True)
    os.mkfifo(tmp_path / "queue" / "jobs" / "abc123" / "job.json")
    assert JobQueue(tmp_path / "queue").pending() == []
