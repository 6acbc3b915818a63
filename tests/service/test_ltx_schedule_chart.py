"""The GUI's schedule plot draws what the engine samples for LTX-Video: the checkpoint's own
schedule rule (its token count including appended keyframes), a distilled model's explicit
timesteps, and the shift it amounts to."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from studio.engine.plan import plan_generation
from studio.engine.request import ConditioningItem
from studio.models.ltx.random_model import random_model
from studio.service.model_info import default_request, model_info
from studio.service.schedule_chart import chart_for


@pytest.mark.parametrize("variant", ["2b-0.9.1", "2b-0.9.8-distilled"])
def test_the_chart_is_the_plans_schedule(variant: str, tmp_path) -> None:
    model = random_model("cpu", torch.float32, variant=variant)
    info = model_info(model)
    image = tmp_path / "key.png"
    Image.new("RGB", (64, 64), (90, 20, 20)).save(image)
    request = default_request(info, "a boat").with_changes(
        width=64, height=64, frames=17, conditioning=(ConditioningItem(str(image), 16, 0.5),))
    request = request.validate()
    plan = plan_generation(model, request)
    chart = chart_for(info, request)
    assert chart.ts == plan.schedule and chart.shift == pytest.approx(plan.shift)
    without = plan_generation(model, request.with_changes(conditioning=()))
    if request.timesteps is None:  # the appended frame counts in the token-count shift
        assert plan.schedule != without.schedule
        assert chart_for(info, request.with_changes(conditioning=())).ts == without.schedule
