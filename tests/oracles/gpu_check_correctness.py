"""Section 1 of ``gpu_check.py``: the device against the CPU, every family's tiny set.

For each set: one guided denoiser call and one VAE decode in float32 on the device (TF32 off)
against float32 on the CPU, the denoiser in bfloat16 against the same reference, and one whole
generation (encode, sample, decode to uint8 frames) in each precision, by frame PSNR. Inputs are
seeded on the CPU and moved, so every run sees the same numbers.
"""

from __future__ import annotations

import contextlib
import functools
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from gpu_check_common import (
    BF16_PSNR_DB,
    BF16_RMS_REL,
    CPU,
    FP32_MAX_REL,
    FP32_PSNR_DB,
    PROMPT,
    Context,
    Row,
    verdict,
)
from PIL import Image

from studio.bench.measure import denoiser_inputs, vae_latent
from studio.engine.fastpath import accelerate
from studio.engine.image_inputs import image_inputs, with_image
from studio.engine.model import DIT, TEXT_ENCODER, FrameLayout, LoadedModel
from studio.engine.offload import OffloadPolicy, apply_offload
from studio.engine.pipeline import generate, with_layout
from studio.engine.request import ConditioningItem, GenerationRequest
from studio.models.demo.analysis import psnr
from studio.models.demo.loader import load_demo_model
from studio.models.registry import families, family, scan
from studio.models.wan.bench_sizes import SIZES, WanBenchSizes
from studio.models.wan.dit_config import WanDiTConfig
from studio.models.wan.presets import WAN22_GEOMETRY
from studio.models.wan.random_model import random_model
from studio.models.wan.vae import WAN22_LATENT_MEAN, WAN22_LATENT_STD, WanVAEConfig


@dataclass(frozen=True, slots=True)
class TinySet:
    """A family's tiny model and the clip it generates. ``build(device, dtype)`` gives the
    same weights on every device (read from files, or seeded on the CPU and moved); ``size``
    is (width, height, frames) on CUDA, ``dry_size`` the smallest valid one for a dry run."""

    name: str
    family: str
    build: Callable[[torch.device, torch.dtype], LoadedModel]
    size: tuple[int, int, int]
    dry_size: tuple[int, int, int]
    steps: int = 3
    image: str = ""  # a reference image for models that make video from one
    frame_index: int = 0  # the pixel frame the image pins (> 0: a keyframe)

    def at(self, ctx: Context) -> TinySet:
        return replace(self, size=self.dry_size, steps=2) if ctx.dry else self

    def latent_shape(self, model: LoadedModel, batch: int = 1) -> tuple[int, ...]:
        width, height, frames = self.size
        return model.geometry.latent_shape(frames, height, width, batch)

    def request(self) -> GenerationRequest:
        width, height, frames = self.size
        references = (ConditioningItem(self.image, self.frame_index),) if self.image else ()
        return GenerationRequest(prompt=PROMPT, steps=self.steps, guidance=5.0, shift=3.0,
                                 width=width, height=height, frames=frames,
                                 conditioning=references)


#: The Wan 2.2 TI2V-5B architecture (48 latent channels, per-token times, the 2.2 VAE) shrunk
#: like the ``tiny`` bench size; bench_sizes has no such entry because nothing else times it.
TINY_TI2V = replace(
    SIZES["tiny"], name="tiny-ti2v", variant="ti2v-custom", geometry=WAN22_GEOMETRY,
    dit=WanDiTConfig(dim=64, ffn_dim=128, num_heads=2, num_layers=2, in_dim=48, out_dim=48,
                     text_dim=32, text_len=32),
    vae=WanVAEConfig(version="2.2", dim=8, dec_dim=8, z_dim=48, num_res_blocks=1,
                     latent_mean=WAN22_LATENT_MEAN, latent_std=WAN22_LATENT_STD),
)  # fmt: skip


