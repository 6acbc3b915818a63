"""The samplers by name: what a request's ``sampler`` field selects."""

from __future__ import annotations

from collections.abc import Callable

import torch

from studio.engine.multistep import sample_dpmpp_2m
from studio.engine.sampler import sample_euler, sample_stochastic
from studio.engine.unipc import sample_unipc

SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {
    "euler": sample_euler,
    "stochastic": sample_stochastic,
    "dpm++2m": sample_dpmpp_2m,
    "unipc": sample_unipc,
}
#: Samplers that carry state from step to step: no soft reference frames, and a resumed run's
#: first step is first order.
MULTISTEP_SAMPLERS = frozenset({"dpm++2m", "unipc"})
