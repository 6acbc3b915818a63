"""A tiny random-weight model family for service tests, loadable in this process or a subprocess.

The family implements the three protocols of :mod:`studio.models.family` with small torch modules
whose weights live in one safetensors file (``tiny_model.safetensors`` in a model folder) and are
loaded through the studio's own loader (:func:`studio.models.loading.load_module`), so a damaged
file fails the way a real checkpoint does.

* text encoder: a byte-embedding table, context ``[B, 8, 16]``;
* denoiser: Conv3d 3³ over the latent plus per-channel time and pooled-context terms;
* VAE (4 latent channels, 4× space, 4× causal time): a 3×3 conv + bilinear 4× upsampling per
  latent frame;
  latent frame 0 makes one frame, every later one makes four, mixed with the previous latent
  frame's features (a causal cache), so the decoder has a real spatial and temporal reach.

``install(folder)`` makes ``studio.service.catalog`` find and load the model under the id
``TINY_ID`` (any other id goes to the real catalogue). ``python -m tests.service.tiny_studio``
runs the studio command line that way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from studio.engine.cancel import NEVER, CancelToken
from studio.engine.model import FamilyDefaults, LoadedModel, PreviewFactors
from studio.engine.request import GenerationRequest
from studio.engine.shapes import LatentGeometry
from studio.models.loading import load_module
from studio.models.weight_files import probe_weights

TINY_ID = "tiny-test-model"
WEIGHTS_NAME = "tiny_model.safetensors"
CHANNELS, SPATIAL, TEMPORAL = 4, 4, 4
CONTEXT_LEN, CONTEXT_DIM = 8, 16
GEOMETRY = LatentGeometry(channels=CHANNELS, temporal_factor=TEMPORAL, spatial_factor=SPATIAL,
                          patch=(1, 2, 2))
DEFAULTS = FamilyDefaults(steps=6, guidance=3.0, shift=2.0, fps=8.0, frames=9, sizes=((32, 24),))
PREVIEW = PreviewFactors(
    rgb_factors=((0.5, 0.1, 0.0), (0.0, 0.5, 0.1), (0.1, 0.0, 0.5), (0.2, 0.2, 0.2)),
    bias=(0.0, 0.0, 0.0),
)


class TinyNet(nn.Module):
    """Every weight of the tiny family (the layout of ``tiny_model.safetensors``)."""

    def __init__(self) -> None:
        super().__init__()
        self.text_table = nn.Parameter(torch.zeros(256, CONTEXT_DIM))  # byte embeddings
        self.den_conv = nn.Conv3d(CHANNELS, CHANNELS, 3, padding=1)
        self.den_time = nn.Parameter(torch.zeros(CHANNELS))
        self.den_context = nn.Linear(CONTEXT_DIM, CHANNELS)
        self.vae_dec = nn.Conv2d(CHANNELS, 3, 3, padding=1)
        self.vae_mix = nn.Parameter(torch.zeros(TEMPORAL, 2))
        self.vae_enc = nn.Conv2d(3 * SPATIAL * SPATIAL, CHANNELS, 1)


def write_tiny_weights(folder: Path, seed: int = 0) -> Path:
    """Random weights with the real key names, saved as ``folder/tiny_model.safetensors``."""
    torch.manual_seed(seed)
    net = TinyNet()
    with torch.no_grad():
        for param in net.parameters():
            param.normal_(0.0, 0.15)
        net.vae_mix.copy_(torch.tensor([[1.0, 0.0], [0.7, 0.3], [0.4, 0.6], [0.1, 0.9]]))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / WEIGHTS_NAME
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path


class TinyText:
    def __init__(self, net: TinyNet) -> None:
        self.net = net

    def encode(self, prompts: list[str]) -> torch.Tensor:
        """Prompts → ``[B, 8, 16]`` (UTF-8 bytes, zero-padded)."""
        ids = torch.zeros(len(prompts), CONTEXT_LEN, dtype=torch.long)
        for row, prompt in enumerate(prompts):
            data = list(prompt.encode("utf-8"))[:CONTEXT_LEN]
            ids[row, : len(data)] = torch.tensor(data, dtype=torch.long)
        return self.net.text_table[ids]


class TinyDenoiser:
    delay_s = 0.0
    """Seconds each call sleeps (subprocess tests slow a run down to kill it mid-sampling)."""

    def __init__(self, net: TinyNet) -> None:
        self.net = net
        self.calls = 0

    def __call__(self, x: torch.Tensor, t_tok: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """v ``[B, C, T', H', W']`` from x, t_tok ``[B, T', H', W']`` and context ``[B, L, D]``."""
        self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        n = self.net
        ctx = n.den_context(context.mean(1))[:, :, None, None, None]
        t_term = n.den_time[None, :, None, None, None] * t_tok[:, None]
        return n.den_conv(x) + ctx + t_term + 0.5 * x


class TinyVAE:
    def __init__(self, net: TinyNet) -> None:
        self.net = net

    def decode(self, latent: torch.Tensor, cancel: CancelToken = NEVER) -> torch.Tensor:
        """``[B, 4, T', H', W']`` → pixels ``[B, 3, 1 + 4(T' − 1), 4H', 4W']`` in [−1, 1]."""
        frames, previous = [], None
        for k in range(latent.shape[2]):
            cancel.check()
            features = F.interpolate(self.net.vae_dec(latent[:, :, k]), scale_factor=SPATIAL,
                                     mode="bilinear", align_corners=False)
            if previous is None:
                frames.append(features)
            else:
                mix = self.net.vae_mix
                frames += [mix[j, 0] * features + mix[j, 1] * previous for j in range(TEMPORAL)]
            previous = features
        return torch.tanh(torch.stack(frames, dim=2))

    def encode(self, video: torch.Tensor, cancel: CancelToken = NEVER) -> torch.Tensor:
        """Pixels ``[B, 3, T, H, W]`` → latent ``[B, 4, T', H/4, W/4]`` (frame 0, then fours)."""
        groups = [video[:, :, :1]] + [video[:, :, i : i + TEMPORAL]
                                       for i in range(1, video.shape[2], TEMPORAL)]
        out = []
        for group in groups:
            cancel.check()
            out.append(self.net.vae_enc(F.pixel_unshuffle(group.mean(2), SPATIAL)))
        return torch.stack(out, dim=2)


@dataclass(frozen=True)
class TinyModelSet:
    """What the catalogue hands the loader (the registry's ModelSet interface, in small)."""

    id: str
    folder: Path
    family: str = "tiny"
    complete: bool = True
    problems: tuple[str, ...] = ()

    def all_files(self) -> list[Path]:
        return [self.folder / WEIGHTS_NAME]


def load_tiny(folder: Path, device: torch.device | str = "cpu",
              cancel: CancelToken = NEVER) -> LoadedModel:
    """Load the tiny model from ``folder`` through the studio's checkpoint loader."""
    cancel.check()
    weights = probe_weights(Path(folder) / WEIGHTS_NAME)
    keys = {k: k for k in TinyNet().state_dict()}
    net = load_module(TinyNet, weights, keys, device=torch.device(device), dtype=torch.float32,
                      what="tiny test model", cancel=cancel)
    return LoadedModel(
        id=TINY_ID, name="Tiny test model", family="tiny", variant="test", geometry=GEOMETRY,
        defaults=DEFAULTS, preview=PREVIEW, text_encoder=TinyText(net),
        denoiser=TinyDenoiser(net), vae=TinyVAE(net), device=torch.device(device),
        dtype=torch.float32,
    )


def tiny_request(**changes) -> GenerationRequest:
    """A valid request for the tiny model: 32×24 px, 9 frames (latent ``[1, 4, 3, 6, 8]``)."""
    values = dict(prompt="a red ball rolls right", model=TINY_ID, seed=7, steps=6, guidance=3.0,
                  shift=2.0, width=32, height=24, frames=9, fps=8.0)
    return GenerationRequest(**{**values, **changes}).validate()


def catalog_functions(folder: Path) -> tuple[Callable, Callable]:
    """``(find_model, load_model)`` replacements that know ``TINY_ID`` and defer otherwise."""
    from studio.service import catalog

    real_find, real_load = catalog.find_model, catalog.load_model
    model_set = TinyModelSet(TINY_ID, Path(folder))

    def find_model(settings, model_id):
        return model_set if model_id == TINY_ID else real_find(settings, model_id)

    def load_model(chosen, device, cancel=NEVER, **kwargs):
        if isinstance(chosen, TinyModelSet):
            return load_tiny(chosen.folder, device, cancel)
        return real_load(chosen, device, cancel, **kwargs)

    return find_model, load_model


def listing_function(folder: Path) -> Callable:
    """A ``list_models`` replacement that adds the tiny set to the user's model sets."""
    from studio.service import catalog

    real_list = catalog.list_models
    return lambda settings: [*real_list(settings), TinyModelSet(TINY_ID, Path(folder))]


def install(folder: Path) -> None:
    """Route ``studio.service.catalog`` to the tiny model for ``TINY_ID`` (subprocesses only;
    tests use ``monkeypatch`` with :func:`catalog_functions`)."""
    from studio.service import catalog

    catalog.find_model, catalog.load_model = catalog_functions(folder)
    catalog.list_models = listing_function(folder)