def wan_tiny(spec: WanBenchSizes, device: torch.device, dtype: torch.dtype) -> LoadedModel:
    """``spec`` with weights seeded on the CPU in float32 (random init on CUDA draws other
    numbers), cast as the Wan loader casts (DiT and text encoder), then moved to ``device``."""
    model = random_model(spec, CPU, torch.float32)
    if dtype != torch.float32:
        model.modules.parts[DIT].to_dtype(dtype)
        model.modules.parts[TEXT_ENCODER].to(dtype)
        model = replace(model, dtype=dtype)
    return apply_offload(model, OffloadPolicy.NONE, device)


@functools.cache
def written_sets() -> Path:
    """A folder with the tiny A14B, I2V-14B, Open-Sora 2.0 and LTX-Video sets and a reference image
    (written once; the files give every device the same weights)."""
    from studio.models.ltx.random_model import write_single_file_set as write_ltx_set
    from tests.models.opensora.tiny_opensora import write_set as write_opensora_set
    from tests.models.tiny_a14b import write_a14b_set, write_i2v14b_set

    root = Path(tempfile.mkdtemp(prefix="gpu-check-sets-"))
    write_a14b_set(root / "a14b", "t2v", "original")
    write_i2v14b_set(root / "i2v-14b")
    write_opensora_set(root / "open-sora")
    write_ltx_set(root / "ltx")
    Image.new("RGB", (64, 64), (200, 60, 40)).save(root / "reference.png")
    return root


def from_files(folder: str, device: torch.device, dtype: torch.dtype) -> LoadedModel:
    """A tiny set from :func:`written_sets`, loaded by its family as a scanned set is."""
    (model_set,) = scan([written_sets() / folder])
    return family(model_set.family).load(model_set, device, dtype)


def tiny_sets() -> list[TinySet]:
    reference = str(written_sets() / "reference.png")
    return [
        TinySet("demo", "demo", lambda device, dtype: load_demo_model(None, device, dtype),
                (128, 128, 17), (32, 32, 5)),
        TinySet("wan t2v", "wan", functools.partial(wan_tiny, SIZES["tiny"]), (64, 64, 5),
                (32, 32, 5)),
        TinySet("wan ti2v", "wan", functools.partial(wan_tiny, TINY_TI2V), (128, 128, 5),
                (64, 64, 5)),
        TinySet("wan a14b", "wan", functools.partial(from_files, "a14b"), (64, 64, 5),
                (32, 32, 5), steps=4),
        TinySet("wan i2v-14b", "wan", functools.partial(from_files, "i2v-14b"), (64, 64, 5),
                (32, 32, 5), image=reference),
        TinySet("open-sora i2v", "opensora", functools.partial(from_files, "open-sora"),
                (64, 64, 5), (32, 32, 5), image=reference),
        TinySet("ltx t2v", "ltx", functools.partial(from_files, "ltx"), (128, 96, 17),
                (64, 64, 9)),
        TinySet("ltx keyframe", "ltx", functools.partial(from_files, "ltx"), (128, 96, 17),
                (64, 64, 9), image=reference, frame_index=8),
    ]  # fmt: skip


