"""Load the shipped demo model: a small Wan DiT + Wan 2.1 VAE + MiniLM text encoder.

The folder (``resources/models/demo`` by default) holds ``config.json`` (:class:`DemoConfig`),
``dit.safetensors`` and ``vae.safetensors`` in the original Wan key layouts, so the demo runs
through exactly the classes and the pipeline the real Wan models use.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from studio.engine.memory_model import TextEncoderShape
from studio.engine.model import (
    DIT,
    TEXT_ENCODER,
    VAE,
    AttentionShape,
    Denoiser,
    LoadedModel,
    ModelModules,
)
from studio.engine.shapes import LatentGeometry
from studio.errors import CheckpointError
from studio.models.calibrations import load_calibration
from studio.models.demo.config import DIT_FILE, VAE_FILE, VARIANT, DemoConfig
from studio.models.demo.text import MiniLMTextEncoder
from studio.models.demo.vocabulary import PROMPT_EXAMPLES, VOCABULARY, prompt_guide
from studio.models.wan.dit import WanDiT
from studio.models.wan.memory import loaded_memory
from studio.models.wan.vae_factory import build_vae
from studio.paths import shipped_model_dir

log = logging.getLogger(__name__)

FAMILY_NAME = "demo"
#: The demo VAE's (decode, encode) working set in bytes per output pixel, measured with
#: :func:`~studio.engine.memory_model.measure_vae_bytes_per_pixel` (a test re-measures it);
#: measuring at every load would cost a second of the 3 s the demo model may take to load.
VAE_BYTES_PER_PIXEL = (1340.0, 1028.0)
#: The shipped step-cache calibration (``studio cache calibrate --model demo --out …``).
CALIBRATION_FILE = "step_cache.json"
_HINT = "reinstall Flow Studio, or re-create the weights with: studio train demo"


def demo_model_dir() -> Path:
    """The shipped demo model's folder (config + safetensors weights)."""
    return shipped_model_dir(FAMILY_NAME)


def load_weights(module: nn.Module, path: Path, device: torch.device | str) -> None:
    """Load a safetensors file into ``module`` (built on the meta device) with strict keys."""
    try:
        state = load_file(str(path), device=str(device))
    except FileNotFoundError as exc:
        raise CheckpointError(f"The demo model file {path.name} is missing in {path.parent}",
                              _HINT) from exc  # fmt: skip
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"The demo model file {path} is damaged ({exc})", _HINT) from exc
    try:
        module.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"The demo model file {path.name} does not match its config.json", _HINT
        ) from exc


def _denormals_flushed(velocity: Denoiser) -> Denoiser:
    """Run ``velocity`` with CPU denormals flushed to zero, restoring the default afterwards.

    The trained attention produces denormal floats on the CPU, which made sampling ~7× slower
    (36 s instead of 5 s for 20 guided steps); flushing them changes nothing visible. The flag is
    thread state, so it is set only around each denoiser call and never leaks into other code.
    """

    def flushed(x: torch.Tensor, t_tok: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        torch.set_flush_denormal(True)
        try:
            return velocity(x, t_tok, context)
        finally:
            torch.set_flush_denormal(False)

    return flushed


def load_demo_model(
    folder: Path | str | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> LoadedModel:
    """Load the demo model from ``folder`` (default: the shipped one) onto ``device``.

    ``dtype`` is the DiT's compute precision (its time MLP, modulation and norms stay float32);
    the VAE and the text encoder run in float32.
    """
    started = time.perf_counter()
    folder = Path(folder) if folder is not None else demo_model_dir()
    device = torch.device(device)
    config = DemoConfig.load(folder)
    with torch.device("meta"):
        dit = WanDiT(config.dit)
        vae = build_vae(config.vae)
    load_weights(dit, folder / DIT_FILE, device)
    load_weights(vae, folder / VAE_FILE, device)
    dit.eval().requires_grad_(False)
    if dtype != torch.float32:
        dit.to_dtype(dtype)
    vae.eval().requires_grad_(False)
    text_encoder = MiniLMTextEncoder(length=config.text_length, device=device)
    log.info("demo model loaded from %s in %.2f s", folder, time.perf_counter() - started)
    geometry = LatentGeometry(config.vae.z_dim, config.vae.temporal_factor,
                              config.vae.spatial_factor, config.dit.patch_size)
    return LoadedModel(
        id=FAMILY_NAME, name="Demo (shapes)", family=FAMILY_NAME, variant=VARIANT,
        geometry=geometry, defaults=config.defaults.family_defaults(), preview=config.preview,
        text_encoder=text_encoder,
        denoiser=_denormals_flushed(dit.velocity) if device.type == "cpu" else dit.velocity,
        vae=vae, device=device, dtype=dtype, modules=_modules(dit, vae, text_encoder),
        memory=loaded_memory(dit, vae, text_encoder.model, _text_shape(text_encoder, config),
                             geometry, per_token_time=True, vae_per_pixel=VAE_BYTES_PER_PIXEL),
        prompt_guide=prompt_guide(), prompt_examples=PROMPT_EXAMPLES, vocabulary=VOCABULARY,
        cache_calibration=load_calibration(FAMILY_NAME, VARIANT, folder / CALIBRATION_FILE),
    )  # fmt: skip


def _modules(dit: WanDiT, vae: nn.Module, text_encoder: MiniLMTextEncoder) -> ModelModules:
    return ModelModules(parts={TEXT_ENCODER: text_encoder.model, DIT: dit, VAE: vae},
                        blocks={DIT: "blocks"},
                        attention=AttentionShape(dit.config.num_heads, dit.config.head_dim))


def _text_shape(text_encoder: MiniLMTextEncoder, config: DemoConfig) -> TextEncoderShape:
    bert = text_encoder.model.config
    return TextEncoderShape(bert.hidden_size, bert.num_attention_heads, config.text_length)
