"""A Wan DiT whose width is not a multiple of 128 (2 heads of 24): its ``config.json`` gives the
head count before the 128-per-head rule applies, scan and load agree on whether it is usable,
and every refusal names the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from studio.engine.model import AttentionShape
from studio.errors import CheckpointError
from studio.models.registry import scan
from studio.models.wan.dit_config import WanDiTConfig
from studio.models.wan.family import WAN_FAMILY
from tests.models.tiny_wan import dit_state, write_dit, write_wan_set

NARROW = WanDiTConfig(dim=48, ffn_dim=64, num_heads=2, num_layers=1, text_dim=32)


def _narrow_set(root: Path, layout: str) -> Path:
    """A tiny complete set whose DiT is :data:`NARROW`; returns the DiT's folder."""
    write_wan_set(root, "t2v", layout)
    folder = root / "transformer" if layout == "diffusers" else root
    for old in folder.glob("diffusion_pytorch_model*"):
        old.unlink()
    write_dit(folder, NARROW, layout, dit_state(NARROW), torch.float32)
    return folder


@pytest.mark.parametrize("layout", ["original", "diffusers"])
def test_config_json_heads_make_a_narrow_dit_usable(tmp_path: Path, layout: str) -> None:
    _narrow_set(tmp_path / "set", layout)
    [model_set] = scan([tmp_path / "set"])
    assert model_set.usable, model_set.problems
    model = WAN_FAMILY.load(model_set, torch.device("cpu"), torch.float32)
    assert model.modules.attention == AttentionShape(num_heads=2, head_dim=24)
    context = model.text_encoder.encode(["a cat"])
    x = torch.zeros(1, 16, 2, 4, 4)
    assert model.denoiser(x, torch.ones(1, 2, 4, 4), context).shape == x.shape


@pytest.mark.parametrize("layout", ["original", "diffusers"])
def test_without_config_json_scan_and_load_refuse_naming_the_file(tmp_path: Path,
                                                                   layout: str) -> None:
    folder = _narrow_set(tmp_path / "set", layout)
    (folder / "config.json").unlink()
    [model_set] = scan([tmp_path / "set"])
    dit_file = str(model_set.component("dit").path)
    assert not model_set.usable
    assert any(dit_file in p and "multiple of 128" in p for p in model_set.problems)
    with pytest.raises(CheckpointError, match="multiple of 128") as refused:
        WAN_FAMILY.load(model_set, torch.device("cpu"), torch.float32)
    assert str(model_set.id) in refused.value.message or dit_file in refused.value.message