@contextlib.contextmanager
def exact_float32() -> Iterator[None]:
    """TF32 off (matmuls and cuDNN convolutions), so float32 on CUDA is float32."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@dataclass(frozen=True, slots=True)
class Outputs:
    """One model's results: velocity ``[2, C, T', H', W']``, decoded pixels ``[1, 3, T, H, W]``
    (float32, CPU) and the generated uint8 frames ``[T, H, W, 3]``."""

    velocity: torch.Tensor
    pixels: torch.Tensor
    frames: np.ndarray


def run_outputs(model: LoadedModel, tiny: TinySet, decode: bool = True) -> Outputs:
    """One guided denoiser call, one VAE decode (unless ``decode`` is False: an empty tensor)
    and one generation of ``tiny`` on ``model``; inputs seeded on the CPU."""
    context = model.text_encoder.encode([PROMPT]).float().cpu()
    inputs = denoiser_inputs(tiny.latent_shape(model, batch=2), tuple(context.shape[1:]), CPU,
                             torch.float32)  # fmt: skip
    at = model.device
    denoise = model.denoiser
    if model.capabilities.frame_layout:  # LTX-Video places tokens in seconds
        denoise = with_layout(denoise, FrameLayout(tiny.request().fps, inputs.x.shape[2]))
    denoise = with_image(denoise, *image_inputs(model, tiny.request()))  # I2V's inputs
    with torch.inference_mode():
        velocity = denoise(inputs.x.to(at), inputs.t_tok.to(at), inputs.context.to(at))
        pixels = (model.vae.decode(vae_latent(tiny.latent_shape(model), at)) if decode
                  else torch.empty(0))  # fmt: skip
    return Outputs(velocity.float().cpu(), pixels.float().cpu(),
                   generate(model, tiny.request()).video)


def on_device(ctx: Context, tiny: TinySet, dtype: torch.dtype, ref: Outputs) -> Outputs:
    """``tiny`` run in ``dtype`` on the device, as judged (:meth:`Context.device_output`). A
    dry run's float32 "device" is the CPU reference itself; the VAE always decodes in float32
    (as the studio runs it), so only the float32 run decodes a latent on its own."""
    if ctx.device == CPU and dtype == torch.float32:
        got = ref
    else:
        got = run_outputs(accelerate(tiny.build(ctx.device, dtype)), tiny,
                          decode=dtype == torch.float32)
    return Outputs(ctx.device_output(got.velocity), ctx.device_output(got.pixels),
                   ctx.device_frames(got.frames))


def max_rel(ref: torch.Tensor, got: torch.Tensor) -> float:
    return float((got - ref).abs().max() / ref.abs().max().clamp_min(1e-12))


def rms_rel(ref: torch.Tensor, got: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(got - ref) / torch.linalg.vector_norm(ref))


def check_set(ctx: Context, tiny: TinySet) -> list[Row]:
    """float32 and bfloat16 on the device against float32 on the CPU, for one tiny set."""
    tiny = tiny.at(ctx)
    ref = run_outputs(tiny.build(CPU, torch.float32), tiny)
    f32, b16 = (on_device(ctx, tiny, dtype, ref) for dtype in (torch.float32, torch.bfloat16))
    fp32_tol = f"≤ {FP32_MAX_REL:.0e} max |Δ|/max |ref| (TF32 off)"
    rms_tol = f"≤ {BF16_RMS_REL:.0e} ‖Δ‖/‖ref‖"
    errors = [("denoiser fp32", max_rel(ref.velocity, f32.velocity), fp32_tol, FP32_MAX_REL),
              ("VAE decode fp32", max_rel(ref.pixels, f32.pixels), fp32_tol, FP32_MAX_REL),
              ("denoiser bf16", rms_rel(ref.velocity, b16.velocity), rms_tol, BF16_RMS_REL)]
    rows = [Row(f"{tiny.name}: {what}", f"{err:.1e}", tol, verdict(err <= limit))
            for what, err, tol, limit in errors]  # fmt: skip
    for what, frames, limit in (("fp32", f32.frames, FP32_PSNR_DB),
                                ("bf16", b16.frames, BF16_PSNR_DB)):
        db = psnr(ref.frames, frames)
        rows.append(Row(f"{tiny.name}: generation {what}, frame PSNR",
                        f"{db:.1f} dB", f"≥ {limit:g} dB", verdict(db >= limit)))
    return rows


def coverage_row(sets: list[TinySet]) -> Row:
    """Every registered family must have a tiny set here."""
    covered = {tiny.family for tiny in sets}
    missing = [f.name for f in families() if f.name not in covered]
    expectation = "every registered family"
    if missing:
        expectation += f" (missing: {', '.join(missing)})"
    return Row("families with a tiny set", ", ".join(sorted(covered)), expectation,
               verdict(not missing))


def correctness(ctx: Context) -> list[Row]:
    """Section 1: every family's tiny set on the device against the CPU."""
    sets = tiny_sets()
    rows = [coverage_row(sets)]
    with exact_float32():
        for tiny in sets:
            rows += check_set(ctx, tiny)
    return rows
