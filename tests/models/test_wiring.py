"""Every loaded model that takes reference frames gets per-token times inside its denoiser.

Behaviour, not names: a first-frame conditioning item pins the latent frame 0 tokens, so the
timestep the DiT's forward receives must be 0 at exactly those tokens and the schedule's t
elsewhere — for every family and variant whose capabilities list a conditioning mode. A model
wired to the one-time-per-sample call would see the first token's t everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from studio.engine.model import DIT, LoadedModel
from studio.engine.pipeline import plan_generation, sample_plan
from studio.engine.request import ConditioningItem, GenerationRequest
from studio.models.demo.loader import load_demo_model
from studio.models.registry import scan
from studio.models.wan.family import WAN_FAMILY
from tests.models.tiny_wan import write_wan_set


def _tiny_wan(variant: str) -> Callable[[Path], LoadedModel]:
    def load(tmp_path: Path) -> LoadedModel:
        write_wan_set(tmp_path / variant, variant, "original")
        (model_set,) = scan([tmp_path / variant])
        return WAN_FAMILY.load(model_set, torch.device("cpu"), torch.float32)

    return load


LOADERS = {"demo": lambda tmp_path: load_demo_model(), "wan-ti2v": _tiny_wan("ti2v"),
           "wan-t2v": _tiny_wan("t2v")}  # fmt: skip


def _timesteps_seen(model: LoadedModel, request: GenerationRequest,
                    monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    """The ``timestep`` argument of every forward of the model's DiT during one sampling."""
    seen: list[torch.Tensor] = []
    dit = model.modules.parts[DIT]
    forward = dit.forward

    def spy(x: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor,
            image_context: torch.Tensor | None = None) -> torch.Tensor:
        seen.append(timestep.clone())
        return forward(x, timestep, context, image_context)

    monkeypatch.setattr(dit, "forward", spy)  # every denoiser call reaches forward
    sample_plan(model, plan_generation(model, request))
    return seen


@pytest.mark.parametrize("name", ["demo", "wan-ti2v"])
def test_pinned_tokens_see_t_zero_inside_the_denoiser(name: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    model = LOADERS[name](tmp_path)
    assert model.capabilities.conditioning, f"{name} takes reference frames"
    g = model.geometry
    width = height = g.size_multiple * 2
    image = tmp_path / "first.png"
    Image.fromarray(np.full((height, width, 3), 128, np.uint8)).save(image)
    request = GenerationRequest(prompt="a red circle", steps=2, guidance=1.0, shift=1.0,
                                width=width, height=height, frames=1 + 2 * g.temporal_factor,
                                conditioning=(ConditioningItem(str(image), 0, 1.0),))  # fmt: skip
    seen = _timesteps_seen(model, request, monkeypatch)
    tokens_per_frame = g.tokens_per_frame(height, width)
    frames = g.latent_frames(request.frames)
    assert len(seen) == request.steps
    for step, timestep in enumerate(seen):
        t = 1.0 - step / request.steps  # shift 1: linear schedule from 1
        assert timestep.shape == (1, frames * tokens_per_frame), "one time per token"
        per_frame = timestep.reshape(frames, tokens_per_frame)
        assert torch.all(per_frame[0] == 0), "pinned tokens must see t = 0"
        assert torch.allclose(per_frame[1:], torch.full_like(per_frame[1:], 1000.0 * t))


def test_a_text_only_variant_refuses_reference_frames(tmp_path: Path) -> None:
    model = LOADERS["wan-t2v"](tmp_path)
    assert model.capabilities.conditioning == ()
    assert not model.supports_image
